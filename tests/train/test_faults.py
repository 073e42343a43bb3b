"""Runs survive faults: kill -9 + resume is bit-identical, SIGTERM checkpoints, torn writes are
ignored. The first two start real `jgen train` subprocesses."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jgen.cli import _restore
from jgen.train.checkpoint import atomic_write_text

# A small RealNVP on moons, one device, long enough (1000 steps) that a kill at the first
# checkpoint lands mid-run. Checkpoints every 100 steps.
STEPS = 1000
OVERRIDES = [
    "model.num_layers=4",
    "model.hidden_dims=(32, 32)",
    "data.n_train=4096",
    "data.n_test=512",
    "train.batch_size=128",
    f"train.steps={STEPS}",
    "train.log_every=100",
    "train.eval_every=0",
    "train.checkpoint_every=100",
    "train.eval_batch_size=512",
]


def _env():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _command(workdir: Path) -> list[str]:
    return [
        sys.executable, "-m", "jgen.cli", "train", "realnvp_2d:moons", *OVERRIDES,
        "--no-progress", "--workdir", str(workdir),
    ]  # fmt: skip


def _run(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(workdir), env=_env(), capture_output=True, text=True, timeout=300
    )


def _start_and_wait_for_checkpoint(workdir: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        _command(workdir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    first = workdir / "checkpoints" / "100"
    deadline = time.monotonic() + 240
    while not first.is_dir():
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("no checkpoint appeared within 240 s")
        time.sleep(0.01)
    return process


def _final_params(workdir: Path):
    _, state = _restore(workdir)
    assert int(state.step) == STEPS
    return jax.device_get(state.params), jax.device_get(state.opt_state)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    result = _run(workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    return _final_params(workdir)


def _assert_bit_identical(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_kill_9_then_resume_is_bit_identical(uninterrupted, tmp_path):
    process = _start_and_wait_for_checkpoint(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "checkpoints" / str(STEPS)).exists(), "the kill came after the end"
    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_bit_identical(_final_params(tmp_path), uninterrupted)
    # metrics.jsonl has each step once: records past the restored checkpoint were dropped.
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == list(range(100, STEPS + 1, 100))


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_the_run_resumes(uninterrupted, tmp_path):
    process = _start_and_wait_for_checkpoint(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err.decode()[-2000:]
    assert "received SIGTERM" in err.decode()
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert 100 <= saved[-1] < STEPS, saved  # the state when the signal was seen
    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_bit_identical(_final_params(tmp_path), uninterrupted)


def test_a_torn_checkpoint_is_ignored_on_resume(tmp_path):
    """A crash mid-save leaves orbax's temporary directory; resume uses the last complete one."""
    from jgen.cli import main

    args = ["train", "realnvp_2d:moons", "--smoke", "--no-progress", "--workdir", str(tmp_path)]
    assert main(args) == 0
    checkpoints = tmp_path / "checkpoints"
    torn = checkpoints / "7.orbax-checkpoint-tmp-1234567"
    shutil.copytree(checkpoints / "3", torn)
    for path in sorted(torn.rglob("*")):
        if path.is_file():
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    _, state = _restore(tmp_path)
    assert int(state.step) == 3


def test_atomic_write_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    atomic_write_text(path, "old")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new and longer")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"], "temporary file left behind"
