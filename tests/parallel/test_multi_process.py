"""Two processes x 2 CPU devices (gloo collectives over 127.0.0.1) train what one process with
4 devices trains: `jgen train --coordinator-address ... --num-processes 2 --process-id I` is
started twice, and its checkpoint and evaluation are compared with an in-process run."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from jgen.config import load_experiment_config
from jgen.experiment import build_experiment, restore_run
from jgen.train import fit

EXPERIMENT = ["realnvp_2d:moons", "--smoke", "train.steps=4", "train.eval_every=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(index: int, port: int, workdir) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
        JAX_PROCESS_ID=str(index),
    )  # fmt: skip
    command = [sys.executable, "-m", "jgen.cli", "train", *EXPERIMENT, "--distributed"]
    command += ["--workdir", str(workdir), "--no-progress"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_processes_train_what_one_process_trains(tmp_path):
    port = free_port()
    processes = [start_process(i, port, tmp_path / "two") for i in (0, 1)]
    outputs = []
    try:
        for p in processes:
            out, _ = p.communicate(timeout=300)
            outputs.append(out.decode())
    finally:
        for p in processes:
            p.kill()
    for p, out in zip(processes, outputs, strict=True):
        assert p.returncode == 0, out
    # Only process 0 prints the summary (and writes the metrics).
    summaries = [json.loads(line) for line in outputs[0].splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["step"] == 4
    assert not [line for line in outputs[1].splitlines() if line.startswith("{")]

    config = load_experiment_config(EXPERIMENT[0], EXPERIMENT[2:], smoke=True)
    exp = build_experiment(config)
    assert jax.device_count() == 4
    one = fit(
        exp.objective, exp.dataset, exp.tx, dataclasses.replace(exp.train, progress=False)
    )  # fmt: skip
    _, restored = restore_run(tmp_path / "two")
    assert int(restored.step) == 4
    for a, b in zip(jax.tree.leaves(jax.device_get(one.state.params)),
                    jax.tree.leaves(jax.device_get(restored.params)), strict=True):  # fmt: skip
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(summaries[0]["nll"], one.eval_metrics["nll"], rtol=1e-5)
    records = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
