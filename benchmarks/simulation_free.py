"""Simulation-free vs maximum-likelihood CNF training: time to a target test NLL.

On each 2-D toy (default: checkerboard and 8gaussians) four models are trained with the shared
jitted train step (`jgen.train.make_train_step`, Adam, batch 256, one device) until their test
NLL reaches the data set's target, or a time budget runs out:

* ``ffjord``   maximum likelihood through the CNF's ODE (FFJORD: Tsit5, rtol = atol = 1e-5,
               recursive-checkpoint adjoint); the lead's ``cnf`` family objective
               (experiments/configs/ffjord_2d.py: the same field, Hutchinson trace in training,
               exact in evaluation) when it loads, else built here from `jgen.cnf.CNF` + `Flow`
               + `DensityObjective` with the same field as flow matching (exact trace);
* ``fm``       conditional flow matching, independent coupling;
* ``fm_ot``    conditional flow matching, exact mini-batch OT coupling ('ot': `ExactOT` with
               its default solver for the backend: scipy's assignment on a CPU, where the host
               is the device and scipy is faster than the Hungarian in `lax` loops; those loops
               on accelerators);
* ``fm_sinkhorn`` conditional flow matching, entropic OT coupling ('sinkhorn': `Sinkhorn`,
               ott-jax, ε = 0.05 x the mean cost);
* ``moser``    Moser flow on [−5, 5]² (its NLL needs no ODE).

FFJORD and flow matching share the vector field (ConcatSquash 3x64, tanh) and their NLL is the
same exact CNF log-likelihood (exact trace, rtol = atol = 1e-5) on the same test points. Only
training time is counted: the loop trains, stops the clock, evaluates, and repeats; the
training time between evaluations is max(1 s, 15% of the time so far), so each time to target
is resolved to about 15%. Reported per model: training wall time and process CPU time to the
target (CPU time is less disturbed by other processes on a shared machine), steps, ms per step,
the best test NLL, and the NFE of sampling 500 points (forward solve, same tolerances).

The coupling's share of a flow-matching step at the benchmark's batch size (``coupling_share``):
the median time of the jitted coupling alone over the median time of the whole jitted train
step with that coupling (interleaved repeats, `benchmarks.harness`), for 'ot' (the backend's
default solver), the exact Hungarian in `lax` loops on the device, and 'sinkhorn'.

    .venv/bin/python -m benchmarks.simulation_free             # full (a few CPU minutes)
    .venv/bin/python -m benchmarks.simulation_free --quick     # seconds: smoke settings
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import harness
from jgen.cnf import CNF, ConcatSquashField, summarize_stats
from jgen.data import load_dataset
from jgen.distributions import Flow
from jgen.flow_matching import (
    BoxField,
    ExactOT,
    FlowMatchingObjective,
    HostExactOT,
    MoserObjective,
    Sinkhorn,
    pairwise_sq_distances,
)
from jgen.flow_matching.coupling import resolve_exact_solver
from jgen.flows import DensityObjective
from jgen.train import TrainState, make_train_step

__all__ = ["METHODS", "BenchConfig", "main", "run"]

METHODS = ("ffjord", "fm", "fm_ot", "fm_sinkhorn", "moser")
COUPLED = {"fm": "independent", "fm_ot": "ot", "fm_sinkhorn": "sinkhorn"}
# Targets every method reaches within the full budget (nats; see the README for how chosen).
TARGETS = {"checkerboard": 3.9, "8gaussians": 3.2}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    datasets: tuple[str, ...] = ("checkerboard", "8gaussians")
    methods: tuple[str, ...] = METHODS
    batch_size: int = 256
    hidden: int = 64
    learning_rate: float = 2e-3
    budget_s: float = 240.0  # training seconds per model at most
    eval_interval_s: float = 1.0  # least training seconds between evaluations
    num_test: int = 1000
    num_samples: int = 500
    train_tol: float = 1e-5  # FFJORD's training solve
    eval_tol: float = 1e-5
    moser_half_width: float = 5.0
    targets: tuple[tuple[str, float], ...] = tuple(TARGETS.items())
    seed: int = 0


def _cnf(cfg: BenchConfig, tol: float) -> CNF:
    field = ConcatSquashField((cfg.hidden,) * 3, activation="tanh")
    controller = diffrax.PIDController(rtol=tol, atol=tol)
    return CNF(field, (2,), t0=0.0, t1=1.0, stepsize_controller=controller)


def _ffjord_objective(cfg: BenchConfig, dataset: str):
    """(training objective, how it was built): the lead's ffjord_2d config when present."""
    try:
        from jgen.config import list_experiments, load_experiment_config
        from jgen.experiment import build_experiment

        name = f"ffjord_2d:{dataset}"
        if name in list_experiments():
            config = load_experiment_config(name)
            config.data.update(n_train=1000, n_test=10)  # the data comes from this script
            return build_experiment(config).objective, name
    except Exception as error:  # fall back on the objective built here
        print(f"[ffjord] {name}: {error!r}; using the built-in FFJORD objective")
    flow = Flow(_cnf(cfg, cfg.train_tol), (2,))
    return DensityObjective(flow), "built-in: Flow(CNF(ConcatSquash 3x64)) + DensityObjective"


