"""I-CFM, OT-CFM, SB-CFM and reflow on 2-D toys: test NLL, straightness and sampling NFE.

For each data set (default: checkerboard and 8gaussians) the same field (ConcatSquash 3x64,
tanh) is trained with the shared jitted step (Adam, batch 256, ``--steps`` steps, one device):

* ``icfm``     `InterpolantPath(0.1)`, independent pairs (Tong et al. 2023, I-CFM);
* ``otcfm``    `InterpolantPath(0.1)`, exact mini-batch OT on the device (`ExactOT`);
* ``sbcfm``    `BrownianBridgePath(0.5)` with `SchrodingerBridge(0.5)` (entropic plan, ε = 2σ²);
* ``reflow``   2-rectified flow: ``--pairs`` noise draws pushed through the trained ``icfm``
               model, then ``--steps`` more steps on those fixed pairs with the straight
               interpolant, starting from the ``icfm`` parameters (`jgen.flow_matching.reflow`).

Reported per model: the exact test NLL (the CNF's inverse solve, exact trace, rtol = atol =
1e-5, ``--num-test`` points), the straightness S and S / E||z1 − z0||² of 256 trajectories
(`jgen.flow_matching.diagnostics`), and the mean NFE per sample of the sampling solve (the
CNF's forward solve at rtol = atol = 1e-5, 256 samples). A JSON run record (command, config,
commit, date, hardware, load, versions, metrics) goes to ``--record``.

    python -m benchmarks.flow_matching_paths --record docs/records/flow_matching_paths.json
    python -m benchmarks.flow_matching_paths --quick      # seconds: smoke settings
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import harness
from jgen.cnf import CNF, ConcatSquashField
from jgen.data import load_dataset
from jgen.flow_matching import (
    BrownianBridgePath,
    ExactOT,
    FlowMatchingObjective,
    InterpolantPath,
    SchrodingerBridge,
)
from jgen.flow_matching.diagnostics import straightness
from jgen.flow_matching.reflow import generate_pairs, train_on_pairs
from jgen.train import TrainState, make_train_step

__all__ = ["METHODS", "StudyConfig", "main", "run"]

METHODS = ("icfm", "otcfm", "sbcfm", "reflow")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    datasets: tuple[str, ...] = ("checkerboard", "8gaussians")
    steps: int = 2000
    batch_size: int = 256
    hidden: int = 64
    learning_rate: float = 2e-3
    num_test: int = 1000
    num_pairs: int = 20_000
    tol: float = 1e-5
    icfm_sigma: float = 0.1
    sb_sigma: float = 0.5
    seed: int = 0


def _objective(cfg: StudyConfig, method: str) -> FlowMatchingObjective:
    controller = diffrax.PIDController(rtol=cfg.tol, atol=cfg.tol)
    cnf = CNF(ConcatSquashField((cfg.hidden,) * 3, activation="tanh"), (2,),
              stepsize_controller=controller)  # fmt: skip
    if method == "sbcfm":
        sigma = cfg.sb_sigma
        return FlowMatchingObjective(
            cnf, path=BrownianBridgePath(sigma), coupling=SchrodingerBridge(sigma=sigma)
        )
    if method == "reflow":
        return FlowMatchingObjective(cnf, path=InterpolantPath(0.0))
    coupling = ExactOT() if method == "otcfm" else "independent"
    return FlowMatchingObjective(cnf, path=InterpolantPath(cfg.icfm_sigma), coupling=coupling)


def _train(cfg, objective, data, key):
    params, model_state = objective.init(key, {"x": jnp.asarray(data[: cfg.batch_size])})
    tx = optax.adam(cfg.learning_rate)
    state = TrainState.create(params=params, model_state=model_state, tx=tx, rng=key)
    step = make_train_step(objective.loss, donate=False)
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    for _ in range(cfg.steps):
        batch = {"x": jnp.asarray(data[rng.integers(0, len(data), cfg.batch_size)])}
        state, _ = step(state, batch)
    jax.block_until_ready(state.params)
    return state.params, state.model_state, time.perf_counter() - start


def _metrics(cfg, objective, params, model_state, test, key) -> dict[str, float]:
    log_prob = jax.jit(lambda x: objective.log_prob(params, model_state, x))
    nll = -np.concatenate([np.asarray(log_prob(chunk)) for chunk in np.split(test, 4)])
    x0 = jax.random.normal(key, (256, 2))
    straight = straightness(objective, params, model_state, x0, rtol=cfg.tol, atol=cfg.tol)
    _, stats = objective.sample_with_stats(params, model_state, jax.random.fold_in(key, 1), 256)
    return {
        "test_nll": float(nll.mean()),
        "test_nll_se": float(nll.std(ddof=1) / np.sqrt(len(nll))),
        "straightness": float(straight["straightness"]),
        "relative_straightness": float(straight["relative_straightness"]),
        "sampling_nfe": float(stats["nfe"]),
    }


def run(cfg: StudyConfig) -> list[dict[str, Any]]:
    rows = []
    for dataset in cfg.datasets:
        ds = load_dataset(dataset, n_train=50_000, n_test=cfg.num_test, seed=cfg.seed)
        key = jax.random.key(cfg.seed)
        trained = {}
        for method in METHODS:
            objective = _objective(cfg, method)
            if method == "reflow":
                params, model_state = trained["icfm"]
                start = time.perf_counter()
                pairs = generate_pairs(objective, params, model_state, jax.random.fold_in(key, 9),
                                       cfg.num_pairs, rtol=cfg.tol, atol=cfg.tol)  # fmt: skip
                params, model_state, _ = train_on_pairs(
                    objective, params, model_state, pairs, jax.random.fold_in(key, 10),
                    steps=cfg.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                )  # fmt: skip
                seconds = time.perf_counter() - start
            else:
                params, model_state, seconds = _train(cfg, objective, ds.train, key)
            trained[method] = (params, model_state)
            metrics = _metrics(cfg, objective, params, model_state, ds.test,
                               jax.random.fold_in(key, 3))  # fmt: skip
            row = {"dataset": dataset, "method": method, "train_s": seconds, **metrics}
            print(row, flush=True)
            rows.append(row)
    return rows


def markdown(rows) -> str:
    lines = [
        "| data | method | test NLL (± s.e.) | straightness S | S / E‖z1 − z0‖² | sampling NFE |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['test_nll']:.3f} ± {r['test_nll_se']:.3f} | "
            f"{r['straightness']:.3f} | {r['relative_straightness']:.4f} | "
            f"{r['sampling_nfe']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke settings (seconds)")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--record", default=None, help="write the JSON run record here")
    args = parser.parse_args(argv)
    cfg = StudyConfig()
    if args.quick:
        cfg = dataclasses.replace(cfg, steps=5, hidden=8, num_test=64, num_pairs=64, tol=1e-3)
    if args.datasets:
        cfg = dataclasses.replace(cfg, datasets=tuple(args.datasets))
    if args.steps:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.pairs:
        cfg = dataclasses.replace(cfg, num_pairs=args.pairs)
    with harness.LoadMonitor() as monitor:
        rows = run(cfg)
    table = markdown(rows)
    print(table)
    if args.record:
        harness.write_record(
            Path(args.record), config=dataclasses.asdict(cfg),
            metrics={"rows": rows, "table": table}, load=monitor.summary(),
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
