"""Gradient variance of the reparametrisation estimator against REINFORCE, without and with the
leave-one-out baseline (`jgen.vi.gradients`), on a toy problem and on a VAE's ELBO.

    python -m jgen.vi.variance_study [--out runs/gradient_variance] [--vae-steps 3000]

Toy: q = N(μ, diag σ²) in 3-D, f(z) = Σ a_i z_i² + b_i z_i (`gaussian_quadratic`), where the
exact gradient is known. VAE: ``vae_digits:diagonal`` (`jgen.vae`, binarised 8x8 digits, 8
latents) trained for ``--vae-steps`` steps; φ are the encoder's parameters, the decoder is held
fixed, and f_b(z) = log p(x_b, z) - log q_φ(z|x_b) is the ELBO of each of 32 test digits (each
digit's score term uses its own f_b). The variance is tr Cov of the estimate over
``--estimates`` independent draws, with n = 1 and n = 8 samples per estimate (the baseline
needs n ≥ 2). Writes ``variance.json`` and ``variance.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.vi.gradients import ESTIMATORS, Family, diagonal_gaussian, estimates, total_variance

__all__ = ["GaussianQuadratic", "gaussian_quadratic", "main", "vae_elbo_problem"]

SAMPLE_COUNTS = (1, 8)


class GaussianQuadratic(NamedTuple):
    """f, the family, φ and the exact gradient φ ↦ ∇_φ E_q[f] of the toy problem."""

    f: Any
    family: Family
    phi: dict
    exact_gradient: Any


def gaussian_quadratic() -> GaussianQuadratic:
    """q = N(μ, diag σ²), f(z) = Σ a z² + b z: E_q f = Σ a (μ² + σ²) + b μ, so
    ∇_μ = 2aμ + b and ∇_{log σ} = 2aσ²."""
    a = jnp.array([1.0, -0.5, 2.0])
    b = jnp.array([0.3, 1.0, -1.0])
    phi = {"mean": jnp.array([0.5, -1.0, 0.2]), "log_scale": jnp.array([0.0, -0.5, 0.3])}

    def f(phi, z):
        del phi
        return jnp.sum(a * z**2 + b * z, axis=-1)

    def exact_gradient(phi):
        return {
            "mean": 2 * a * phi["mean"] + b,
            "log_scale": 2 * a * jnp.exp(2 * phi["log_scale"]),
        }

    return GaussianQuadratic(f, diagonal_gaussian(), phi, exact_gradient)


def vae_elbo_problem(objective, params, x, key):
    """(f, family, φ) for the ELBO of a batch of data ``x`` under a trained `jgen.vae`
    `VAEObjective` without posterior flows: φ = the encoder's parameters."""
    from jgen.vae import VAE, standard_normal_log_prob

    model, likelihood = objective.model, objective.likelihood
    if model.posterior_flow is not None:
        raise ValueError("vae_elbo_problem needs a VAE without posterior flows")
    target = likelihood.target(key, jnp.asarray(x), train=False)
    x_in = likelihood.encoder_input(target)
    gaussian = diagonal_gaussian()

    def variables(phi):
        return {"params": {**params, "encoder": phi}}

    def sample(phi, key, n):
        eps = jax.random.normal(key, (n, x_in.shape[0], model.latent_dim), x_in.dtype)
        return model.apply(variables(phi), x_in, eps, method=VAE.posterior)["z"]

    def log_prob(phi, z):
        mean, log_scale, _ = model.apply(variables(phi), x_in, method=VAE.encode)
        return gaussian.log_prob({"mean": mean, "log_scale": log_scale}, z)

    def f(phi, z):
        decoded = model.apply({"params": params}, z, method=VAE.decode)
        log_joint = likelihood.log_prob(decoded, target, len(model.event_shape))
        return log_joint + standard_normal_log_prob(z) - log_prob(phi, z)

    return f, Family(sample, log_prob), params["encoder"]


def variances(f, family, phi, key, *, num_estimates: int) -> dict[str, dict[str, float]]:
    """tr Cov of each estimator at each n of `SAMPLE_COUNTS`, and the ratios to reparam."""
    out: dict[str, dict[str, float]] = {}
    for n in SAMPLE_COUNTS:
        row = {}
        for name, estimator in ESTIMATORS.items():
            if name == "reinforce_loo" and n < 2:
                continue
            run = jax.jit(
                lambda k, estimator=estimator, n=n: total_variance(
                    estimates(
                        estimator, f, family, phi, k, num_samples=n, num_estimates=num_estimates
                    )
                )
            )
            row[name] = float(run(jax.random.fold_in(key, n)))
        for name in list(row):
            if name != "reparam":
                row[f"{name}/reparam"] = row[name] / row["reparam"]
        out[f"n={n}"] = row
    return out


def train_vae(steps: int, workdir: Path):
    from jgen.config import load_experiment_config
    from jgen.experiment import build_experiment
    from jgen.train import fit

    overrides = [
        f"train.steps={steps}", "train.eval_every=0", "train.checkpoint_every=0",
        "train.progress=False", "evaluation.iwae_k=(1, 10)",
    ]  # fmt: skip
    config = load_experiment_config("vae_digits:diagonal", overrides)
    exp = build_experiment(config)
    result = fit(exp.objective, exp.dataset, exp.tx, exp.train, workdir=workdir, resume=False)
    return exp, result


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| problem | n | Var reparam | Var REINFORCE | Var REINFORCE+LOO | REINFORCE / reparam "
        "| REINFORCE+LOO / reparam |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for problem, rows in results.items():
        for n_key, row in rows.items():
            loo = row.get("reinforce_loo")
            lines.append(
                f"| {problem} | {n_key[2:]} | {row['reparam']:.4g} | {row['reinforce']:.4g} | "
                f"{'-' if loo is None else f'{loo:.4g}'} | {row['reinforce/reparam']:.3g} | "
                f"{'-' if loo is None else format(row['reinforce_loo/reparam'], '.3g')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gradient_variance")
    parser.add_argument("--vae-steps", type=int, default=3000)
    parser.add_argument("--estimates", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32, help="test digits in the VAE's ELBO")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(0)

    toy = gaussian_quadratic()
    results = {
        "toy (3-D Gaussian, quadratic f)": variances(
            toy.f, toy.family, toy.phi, key, num_estimates=args.estimates
        )
    }
    exp, fitted = train_vae(args.vae_steps, out / "vae")
    x = np.asarray(exp.dataset.test[: args.batch])
    f, family, phi = vae_elbo_problem(exp.objective, fitted.state.params, x, key)
    label = (
        f"VAE ELBO ({args.batch} test digits, encoder params, after {args.vae_steps} steps, "
        f"test ELBO {fitted.eval_metrics.get('elbo', float('nan')):.2f})"
    )
    results[label] = variances(f, family, phi, key, num_estimates=args.estimates)
    (out / "variance.json").write_text(json.dumps(results, indent=2))
    table = _table(results)
    (out / "variance.md").write_text(table)
    print(table)
    return results


if __name__ == "__main__":
    main()