def _objective(cfg: BenchConfig, method: str, dataset: str):
    """(training objective, a function (params, state) -> test NLL per example, sampler with
    stats, description)."""
    if method == "moser":
        moser = MoserObjective(
            BoxField((cfg.hidden,) * 3, cfg.moser_half_width), eps=1e-5, penalty=1.0,
            rtol=cfg.eval_tol, atol=cfg.eval_tol,
        )  # fmt: skip

        def sample(params, state, key, n):
            return moser.sample_with_stats(params, state, key, n)[2]

        return moser, moser.evaluate, sample, "Moser flow, box [-5, 5]^2"
    # The evaluation model of FFJORD and flow matching: the same CNF, exact trace, eval_tol.
    evaluator = FlowMatchingObjective(_cnf(cfg, cfg.eval_tol))

    def sample(params, state, key, n):
        return evaluator.sample_with_stats(params, state, key, n)[1]

    if method == "ffjord":
        objective, how = _ffjord_objective(cfg, dataset)
        density = getattr(objective, "eval", objective)  # the cnf family's evaluation objective
        if hasattr(density, "flow"):
            sample = _flow_sampler(density)
        return objective, objective.evaluate, sample, how
    coupling = COUPLED[method]
    objective = FlowMatchingObjective(_cnf(cfg, cfg.eval_tol), coupling=coupling)
    return objective, objective.density.evaluate, sample, f"flow matching, {coupling} coupling"


def _flow_sampler(objective):
    def sample(params, state, key, n):
        _, inter = objective.flow.apply(
            {"params": params, **state}, key, n, method=Flow.sample, mutable=["intermediates"],
            rngs={"trace": key},
        )  # fmt: skip
        return summarize_stats(inter)

    return sample


def _train_to_target(cfg, method, dataset, data, test, target) -> dict[str, Any]:
    objective, evaluate, sample, how = _objective(cfg, method, dataset)
    rng = np.random.default_rng(cfg.seed)
    key = jax.random.PRNGKey(cfg.seed)
    first = {"x": jnp.asarray(data[: cfg.batch_size])}
    params, model_state = objective.init(key, first)
    tx = optax.adam(cfg.learning_rate)
    state = TrainState.create(params=params, model_state=model_state, tx=tx, rng=key)
    step = make_train_step(objective.loss, donate=False)
    eval_nll = jax.jit(lambda p, s, x, k: jnp.mean(evaluate(p, s, {"x": x}, k)["nll"]))
    test = jnp.asarray(test)

    def batch():
        return {"x": jnp.asarray(data[rng.integers(0, len(data), cfg.batch_size)])}

    # Compile outside the clock (one step, one evaluation), then restart from the same state.
    compile_start = time.perf_counter()
    jax.block_until_ready(step(state, batch()))
    jax.block_until_ready(eval_nll(state.params, state.model_state, test, key))
    compile_s = time.perf_counter() - compile_start
    state = TrainState.create(params=params, model_state=model_state, tx=tx, rng=key)

    wall = cpu = 0.0
    steps, chunk = 0, 1
    history, reached = [], None
    while wall < cfg.budget_s:
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(chunk):
            state, _ = step(state, batch())
        jax.block_until_ready(state.params)
        elapsed = time.perf_counter() - start
        wall, cpu, steps = wall + elapsed, cpu + time.process_time() - cpu_start, steps + chunk
        nll = float(eval_nll(state.params, state.model_state, test, jax.random.fold_in(key, steps)))
        history.append({"steps": steps, "train_wall_s": wall, "train_cpu_s": cpu, "nll": nll})
        print(
            f"  {dataset:13s} {method:7s} step {steps:6d}  {wall:7.1f} s  nll {nll:.3f}", flush=True
        )
        if math.isfinite(nll) and nll <= target:
            reached = history[-1]
            break
        # Next chunk: max(eval_interval_s, 15% of the training time so far) at the measured
        # speed, so every method's time to target is resolved to about 15%.
        seconds_per_step = max(elapsed / chunk, 1e-6)
        interval = min(max(cfg.eval_interval_s, 0.15 * wall), cfg.budget_s - wall)
        chunk = max(1, int(interval / seconds_per_step))
    try:
        stats = sample(state.params, state.model_state, jax.random.PRNGKey(7), cfg.num_samples)
    except Exception as error:  # a failed sampling solve must not lose the timings
        print(f"  sampling failed: {error!r:.200}", flush=True)
        stats = {}
    return {
        "dataset": dataset, "method": method, "model": how, "target_nll": target,
        "reached": reached is not None,
        "time_to_target_s": reached["train_wall_s"] if reached else None,
        "cpu_time_to_target_s": reached["train_cpu_s"] if reached else None,
        "steps_to_target": reached["steps"] if reached else None,
        "train_wall_s": wall, "train_cpu_s": cpu, "steps": steps, "ms_per_step": 1e3 * wall / steps,
        "best_nll": min(h["nll"] for h in history), "compile_s": compile_s,
        "sampling_nfe": float(stats.get("nfe", float("nan"))),
        "sampling_succeeded": float(stats.get("succeeded_fraction", stats.get("all_succeeded",
                                                                            float("nan")))),
        "history": history,
    }  # fmt: skip


