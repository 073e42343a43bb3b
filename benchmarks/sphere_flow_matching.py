"""Riemannian flow matching and Moser flow on S²: a 4-component von Mises-Fisher mixture, test NLL
against the true entropy, each model density's integral over the sphere, and a figure.

* ``riemannian_fm``: the field `TangentField(MLPField(hidden, tanh))` on R³ (its flow stays on
  S²), trained with `GeodesicPath` from the uniform prior (`UniformSphere`). Test NLL: the CNF's
  exact inverse solve (exact trace, rtol = atol = ``tol``); ∫ p dA by quadrature (48 x 96
  points, one solve each).
* ``moser``: Moser flow, μ = 1/(4π) − div u with u = `SphereField(hidden, tanh)` (a tangent
  MLP), the positivity penalty λ ∫ μ₋ against uniform draws on S² (`MoserObjective` with
  ``prior=UniformSphere()``). μ needs no ODE. The model density is μ₊ = max(μ, ε) normalised by
  its integral Z₊ = ∫ μ₊ dA (by quadrature, ``quadrature`` points; Z₊ = 1 when μ >= ε
  everywhere), so the reported test NLL −mean log(μ₊ / Z₊) is that of a normalised density;
  the paper's −mean log μ₊ is reported as ``test_nll_unnormalised``, and ∫ μ dA (1 by
  construction) as ``model_density_integral``. Samples come from the flow of
  u / ((1 − t)ν + tμ) (`MoserObjective.sample_with_stats`).

Both train with the shared jitted step (Adam with a cosine schedule, batch 256, ``steps`` steps).
Also reported: the mixture's entropy by quadrature (the best NLL any model reaches in
expectation) and each model's gap to it. The figure shows the true log-density and each model's
samples in an equirectangular projection (longitude, latitude). A JSON run record goes to
``--record``.

    python -m benchmarks.sphere_flow_matching --record docs/records/sphere.json \
        --figure docs/figures/sphere.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness
from jgen.cnf import CNF, MLPField
from jgen.flow_matching import FlowMatchingObjective, MoserObjective
from jgen.flow_matching.sphere import (
    FOUR_VMF,
    GeodesicPath,
    SphereField,
    TangentField,
    UniformSphere,
    sphere_quadrature,
)
from jgen.train import TrainState, make_optimizer, make_train_step

MIXTURE = FOUR_VMF
METHODS = ("riemannian_fm", "moser")
LABELS = {"riemannian_fm": "Riemannian FM", "moser": "Moser flow"}


@dataclasses.dataclass(frozen=True)
class SphereConfig:
    methods: tuple[str, ...] = METHODS
    steps: int = 4000
    batch_size: int = 256
    hidden: int = 128
    learning_rate: float = 2e-3
    num_test: int = 2000
    tol: float = 1e-5
    moser_eps: float = 1e-5
    moser_penalty: float = 1.0
    quadrature: tuple[int, int] = (192, 384)  # Moser's Z₊ (z nodes, φ nodes)
    num_figure_samples: int = 3000
    seed: int = 0


def _train(objective, cfg: SphereConfig, train: np.ndarray):
    """(params, model_state, training seconds) after ``cfg.steps`` steps."""
    key = jax.random.key(cfg.seed)
    params, model_state = objective.init(key, {"x": jnp.asarray(train[:8])})
    tx = make_optimizer(learning_rate=cfg.learning_rate, total_steps=cfg.steps, schedule="cosine")
    state = TrainState.create(params=params, model_state=model_state, tx=tx, rng=key)
    step = make_train_step(objective.loss, donate=False)
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    for _ in range(cfg.steps):
        state, _ = step(
            state, {"x": jnp.asarray(train[rng.integers(0, len(train), cfg.batch_size)])}
        )
    jax.block_until_ready(state.params)
    return state.params, state.model_state, time.perf_counter() - start


def _chunked(fn: Callable, points: np.ndarray, chunk: int = 4096) -> np.ndarray:
    points = points.astype(np.float32)
    return np.concatenate(
        [np.asarray(fn(points[i : i + chunk])) for i in range(0, len(points), chunk)]
    )


def _riemannian_fm(cfg: SphereConfig, train, test):
    controller = diffrax.PIDController(rtol=cfg.tol, atol=cfg.tol)
    field = TangentField(MLPField((cfg.hidden,) * 3, activation="tanh"))
    objective = FlowMatchingObjective(
        CNF(field, (3,), stepsize_controller=controller), path=GeodesicPath(), base=UniformSphere()
    )
    params, model_state, train_s = _train(objective, cfg, train)
    log_prob = jax.jit(lambda x: objective.log_prob(params, model_state, x))
    nll = -_chunked(log_prob, test, chunk=len(test) // 8)
    points, weights = sphere_quadrature(48, 96)
    integral = float(np.sum(weights * np.exp(_chunked(log_prob, points, chunk=len(points) // 8))))
    metrics = {"model_density_integral": integral, "train_s": train_s}

    def sample(key, num):
        return objective.sample_and_log_prob(params, model_state, key, num)[0]

    return nll, metrics, sample


def _moser(cfg: SphereConfig, train, test):
    objective = MoserObjective(
        SphereField((cfg.hidden,) * 3), eps=cfg.moser_eps, penalty=cfg.moser_penalty,
        rtol=cfg.tol, atol=cfg.tol, prior=UniformSphere(),
    )  # fmt: skip
    params, model_state, train_s = _train(objective, cfg, train)
    density = jax.jit(lambda x: objective.density(params, x))
    points, weights = sphere_quadrature(*cfg.quadrature)
    mu = _chunked(density, points).astype(np.float64)
    mu_plus = np.maximum(mu, cfg.moser_eps)
    log_z = float(np.log(np.sum(weights * mu_plus)))
    nll_plus = -np.log(np.maximum(_chunked(density, test).astype(np.float64), cfg.moser_eps))
    metrics = {
        "test_nll_unnormalised": float(nll_plus.mean()),
        "model_density_integral": float(np.sum(weights * mu)),
        "mu_plus_integral": float(np.exp(log_z)),
        "negative_area_fraction": float(np.sum(weights * (mu < cfg.moser_eps)) / (4 * np.pi)),
        "train_s": train_s,
    }

    def sample(key, num):  # the draws whose solve succeeded
        return objective.sample_with_stats(params, model_state, key, num)[0]

    return nll_plus + log_z, metrics, sample


def run(cfg: SphereConfig, figure: str | None = None) -> dict[str, dict]:
    """Per method: its metrics (test NLL and its standard error, the gap to the entropy, ...)."""
    train = MIXTURE.sample(100_000, seed=cfg.seed)
    test = MIXTURE.sample(cfg.num_test, seed=cfg.seed + 1)
    entropy = MIXTURE.entropy()
    builders = {"riemannian_fm": _riemannian_fm, "moser": _moser}
    results, samples = {}, {}
    for method in cfg.methods:
        nll, extra, sample = builders[method](cfg, train, test)
        results[method] = {
            "test_nll": float(nll.mean()),
            "test_nll_se": float(nll.std(ddof=1) / np.sqrt(len(nll))),
            "true_entropy": entropy,
            "nll_minus_entropy": float(nll.mean() - entropy),
            "true_nll_of_test_points": float(-MIXTURE.log_prob(test).mean()),
            **extra,
        }
        if figure:
            samples[method] = np.asarray(sample(jax.random.key(5), cfg.num_figure_samples))
        print(method, results[method], flush=True)
    if figure:
        _figure(Path(figure), samples)
    return results


def _lon_lat(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.degrees(np.arctan2(x[:, 1], x[:, 0])), np.degrees(np.arcsin(np.clip(x[:, 2], -1, 1)))


def _figure(path: Path, samples: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lon, lat = np.meshgrid(np.linspace(-180, 180, 361), np.linspace(-90, 90, 181))
    lo, la = np.radians(lon), np.radians(lat)
    grid = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    fig, axes = plt.subplots(1, 1 + len(samples), figsize=(5.5 * (1 + len(samples)), 3.2),
                             sharey=True, squeeze=False)  # fmt: skip
    axes = axes[0]
    axes[0].pcolormesh(lon, lat, MIXTURE.log_prob(grid), shading="auto", vmin=-8)
    axes[0].set_title("true log-density (vMF mixture)")
    for ax, (method, x) in zip(axes[1:], samples.items(), strict=True):
        s_lon, s_lat = _lon_lat(x)
        ax.scatter(s_lon, s_lat, s=1, alpha=0.4)
        ax.set_title(f"{LABELS[method]} samples")
    for ax in axes:
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_xlabel("longitude (°)")
    axes[0].set_ylabel("latitude (°)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=None, choices=METHODS)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke settings (seconds)")
    parser.add_argument("--record", default=None)
    parser.add_argument("--figure", default=None)
    args = parser.parse_args(argv)
    cfg = SphereConfig()
    if args.quick:
        cfg = dataclasses.replace(cfg, steps=5, hidden=8, num_test=64, tol=1e-3,
                                  quadrature=(16, 32), num_figure_samples=32)  # fmt: skip
    if args.methods:
        cfg = dataclasses.replace(cfg, methods=tuple(args.methods))
    if args.steps:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    with harness.LoadMonitor() as monitor:
        metrics = run(cfg, args.figure)
    if args.record:
        record = harness.write_record(Path(args.record), config=dataclasses.asdict(cfg),
                                      metrics=metrics, load=monitor.summary())  # fmt: skip
        title = "Flow matching and Moser flow on S², 4-component vMF mixture: test NLL vs the true "
        record.update(
            group="flow matching on the sphere",
            title=title + "entropy" + ("" if record["publishable"] else " (under load)"),
        )
        Path(args.record).write_text(json.dumps(record, indent=2, default=float) + "\n")
    return metrics


if __name__ == "__main__":
    main()
