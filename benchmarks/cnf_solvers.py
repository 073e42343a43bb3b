"""Which solver, tolerance, adjoint and trace estimator for my CNF? A measured grid.

For each cell (problem, solver, tolerance, adjoint, trace estimator) on a batch of data:

  nfe_forward       function evaluations of the density solve per example (solver statistics)
  density_ms        wall time of one jitted density batch (median of repeats, after compile)
  step_ms           wall time of one jitted value-and-gradient of the mean NLL (a train step
                    without the optimiser), median of repeats
  compile_s         compile time of the density and of the gradient function
  temp_mib          XLA's temporary buffer size of the compiled gradient (peak working memory
                    beyond inputs and outputs: where backsolve and recursive checkpointing differ)
  error             |mean log p − reference| over the batch; the reference is the exact trace
                    with Dopri8 at rtol = atol = 1e-7 (float32)
  probe_std         standard deviation over probe draws of an example's log p (mean over the
                    batch; 0 for the exact trace)
  grad_rel_var      Σ_i Var[∂L/∂θ_i] / ||E ∂L/∂θ||² over probe draws (0 for the exact trace)

Problems: ``synthetic`` (an MLP field tanh(64, 64) at random initialisation on N(0, I) data, the
dimension swept, default 2..256), ``toy`` (2-D 8gaussians data; the field of a trained run with
``--toy-workdir runs/ffjord_2d_8gaussians``, else a random ConcatSquash 3x64 field), ``digits``
(the 64 dequantised pixels in logit space; ``--digits-workdir`` for a trained run's field, else
random), or your own: ``--field module:function`` returning ``(flax_module, field_params)`` with
``--data file.npy`` of shape (N, D).

    python benchmarks/cnf_solvers.py [--problems synthetic toy digits] [--quick] [--out DIR]
    python benchmarks/cnf_solvers.py --render DIR/cnf_solvers.json --out DIR   # re-report only
    make bench-cnf

A trained field comes from a training run's workdir, e.g. ``jgen train ffjord_2d:8gaussians
--workdir runs/ffjord_8g train.steps=500`` then ``--toy-workdir runs/ffjord_8g``; without one the
harness uses a random field of the same architecture (it does not train).

Output: ``cnf_solvers.json`` (the rows, the configuration, the command, load averages),
``cnf_solvers.md`` (the table, the dimension sweep by estimator, and the conclusions computed
from them: where each stochastic estimator beats the exact trace, cost slopes in D, JVPs per
solve = NFE x products per evaluation, backsolve vs recursive memory and time, each solver's
error and time by tolerance, the Pareto front), ``cnf_pareto.png`` (error vs step time) and
``cnf_dimension.png`` (cost vs dimension).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from benchmarks import harness
from jgen.cnf import ConcatSquashField, MLPField, collect_nfe, make_cnf
from jgen.distributions import Flow

__all__ = ["Cell", "Problem", "main", "measure_cell"]

ESTIMATORS = {  # name -> make_cnf keyword arguments
    "exact": dict(trace="exact"),
    "hutchinson-rademacher": dict(trace="hutchinson", trace_distribution="rademacher"),
    "hutchinson-gaussian": dict(trace="hutchinson", trace_distribution="gaussian"),
    "hutch++": dict(trace="hutch++", num_probes=3),
}
REFERENCE = dict(solver="dopri8", rtol=1e-7, atol=1e-7, trace="exact", max_steps=16384)


@dataclasses.dataclass
class Problem:
    name: str
    field: Any  # a flax module h(z, t, context)
    field_params: Any
    x: np.ndarray  # (B, D)


@dataclasses.dataclass(frozen=True)
class Cell:
    solver: str
    tol: float
    adjoint: str
    estimator: str


def _random_field(field, dim: int, seed: int):
    params = field.init(jax.random.key(seed), jnp.zeros((dim,)), jnp.zeros(()))
    return params


def synthetic_problem(dim: int, batch: int, seed: int = 0) -> Problem:
    field = MLPField((64, 64), activation="tanh")
    x = np.random.default_rng(seed).standard_normal((batch, dim)).astype(np.float32)
    return Problem(f"synthetic D={dim}", field, _random_field(field, dim, seed), x)


def _trained_field(workdir: str):
    """The vector field and its parameters of a one-block `cnf` run (jgen train ffjord_...)."""
    from jgen.experiment import restore_run

    exp, state = restore_run(Path(workdir))
    flow = exp.objective.eval.flow
    bijector, params = flow.bijector, state.eval_params["bijector"]
    if hasattr(bijector, "bijectors"):  # LogitPreprocess + CNF: take the CNF
        index = next(i for i, b in enumerate(bijector.bijectors) if hasattr(b, "vector_field"))
        bijector = bijector.bijectors[index]
        params = params[bijector.name]
    return bijector.vector_field, {"params": params["vector_field"]}


def toy_problem(batch: int, workdir: str | None, seed: int = 0) -> Problem:
    from jgen.data import sample_toy

    x = sample_toy("8gaussians", batch, seed=seed).astype(np.float32)
    if workdir:
        field, params = _trained_field(workdir)
        return Problem("toy 8gaussians (trained)", field, params, x)
    field = ConcatSquashField((64, 64, 64), activation="tanh")
    return Problem("toy 8gaussians (random field)", field, _random_field(field, 2, seed), x)


def digits_problem(batch: int, workdir: str | None, seed: int = 0) -> Problem:
    from jgen.data import load_dataset

    data = load_dataset("digits")
    rng = np.random.default_rng(seed)
    y = (data.test[:batch].reshape(batch, -1) + rng.uniform(size=(batch, 64))) / data.num_levels
    p = 0.05 + 0.9 * y
    x = np.log(p) - np.log1p(-p)  # the logit space the digits CNF works in
    if workdir:
        field, params = _trained_field(workdir)
        return Problem("digits D=64 (trained)", field, params, x.astype(np.float32))
    inner = ConcatSquashField((256, 256), activation="softplus")  # acts on the flat 64 pixels
    return Problem(
        "digits D=64 (random field)", inner, _random_field(inner, 64, seed), x.astype(np.float32)
    )


def _user_problem(spec: str, data_path: str) -> Problem:
    module, _, function = spec.partition(":")
    field, params = getattr(importlib.import_module(module), function)()
    x = np.load(data_path).astype(np.float32)
    return Problem(f"user {spec}", field, params, x.reshape(len(x), -1))


# Measuring one cell ------------------------------------------------------------------------


def _flow(problem: Problem, **solve) -> Flow:
    dim = problem.x.shape[1]
    return Flow(make_cnf(problem.field, (dim,), **solve), (dim,))


def _variables(problem: Problem):
    return {"params": {"bijector": {"vector_field": problem.field_params["params"]}}}


def _density_fn(flow: Flow):
    def density(variables, x, key):
        lp, state = flow.apply(
            variables, x, method=Flow.log_prob, rngs={"trace": key}, mutable=["intermediates"]
        )
        return lp, jnp.mean(collect_nfe(state))

    return density


def _median_ms(fn, *args, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _compile(fn, *args):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def reference_log_prob(problem: Problem) -> np.ndarray:
    density, _ = _compile(
        _density_fn(_flow(problem, **REFERENCE)),
        _variables(problem),
        jnp.asarray(problem.x),
        jax.random.key(0),
    )
    return np.asarray(density(_variables(problem), jnp.asarray(problem.x), jax.random.key(0))[0])


def measure_cell(
    problem: Problem, cell: Cell, reference: np.ndarray, *, repeats: int, num_probe_draws: int
) -> dict[str, Any]:
    flow = _flow(
        problem,
        solver=cell.solver,
        rtol=cell.tol,
        atol=cell.tol,
        adjoint=cell.adjoint,
        **ESTIMATORS[cell.estimator],
    )
    variables, x, key = _variables(problem), jnp.asarray(problem.x), jax.random.key(1)
    density_fn = _density_fn(flow)

    def loss(variables, x, key):
        return -jnp.mean(density_fn(variables, x, key)[0])

    density, density_compile = _compile(density_fn, variables, x, key)
    grad, grad_compile = _compile(jax.value_and_grad(loss), variables, x, key)
    memory = grad.memory_analysis()
    _, nfe = density(variables, x, key)
    row = dict(
        problem=problem.name,
        dim=int(x.shape[1]),
        batch=int(x.shape[0]),
        **dataclasses.asdict(cell),
        nfe_forward=float(nfe),
        density_ms=_median_ms(density, variables, x, key, repeats=repeats),
        step_ms=_median_ms(grad, variables, x, key, repeats=repeats),
        compile_s=density_compile + grad_compile,
        temp_mib=None if memory is None else memory.temp_size_in_bytes / 2**20,
        load1=os.getloadavg()[0],  # the machine's 1-minute load average after the timings
    )
    stochastic = cell.estimator != "exact"
    draws = num_probe_draws if stochastic else 1
    keys = jax.random.split(jax.random.key(2), draws)
    log_ps = np.stack([np.asarray(density(variables, x, k)[0]) for k in keys])
    row["error"] = float(abs(log_ps.mean() - reference.mean()))
    row["probe_std"] = float(log_ps.std(axis=0).mean()) if stochastic else 0.0
    if stochastic:
        grads = [jax.flatten_util.ravel_pytree(grad(variables, x, k)[1])[0] for k in keys]
        grads = np.stack([np.asarray(g) for g in grads])
        mean_sq = float(np.sum(grads.mean(axis=0) ** 2))
        row["grad_rel_var"] = float(np.sum(grads.var(axis=0)) / max(mean_sq, 1e-30))
    else:
        row["grad_rel_var"] = 0.0
    return row


# The grid ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GridConfig:
    problems: tuple[str, ...] = ("synthetic", "toy", "digits")
    dims: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256)
    solvers: tuple[str, ...] = ("bosh3", "tsit5", "dopri5")
    tols: tuple[float, ...] = (1e-3, 1e-5)
    adjoints: tuple[str, ...] = ("recursive", "backsolve")
    estimators: tuple[str, ...] = tuple(ESTIMATORS)
    grid_estimators: tuple[str, ...] = ("exact", "hutchinson-rademacher")
    batch: int = 64
    repeats: int = 5
    probe_draws: int = 16
    toy_workdir: str | None = None
    digits_workdir: str | None = None
    field: str | None = None
    data: str | None = None


def _cells(cfg: GridConfig) -> list[tuple[Any, Cell]]:
    """(problem factory, cell) pairs. The dimension sweep varies the estimator at one solve
    setting (tsit5, 1e-5, recursive); toy / digits / user problems get the full
    solver x tolerance x adjoint grid with the ``grid_estimators``."""
    cells = []
    if "synthetic" in cfg.problems:
        for dim in cfg.dims:
            factory = (lambda d: lambda: synthetic_problem(d, cfg.batch))(dim)
            for estimator in cfg.estimators:
                cells.append((factory, Cell("tsit5", 1e-5, "recursive", estimator)))
    full = []
    if "toy" in cfg.problems:
        full.append(lambda: toy_problem(cfg.batch, cfg.toy_workdir))
    if "digits" in cfg.problems:
        full.append(lambda: digits_problem(cfg.batch, cfg.digits_workdir))
    if cfg.field:
        full.append(lambda: _user_problem(cfg.field, cfg.data))
    for factory in full:
        for solver in cfg.solvers:
            for tol in cfg.tols:
                for adjoint in cfg.adjoints:
                    for estimator in cfg.grid_estimators:
                        cells.append((factory, Cell(solver, tol, adjoint, estimator)))
    return cells


def run_grid(cfg: GridConfig, on_row=None) -> list[dict[str, Any]]:
    """Measure every cell; ``on_row(rows)`` is called after each (e.g. to save partial results)."""
    rows, problems, references = [], {}, {}
    cells = _cells(cfg)
    for factory, cell in tqdm(cells, desc="cnf grid", unit="cell"):
        if factory not in problems:
            problems[factory] = factory()
            references[factory] = reference_log_prob(problems[factory])
        problem = problems[factory]
        rows.append(
            measure_cell(
                problem,
                cell,
                references[factory],
                repeats=cfg.repeats,
                num_probe_draws=cfg.probe_draws,
            )
        )
        if on_row is not None:
            on_row(rows)
    return rows


# Reporting -----------------------------------------------------------------------------------

STOCHASTIC = ("hutchinson-rademacher", "hutchinson-gaussian", "hutch++")


def products_per_evaluation(row: dict[str, Any]) -> int:
    """Jacobian-vector products per evaluation of the augmented field: D for the exact trace
    (one per basis vector), the probe count for Hutchinson, 3 for Hutch++ (its sketch, the
    deflated sketch and the test vector)."""
    if row["estimator"] == "exact":
        return row["dim"]
    return max(ESTIMATORS[row["estimator"]].get("num_probes", 1), 1)


def _sweep_by_dim(rows) -> dict[int, dict[str, dict[str, Any]]]:
    """{D: {estimator: row}} of the dimension sweep."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["problem"].startswith("synthetic"):
            out.setdefault(r["dim"], {})[r["estimator"]] = r
    return dict(sorted(out.items()))