SHARE_COUPLINGS = {
    "ot": ExactOT(),
    "ot, solver='hungarian' (lax loops)": ExactOT(solver="hungarian"),
    "sinkhorn, epsilon=0.02": Sinkhorn(epsilon=0.02),
    "sinkhorn (epsilon=0.05, the default)": Sinkhorn(),
    "sinkhorn, epsilon=0.1": Sinkhorn(epsilon=0.1),
}


def _cost_ratio(coupling, x0: jax.Array, x1: jax.Array, draws: int = 8) -> float:
    """Mean transport cost Σ_j ||x0_σ(j) − x1_j||² of the coupling's pairs (over ``draws``
    keys) over the exact optimum's."""
    cost = np.asarray(pairwise_sq_distances(x0, x1), np.float64)
    optimum = cost[np.asarray(HostExactOT().pairing(None, x0, x1)), np.arange(len(cost))].sum()
    pair = jax.jit(coupling.pairing)
    totals = [cost[np.asarray(pair(jax.random.key(d), x0, x1)), np.arange(len(cost))].sum()
              for d in range(draws)]  # fmt: skip
    return float(np.mean(totals) / optimum)


def coupling_share(cfg: BenchConfig, data: np.ndarray, label: str) -> dict[str, Any]:
    """ms of the jitted coupling alone and of the whole train step with it, their ratio, and
    the pairs' transport cost over the optimum (`_cost_ratio`)."""
    coupling = SHARE_COUPLINGS[label]
    objective = FlowMatchingObjective(_cnf(cfg, cfg.eval_tol), coupling=coupling)
    key = jax.random.PRNGKey(cfg.seed)
    x1 = jnp.asarray(data[: cfg.batch_size])
    params, model_state = objective.init(key, {"x": x1})
    state = TrainState.create(params=params, model_state=model_state, tx=optax.adam(1e-3), rng=key)
    train_step = make_train_step(objective.loss, donate=False)
    pair = jax.jit(objective.coupling)
    x0 = jax.random.normal(key, x1.shape)

    def step(carry):
        new, metrics = train_step(carry, {"x": x1})
        return new, metrics["fm_loss"]

    def couple_once(carry):
        paired = pair(carry, x0, x1)
        return jax.random.fold_in(carry, 1), paired[0, 0]

    workloads = [
        harness.Workload("coupling", couple_once, key),
        harness.Workload("step", step, state),
    ]
    for w in workloads:
        harness.time_first_call(w)
    num_steps = harness.calibrate_steps(workloads, target_seconds=0.5)
    wall, _ = harness.interleaved_step_times(workloads, num_steps=num_steps, repeats=7)
    coupling_ms = 1e3 * harness.median(wall["coupling"])
    step_ms = 1e3 * harness.median(wall["step"])
    if isinstance(coupling, ExactOT) and coupling.solver == "auto":
        label += f" (solver '{resolve_exact_solver('auto')}' here)"
    return {"coupling": label, "batch_size": cfg.batch_size, "coupling_ms": coupling_ms,
            "step_ms": step_ms, "share": coupling_ms / step_ms,
            "cost_over_optimum": _cost_ratio(coupling, x0, x1)}  # fmt: skip


