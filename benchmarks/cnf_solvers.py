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
    make bench-cnf

Output: ``cnf_solvers.json``, ``cnf_solvers.md`` (tables and the conclusions computed from them)
and ``cnf_pareto.png`` (error vs step time) and ``cnf_dimension.png`` (cost vs dimension).
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
        bijector, params = bijector.bijectors[index], params[f"bijectors_{index}"]
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


def run_grid(cfg: GridConfig) -> list[dict[str, Any]]:
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
    return rows


# Reporting -----------------------------------------------------------------------------------


def conclusions(rows: list[dict[str, Any]]) -> list[str]:
    """The answers a user acts on, computed from the rows."""
    out = []
    sweep = [r for r in rows if r["problem"].startswith("synthetic")]
    if sweep:
        by_dim: dict[int, dict[str, float]] = {}
        for r in sweep:
            by_dim.setdefault(r["dim"], {})[r["estimator"]] = r["step_ms"]
        faster = [
            d
            for d, t in sorted(by_dim.items())
            if "exact" in t
            and "hutchinson-rademacher" in t
            and t["hutchinson-rademacher"] < t["exact"]
        ]
        if faster:
            out.append(
                f"Hutchinson (1 Rademacher probe) trains faster than the exact trace from D = "
                f"{faster[0]} on (dimensions where it is faster: {faster})."
            )
        else:
            out.append("The exact trace was never slower than Hutchinson in the swept dimensions.")
        dims = sorted(by_dim)
        if len(dims) >= 2 and all("exact" in by_dim[d] for d in dims):
            lo, hi = dims[0], dims[-1]
            for est in ("exact", "hutchinson-rademacher"):
                if est in by_dim[lo] and est in by_dim[hi]:
                    out.append(
                        f"{est}: step time x{by_dim[hi][est] / by_dim[lo][est]:.1f} from D = {lo} "
                        f"to D = {hi} (dimension x{hi // lo})."
                    )
    grid = [r for r in rows if not r["problem"].startswith("synthetic")]
    for problem in sorted({r["problem"] for r in grid}):
        mine = [r for r in grid if r["problem"] == problem]
        exact = [r for r in mine if r["estimator"] == "exact"]
        for adjoint_pair in (("recursive", "backsolve"),):
            mem = {
                a: [r["temp_mib"] for r in exact if r["adjoint"] == a and r["temp_mib"]]
                for a in adjoint_pair
            }
            if all(mem.values()):
                out.append(
                    f"{problem}: gradient working memory, recursive checkpointing "
                    f"{statistics.median(mem['recursive']):.1f} MiB vs backsolve "
                    f"{statistics.median(mem['backsolve']):.1f} MiB (median over solvers/tols)."
                )
        pareto = _pareto([r for r in exact if r["adjoint"] == "recursive"])
        if pareto:
            out.append(
                f"{problem}: fastest accurate settings (Pareto front of error vs step time, "
                "exact trace): "
                + "; ".join(
                    f"{r['solver']} tol {r['tol']:g}: {r['step_ms']:.1f} ms, error {r['error']:.1e}"
                    for r in pareto
                )
            )
    return out


def _pareto(rows):
    front, best = [], math.inf
    for r in sorted(rows, key=lambda r: r["step_ms"]):
        if r["error"] < best:
            front.append(r)
            best = r["error"]
    return front


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
    ]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                v = f"{v:.3g}" if c in ("tol", "error", "probe_std", "grad_rel_var") else f"{v:.1f}"
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Conclusions (computed from the rows above):", ""]
    lines += [f"- {c}" for c in conclusions(rows)]
    return "\n".join(lines) + "\n"


def plot(rows, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    grid = [r for r in rows if not r["problem"].startswith("synthetic")]
    if grid:
        fig, axes = plt.subplots(
            1, len({r["problem"] for r in grid}), figsize=(6 * 2, 4.5), squeeze=False
        )
        for ax, problem in zip(axes[0], sorted({r["problem"] for r in grid}), strict=False):
            for est in ESTIMATORS:
                pts = [r for r in grid if r["problem"] == problem and r["estimator"] == est]
                if pts:
                    ax.scatter(
                        [r["step_ms"] for r in pts],
                        [max(r["error"], 1e-9) for r in pts],
                        label=est,
                        s=18,
                    )
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
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    sweep = [r for r in rows if r["problem"].startswith("synthetic")]
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for est in ESTIMATORS:
            pts = sorted((r["dim"], r["step_ms"]) for r in sweep if r["estimator"] == est)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=est)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="dimension D",
            ylabel="train step (ms)",
            title="cost vs dimension (tsit5, 1e-5)",
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "cnf_dimension.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


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
    args = p.parse_args(argv)
    if bool(args.field) != bool(args.data):
        p.error("--field and --data go together")
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    args = _parse_args(argv)
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
    rows = run_grid(cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"CNF solver x trace-estimator grid on {jax.default_backend()} "
        f"({len(os.sched_getaffinity(0))} CPUs), batch {cfg.batch}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    table = render_markdown(rows, header)
    (args.out / "cnf_solvers.json").write_text(
        json.dumps(dict(config=dataclasses.asdict(cfg), rows=rows), indent=2) + "\n"
    )
    (args.out / "cnf_solvers.md").write_text(table)
    plot(rows, args.out)
    print(table)
    return rows


if __name__ == "__main__":
    main()