def _crossover(by_dim, estimator: str, key: str) -> tuple[int | None, list[int]]:
    """(smallest D from which ``estimator`` is faster than exact at every larger swept D, the
    dimensions where it is faster)."""
    dims = [d for d, e in by_dim.items() if estimator in e and "exact" in e]
    faster = [d for d in dims if by_dim[d][estimator][key] < by_dim[d]["exact"][key]]
    start = None
    for d in reversed(dims):
        if d not in faster:
            break
        start = d
    return start, faster


def _slope(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of log y against log x."""
    lx, ly = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(lx, ly, 1)[0])


def sweep_conclusions(rows) -> list[str]:
    by_dim = _sweep_by_dim(rows)
    if not by_dim:
        return []
    out = []
    for est in STOCHASTIC:
        for key, what in (("step_ms", "train step"), ("density_ms", "density batch")):
            start, faster = _crossover(by_dim, est, key)
            if not any(est in e for e in by_dim.values()):
                continue
            if start is None:
                out.append(
                    f"{est} vs exact, {what}: not faster at the largest swept D "
                    f"(faster at D in {faster})."
                )
            else:
                out.append(
                    f"{est} vs exact, {what}: faster from D = {start} on (faster at D in {faster})."
                )
    dims = list(by_dim)
    if len(dims) >= 2:
        for est in ("exact", *STOCHASTIC):
            pts = [(d, e[est]) for d, e in by_dim.items() if est in e]
            if len(pts) < 2:
                continue
            products = [(d, r["nfe_forward"] * products_per_evaluation(r)) for d, r in pts]
            out.append(
                f"{est}: from D = {pts[0][0]} to D = {pts[-1][0]} (x{pts[-1][0] // pts[0][0]}) the "
                f"train step went {pts[0][1]['step_ms']:.1f} -> {pts[-1][1]['step_ms']:.1f} ms "
                f"(log-log slope {_slope([(d, r['step_ms']) for d, r in pts]):.2f}), the density "
                f"batch {pts[0][1]['density_ms']:.1f} -> {pts[-1][1]['density_ms']:.1f} ms "
                f"(slope {_slope([(d, r['density_ms']) for d, r in pts]):.2f}); JVPs per solve "
                f"{products[0][1]:.0f} -> {products[-1][1]:.0f} (slope {_slope(products):.2f})."
            )
    return out


def grid_conclusions(rows) -> list[str]:
    out = []
    grid = [r for r in rows if not r["problem"].startswith("synthetic")]
    for problem in sorted({r["problem"] for r in grid}):
        mine = [r for r in grid if r["problem"] == problem]
        exact = [r for r in mine if r["estimator"] == "exact"]
        pairs = {}  # (solver, tol) -> {adjoint: row}
        for r in exact:
            pairs.setdefault((r["solver"], r["tol"]), {})[r["adjoint"]] = r
        both = [p for p in pairs.values() if {"recursive", "backsolve"} <= set(p)]
        if both and all(p[a]["temp_mib"] for p in both for a in p):
            mem = {a: statistics.median(p[a]["temp_mib"] for p in both) for a in both[0]}
            speed = [p["backsolve"]["step_ms"] / p["recursive"]["step_ms"] for p in both]
            out.append(
                f"{problem}: gradient working memory (XLA temp buffers), recursive checkpointing "
                f"{mem['recursive']:.1f} MiB vs backsolve {mem['backsolve']:.1f} MiB (median over "
                f"solvers/tols); backsolve's step took {min(speed):.1f}-{max(speed):.1f}x "
                "recursive's time."
            )
        keyed = {(r["solver"], r["tol"], r["adjoint"], r["estimator"]): r for r in mine}
        for est in STOCHASTIC:
            ratios = [
                keyed[(*k[:3], "exact")]["step_ms"] / r["step_ms"]
                for k, r in keyed.items()
                if k[3] == est and (*k[:3], "exact") in keyed
            ]
            if ratios:
                stds = [r["probe_std"] for k, r in keyed.items() if k[3] == est]
                out.append(
                    f"{problem}: train step time of the exact trace / {est}'s, at the same "
                    f"solver/tol/adjoint: {min(ratios):.1f}-{max(ratios):.1f}x (above 1: {est} is "
                    f"faster); per-example log p spread over probes "
                    f"{statistics.median(stds):.2f} nats (median)."
                )
        recursive = [r for r in exact if r["adjoint"] == "recursive"]
        for solver in sorted({r["solver"] for r in recursive}):
            pts = sorted((r for r in recursive if r["solver"] == solver), key=lambda r: -r["tol"])
            out.append(
                f"{problem}, {solver} (exact trace, recursive): "
                + "; ".join(
                    f"tol {r['tol']:g}: {r['step_ms']:.1f} ms/step, {r['nfe_forward']:.0f} NFE, "
                    f"error {r['error']:.1e}"
                    for r in pts
                )
            )
        pareto = _pareto(recursive)
        if pareto:
            out.append(
                f"{problem}: Pareto front of error vs step time (exact trace, recursive): "
                + "; ".join(
                    f"{r['solver']} tol {r['tol']:g} ({r['step_ms']:.1f} ms, "
                    f"error {r['error']:.1e})"
                    for r in pareto
                )
            )
    return out


def conclusions(rows: list[dict[str, Any]]) -> list[str]:
    """The answers a user acts on, computed from the rows."""
    return sweep_conclusions(rows) + grid_conclusions(rows)


def _pareto(rows):
    front, best = [], math.inf
    for r in sorted(rows, key=lambda r: r["step_ms"]):
        if r["error"] < best:
            front.append(r)
            best = r["error"]
    return front


def _fmt(column: str, value: Any) -> str:
    if isinstance(value, float):
        if column in ("tol", "error", "probe_std", "grad_rel_var"):
            return f"{value:.3g}"
        return f"{value:.1f}"
    return str(value)


def _table(rows, cols) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(c, r.get(c, "")) for c in cols) + " |")
    return lines


def _sweep_table(rows) -> list[str]:
    """The dimension sweep, one line per D: each estimator's step ms / density ms / probe std /
    gradient relative variance."""
    by_dim = _sweep_by_dim(rows)
    ests = [e for e in ESTIMATORS if any(e in v for v in by_dim.values())]
    if not by_dim:
        return []
    cols = ["D"] + [f"{e} {k}" for e in ests for k in ("step", "density", "std", "gvar")]
    lines = [
        "",
        "Dimension sweep (synthetic, tsit5 1e-5, recursive): train step ms / density batch ms / "
        "probe std of log p / gradient relative variance, per estimator:",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for d, by_est in by_dim.items():
        cells = [str(d)]
        for e in ests:
            r = by_est.get(e)
            cells += (
                [""] * 4
                if r is None
                else [
                    f"{r['step_ms']:.1f}",
                    f"{r['density_ms']:.1f}",
                    f"{r['probe_std']:.3g}",
                    f"{r['grad_rel_var']:.3g}",
                ]
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(rows, header: str) -> str:
    cols = [
        "problem",
        "solver",
        "tol",
        "adjoint",
        "estimator",
        "nfe_forward",
        "density_ms",
        "step_ms",
        "compile_s",
        "temp_mib",
        "error",
        "probe_std",
        "grad_rel_var",
        "load1",
    ]
    lines = [header, "", *_table(rows, cols), *_sweep_table(rows)]
    lines += ["", "Conclusions (computed from the rows above):", ""]
    lines += [f"- {c}" for c in conclusions(rows)]
    return "\n".join(lines) + "\n"


def plot(rows, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    grid = [r for r in rows if not r["problem"].startswith("synthetic")]
    problems = sorted({r["problem"] for r in grid})
    if grid:
        # Colour: solver; marker: estimator; filled: recursive, hollow: backsolve; line: the
        # Pareto front of the exact-trace, recursive cells.
        fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4.5), squeeze=False)
        solvers = sorted({r["solver"] for r in grid})
        colours = dict(
            zip(solvers, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False)
        )
        markers = dict(zip(ESTIMATORS, "osD^", strict=True))
        for ax, problem in zip(axes[0], problems, strict=True):
            mine = [r for r in grid if r["problem"] == problem]
            for r in mine:
                filled = r["adjoint"] == "recursive"
                ax.scatter(
                    r["step_ms"],
                    max(r["error"], 1e-9),
                    marker=markers[r["estimator"]],
                    s=28,
                    facecolors=colours[r["solver"]] if filled else "none",
                    edgecolors=colours[r["solver"]],
                )
            front = _pareto(
                [r for r in mine if r["estimator"] == "exact" and r["adjoint"] == "recursive"]
            )
            ax.plot(
                [r["step_ms"] for r in front],
                [max(r["error"], 1e-9) for r in front],
                "k--",
                lw=0.8,
                label="Pareto front (exact, recursive)",
            )
            for solver in solvers:
                ax.scatter([], [], color=colours[solver], marker="o", label=solver)
            for est in sorted({r["estimator"] for r in mine}):
                ax.scatter([], [], color="grey", marker=markers[est], label=est)
            ax.scatter([], [], facecolors="none", edgecolors="grey", label="backsolve (hollow)")
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="train step (ms)",
                ylabel="|mean log p − reference|",
                title=problem,
            )
            ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "cnf_pareto.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    by_dim = _sweep_by_dim(rows)
    if by_dim:
        panels = (
            ("train step (ms)", lambda r: r["step_ms"]),
            ("density batch (ms)", lambda r: r["density_ms"]),
            ("JVPs per density solve", lambda r: r["nfe_forward"] * products_per_evaluation(r)),
        )
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
        for ax, (label, value) in zip(axes, panels, strict=True):
            for est in ESTIMATORS:
                pts = [(d, value(e[est])) for d, e in by_dim.items() if est in e]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=est)
            ax.set_xscale("log", base=2)
            ax.set(yscale="log", xlabel="dimension D", ylabel=label)
            ax.legend(fontsize=7)
        fig.suptitle("cost vs dimension (synthetic field, tsit5 1e-5, recursive)")
        fig.tight_layout()
        paths.append(out / "cnf_dimension.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def _header(batch: int, run: dict[str, Any]) -> str:
    return (
        f"CNF solver x trace-estimator grid on {run['backend']} ({run['cpus']} CPUs), batch "
        f"{batch}, started {run['start']}, {run['wall_s'] / 60:.0f} min; load average (1, 5, 15 "
        f"min) {run['load_before']} before, {run['load_after']} after (`load1` column: after "
        f"each cell's timings).\n\n    {run['command']}"
    )


def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = GridConfig()
    p.add_argument(
        "--problems", nargs="+", default=list(d.problems), choices=["synthetic", "toy", "digits"]
    )
    p.add_argument("--dims", nargs="+", type=int, default=list(d.dims))
    p.add_argument("--solvers", nargs="+", default=list(d.solvers))
    p.add_argument("--tols", nargs="+", type=float, default=list(d.tols))
    p.add_argument("--adjoints", nargs="+", default=list(d.adjoints))
    p.add_argument("--estimators", nargs="+", default=list(d.estimators), choices=list(ESTIMATORS))
    p.add_argument(
        "--grid-estimators", nargs="+", default=list(d.grid_estimators), choices=list(ESTIMATORS)
    )
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--repeats", type=int, default=d.repeats)
    p.add_argument("--probe-draws", type=int, default=d.probe_draws)
    p.add_argument("--toy-workdir", help="a trained `jgen train ffjord_2d:8gaussians` run")
    p.add_argument("--digits-workdir", help="a trained `jgen train ffjord_digits` run")
    p.add_argument("--field", help="module:function returning (flax module, field params)")
    p.add_argument("--data", help="with --field: an .npy file of shape (N, D)")
    p.add_argument("--quick", action="store_true", help="a tiny grid (smoke run)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument(
        "--render",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="measure nothing: rewrite the table, conclusions and plots of cnf_solvers.json "
        "files (several: their rows together)",
    )
    args = p.parse_args(argv)
    if bool(args.field) != bool(args.data):
        p.error("--field and --data go together")
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    args = _parse_args(argv)
    if args.render:
        return _render_saved(args.render, args.out)
    cfg = GridConfig(
        problems=tuple(args.problems),
        dims=tuple(args.dims),
        solvers=tuple(args.solvers),
        tols=tuple(args.tols),
        adjoints=tuple(args.adjoints),
        estimators=tuple(args.estimators),
        grid_estimators=tuple(args.grid_estimators),
        batch=args.batch,
        repeats=args.repeats,
        probe_draws=args.probe_draws,
        toy_workdir=args.toy_workdir,
        digits_workdir=args.digits_workdir,
        field=args.field,
        data=args.data,
    )
    if args.quick:
        cfg = dataclasses.replace(
            cfg, dims=(2, 8), solvers=("tsit5",), tols=(1e-3,), batch=8, repeats=1, probe_draws=3
        )
    run = dict(
        command=" ".join(
            ["python benchmarks/cnf_solvers.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        start=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        load_before=[round(v, 2) for v in os.getloadavg()],
        cpus=len(os.sched_getaffinity(0)),
        backend=jax.default_backend(),
    )
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / "cnf_solvers.partial.json"  # the rows so far, should the run stop

    def save_partial(rows):
        partial.write_text(json.dumps(dict(config=dataclasses.asdict(cfg), run=run, rows=rows)))

    with harness.LoadMonitor() as monitor:
        rows = run_grid(cfg, on_row=save_partial)
    partial.unlink(missing_ok=True)
    run.update(
        wall_s=round(time.perf_counter() - start, 1),
        load_after=[round(v, 2) for v in os.getloadavg()],
    )
    harness.write_record(
        args.out / "cnf_solvers.json",
        config=dataclasses.asdict(cfg),
        metrics=dict(run=run, rows=rows),
        load=monitor.summary(),
        command=run["command"],
    )
    table = render_markdown(rows, _header(cfg.batch, run))
    (args.out / "cnf_solvers.md").write_text(table)
    plot(rows, args.out)
    print(table)
    return rows


def _render_saved(paths: Sequence[Path], out: Path) -> list[dict[str, Any]]:
    saved = [json.loads(path.read_text()) for path in paths]
    # A run record (harness.write_record) keeps the run and rows under 'metrics'.
    saved = [dict(s["metrics"], config=s["config"]) if "metrics" in s else s for s in saved]
    rows = [row for run in saved for row in run["rows"]]
    out.mkdir(parents=True, exist_ok=True)
    header = "\n\n".join(_header(run["config"]["batch"], run["run"]) for run in saved)
    table = render_markdown(rows, header)
    (out / "cnf_solvers.md").write_text(table)
    plot(rows, out)
    print(table)
    return rows


if __name__ == "__main__":
    main()