def run(cfg: BenchConfig, out: Path | None = None) -> dict[str, Any]:
    """Every (dataset, method) row; with ``out``, the JSON so far is rewritten after each row."""
    targets = dict(cfg.targets)
    rows = []
    shares = []
    for dataset in cfg.datasets:
        ds = load_dataset(dataset, n_train=50_000, n_test=cfg.num_test, seed=cfg.seed)
        # Exact OT's cost depends on the data (the length of its augmenting-path searches).
        shares += [
            {"dataset": dataset, **coupling_share(cfg, ds.train, c)} for c in SHARE_COUPLINGS
        ]
        for method in cfg.methods:
            rows.append(_train_to_target(cfg, method, dataset, ds.train, ds.test, targets[dataset]))
            result = {"config": dataclasses.asdict(cfg), "rows": rows, "speedups": _speedups(rows),
                      "coupling_share": shares}  # fmt: skip
            if out is not None:
                (out / "simulation_free.json").write_text(json.dumps(result, indent=2))
    return result


def _speedups(rows) -> list[dict[str, Any]]:
    """FFJORD's time to target over each other method's (a lower bound when FFJORD missed)."""
    out = []
    for row in rows:
        if row["method"] == "ffjord" or not row["reached"]:
            continue
        ffjord = next(r for r in rows if r["dataset"] == row["dataset"] and r["method"] == "ffjord")
        ffjord_time = ffjord["time_to_target_s"] or ffjord["train_wall_s"]
        out.append({
            "dataset": row["dataset"], "method": row["method"],
            "speedup_wall": ffjord_time / row["time_to_target_s"],
            "speedup_cpu": (ffjord["cpu_time_to_target_s"] or ffjord["train_cpu_s"])
            / row["cpu_time_to_target_s"],
            "lower_bound": not ffjord["reached"],
        })  # fmt: skip
    return out


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| data | method | target NLL | reached | train time to target (s) | CPU time (s) | "
        "steps | ms/step | best NLL | sampling NFE (solves ok) | FFJORD time / this (wall, CPU) |",
        "|---|---|---:|:---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    speedups = {(s["dataset"], s["method"]): s for s in result["speedups"]}
    for r in result["rows"]:
        s = speedups.get((r["dataset"], r["method"]))
        bound = "≥ " if s and s["lower_bound"] else ""
        speed = (
            "" if s is None else f"{bound}{s['speedup_wall']:.1f}x, {bound}{s['speedup_cpu']:.1f}x"
        )
        ok = r["sampling_succeeded"]
        nfe = f"{r['sampling_nfe']:.0f}" + ("" if ok >= 1 else f" ({100 * ok:.0f}%)")
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['target_nll']:.2f} | "
            f"{'yes' if r['reached'] else 'no'} | {_fmt(r['time_to_target_s'], '.1f')} | "
            f"{_fmt(r['cpu_time_to_target_s'], '.1f')} | {_fmt(r['steps_to_target'], 'd')} | "
            f"{r['ms_per_step']:.1f} | {r['best_nll']:.3f} | {nfe} | {speed} |"
        )
    lines += ["", "| data | coupling | batch | coupling ms | train step ms | share of the step | "
              "transport cost / optimum |", "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for c in result.get("coupling_share", []):
        lines.append(
            f"| {c.get('dataset', '')} | {c['coupling']} | {c['batch_size']} | "
            f"{c['coupling_ms']:.2f} | {c['step_ms']:.2f} | {100 * c['share']:.0f}% | "
            f"{c.get('cost_over_optimum', float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke settings (seconds)")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=None, choices=METHODS)
    parser.add_argument("--budget", type=float, default=None, help="training seconds per model")
    parser.add_argument("--out", default="runs/simulation_free")
    args = parser.parse_args(argv)
    cfg = BenchConfig()
    if args.quick:
        cfg = dataclasses.replace(
            cfg, hidden=16, batch_size=64, budget_s=3.0, eval_interval_s=0.5, num_test=64,
            num_samples=16, train_tol=1e-3, eval_tol=1e-3,
        )  # fmt: skip
    if args.datasets:
        cfg = dataclasses.replace(cfg, datasets=tuple(args.datasets))
    if args.methods:
        cfg = dataclasses.replace(cfg, methods=tuple(args.methods))
    if args.budget:
        cfg = dataclasses.replace(cfg, budget_s=args.budget)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with harness.LoadMonitor() as monitor:
        result = run(cfg, out)
    load = monitor.summary()
    harness.write_record(
        out / "simulation_free.json", config=dataclasses.asdict(cfg), metrics=result, load=load
    )
    table = markdown(result) + "\n" + harness.load_line(load) + "\n"
    (out / "simulation_free.md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
