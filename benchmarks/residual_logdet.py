"""Bias, variance and time of the residual-flow log-det estimators (`jgen.bijectors.residual`).

One i-ResNet block x ↦ x + g(x) on D-dimensional events, g an MLP D → hidden → D with
LipSwish, at a fixed batch of standard normal inputs. The second kernel is
set to the transpose of the first (then both have the norm ``coeff``: the N(0, 1) initial
entries make the normalisation active), so J_g = K₁ diag(φ') K₁ᵀ is symmetric positive
semi-definite with eigenvalues up to about coeff²: the log-det is large and the power series
converges slowly, the hard case for the estimators (random kernels give traces near zero and
nearly vanishing log-dets, where every estimator looks alike). For every estimator:

  bias         mean over draws and events of (estimate − exact log det(I + J_g)), ± its
               standard error (over draws of the per-draw batch mean)
  |bias|/|ld|  |bias| relative to the mean |exact log-det|
  std          per-event standard deviation over draws (mean over events)
  value ms     one jitted call on the batch (log-det values only), median wall time over
               repeats, and (in brackets) median process CPU time, steadier on a shared machine
  grad ms      value and gradient of the summed log-det w.r.t. the block's parameters (what
               a training step pays), the same two medians

The exact estimator (slogdet of the dense Jacobian) is the reference. Every draw uses fresh
probes (and a fresh number of terms for the Russian roulette).

    python benchmarks/residual_logdet.py [--dim 16] [--batch 256] [--draws 1000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness
from benchmarks.harness import median
from jgen import bijectors as jb

ESTIMATORS: dict[str, jb.LogDetEstimator] = {
    "exact": jb.ExactLogDet(),
    "series n=1": jb.PowerSeriesLogDet(num_terms=1),
    "series n=2": jb.PowerSeriesLogDet(num_terms=2),
    "series n=5": jb.PowerSeriesLogDet(num_terms=5),
    "series n=10": jb.PowerSeriesLogDet(num_terms=10),
    "roulette geometric(0.5), 2 exact": jb.RussianRouletteLogDet(p=0.5, n_exact_terms=2),
    "roulette poisson(2), 1 exact": jb.RussianRouletteLogDet(
        truncation="poisson", rate=2.0, n_exact_terms=1
    ),
}


def _time(fn, *args, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of one call (after a compiling call). On a shared
    machine the CPU time is the steadier of the two."""
    jax.block_until_ready(fn(*args))  # compile
    wall, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return median(wall), median(cpu)


def _timings(value, grad, params, key, *, repeats: int) -> dict[str, float]:
    value_wall, value_cpu = _time(value, params, key, repeats=repeats)
    grad_wall, grad_cpu = _time(grad, params, key, repeats=repeats)
    return dict(
        value_ms=1e3 * value_wall, value_cpu_ms=1e3 * value_cpu,
        grad_ms=1e3 * grad_wall, grad_cpu_ms=1e3 * grad_cpu,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    block = jb.ResidualBlock(
        (args.dim,),
        hidden_dims=(args.hidden,),
        coeff=args.coeff,
        kernel_init=nn.initializers.normal(1.0),
    )
    x = jax.random.normal(jax.random.key(0), (args.batch, args.dim))
    variables = block.init(jax.random.key(1), x, method="inverse_and_log_det")
    params = dict(variables["params"])
    params["layers_1"] = dict(params["layers_1"], kernel=params["layers_0"]["kernel"].T)
    spectral = variables["spectral"]
    for _ in range(20):  # settle the power iteration on the new second kernel
        _, state = block.apply(
            {"params": params, "spectral": spectral}, x, method="inverse_and_log_det",
            mutable=["spectral"],
        )  # fmt: skip
        spectral = state["spectral"]
    rows = []
    exact = None
    for name, estimator in ESTIMATORS.items():
        member = block.clone(logdet=estimator)

        def log_det(params, key, member=member):
            v = {"params": params, "spectral": spectral}
            rngs = {"trace": key} if member.logdet.stochastic else None
            return member.apply(v, x, method="inverse_and_log_det", rngs=rngs)[1]

        value = jax.jit(log_det)
        grad = jax.jit(jax.value_and_grad(lambda p, k, f=log_det: jnp.sum(f(p, k))))
        key = jax.random.key(2)
        if exact is None:  # the first row is the exact reference
            exact = np.asarray(value(params, key))
        draws_n = 1 if not estimator.stochastic else args.draws
        keys = jax.random.split(jax.random.key(3), draws_n)
        draws = np.asarray(jax.lax.map(lambda k, f=log_det: f(params, k), keys))
        errors = draws - exact  # (draws, batch)
        batch_means = errors.mean(axis=1)
        bias = float(batch_means.mean())
        se = float(batch_means.std(ddof=1) / np.sqrt(draws_n)) if draws_n > 1 else 0.0
        rows.append(
            dict(
                estimator=name,
                bias=bias,
                bias_se=se,
                relative_bias=abs(bias) / float(np.mean(np.abs(exact))),
                std=float(draws.std(axis=0, ddof=1).mean()) if draws_n > 1 else 0.0,
                **_timings(value, grad, params, key, repeats=args.repeats),
            )
        )
    config = {k: getattr(args, k) for k in ("dim", "hidden", "coeff", "batch", "draws", "repeats")}
    config["mean_abs_exact_log_det"] = float(np.mean(np.abs(exact)))
    return dict(config=config, rows=rows)


def table(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        f"D = {c['dim']}, MLP {c['dim']}→{c['hidden']}→{c['dim']} (J symmetric PSD), coeff "
        f"{c['coeff']}, batch {c['batch']}, {c['draws']} draws; mean |exact log-det| = "
        f"{c['mean_abs_exact_log_det']:.3f}",
        "",
        "| estimator | bias (± s.e.) | abs(bias)/abs(ld) | std per event | value ms (cpu) "
        "| grad ms (cpu) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['estimator']} | {r['bias']:+.4f} (± {r['bias_se']:.4f}) | "
            f"{r['relative_bias']:.3f} | {r['std']:.3f} | {r['value_ms']:.2f} "
            f"({r['value_cpu_ms']:.2f}) | {r['grad_ms']:.2f} ({r['grad_cpu_ms']:.2f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--coeff", type=float, default=0.8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="write residual_logdet.json/.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.dim, args.hidden, args.batch, args.draws, args.repeats = 3, 8, 8, 20, 2
    with harness.LoadMonitor() as monitor:
        result = run(args)
    load = monitor.summary()
    text = table(result) + "\n\n" + harness.load_line(load)
    print(text)
    if args.out is not None:
        path = args.out / "residual_logdet.json"
        harness.write_record(path, config=vars(args) | {"out": str(args.out)}, metrics=result,
                             load=load)  # fmt: skip
        (args.out / "residual_logdet.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
