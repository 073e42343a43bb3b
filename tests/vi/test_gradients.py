"""Gradient estimators of ∇_φ E_q[f]: unbiased against the exact gradient of a Gaussian
expectation of a quadratic (with computed confidence intervals), variances in the expected
order, and a deliberately biased baseline that the same check catches."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.vi.gradients import ESTIMATORS, Family, _score_gradient, estimates, total_variance
from jgen.vi.variance_study import gaussian_quadratic

TOY = gaussian_quadratic()
# Two problems sharing φ (a "minibatch"): z_b ~ N(mean + OFFSETS[b], σ²), f = Σ_b f(z_b).
OFFSETS = jnp.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
NUM_SAMPLES, NUM_ESTIMATES = 4, 4000
# Two-sided z bound: 36 coordinates (6 x 3 estimators x 2 families) at a family-wise level of
# ~1.5e-4 (seeded, so the outcome is fixed; a bias of a few standard errors fails it).
Z_BOUND = 4.6


def exact_gradient(offsets):
    """∇ Σ_b E[f(z_b)]: the toy's exact gradient at each shifted mean, summed."""
    shifted = [{**TOY.phi, "mean": TOY.phi["mean"] + o} for o in offsets]
    return jax.tree.map(lambda *g: sum(g), *[TOY.exact_gradient(p) for p in shifted])


def batched_gaussian() -> Family:
    single = TOY.family

    def sample(phi, key, n):
        z = single.sample(phi, key, n * len(OFFSETS)).reshape(n, len(OFFSETS), -1)
        return z + OFFSETS

    def log_prob(phi, z):
        return single.log_prob(phi, z - OFFSETS)

    return Family(sample, log_prob)


def _include_self_baseline(f, family, phi, key, num_samples):
    """Biased on purpose: the baseline is the mean over all samples, including z_i itself."""
    return _score_gradient(
        f, family, phi, key, num_samples, lambda v: jnp.mean(v, axis=0, keepdims=True)
    )


ALL = {**ESTIMATORS, "include_self_baseline (biased)": _include_self_baseline}
FAMILIES = {"single": (lambda: TOY.family, OFFSETS[:1]), "batch of 2": (batched_gaussian, OFFSETS)}


@functools.cache
def _stack(estimator: str, family: str):
    make_family, _ = FAMILIES[family]

    @jax.jit
    def run(key):
        return estimates(
            ALL[estimator], TOY.f, make_family(), TOY.phi, key,
            num_samples=NUM_SAMPLES, num_estimates=NUM_ESTIMATES,
        )  # fmt: skip

    return jax.device_get(run(jax.random.key(7)))


def _z_scores(estimator: str, family: str) -> np.ndarray:
    stack = _stack(estimator, family)
    exact = exact_gradient(FAMILIES[family][1])
    z = []
    for name in ("mean", "log_scale"):
        values = np.asarray(stack[name], np.float64)
        stderr = values.std(axis=0, ddof=1) / np.sqrt(len(values))
        z.append((values.mean(axis=0) - np.asarray(exact[name])) / stderr)
    return np.concatenate(z)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_estimators_are_unbiased(estimator, family):
    z = _z_scores(estimator, family)
    assert np.all(np.abs(z) < Z_BOUND), f"{estimator}: z-scores {np.round(z, 2)}"


def test_the_unbiasedness_check_catches_a_biased_baseline():
    """With the sample's own value in its baseline the score term shrinks by (1 - 1/n): the
    check of `test_estimators_are_unbiased` fails it (|z| ≈ 10 here)."""
    z = _z_scores("include_self_baseline (biased)", "single")
    assert np.max(np.abs(z)) > 1.5 * Z_BOUND, np.round(z, 2)


def test_variances():
    """Reparametrisation: Var of the mean-gradient is 4a²σ²/n per coordinate (exact, as the
    per-sample gradient 2a z + b is linear in ε). Order: reparam < REINFORCE+LOO < REINFORCE."""
    stack = _stack("reparam", "single")
    sigma2 = np.exp(2 * np.asarray(TOY.phi["log_scale"]))
    a = np.asarray(TOY.exact_gradient(TOY.phi)["log_scale"]) / (2 * sigma2)  # f's a_i
    expected = np.sum(4 * a**2 * sigma2 / NUM_SAMPLES)
    np.testing.assert_allclose(total_variance(stack["mean"]), expected, rtol=0.1)
    variance = {name: float(total_variance(_stack(name, "single"))) for name in ESTIMATORS}
    assert variance["reparam"] < variance["reinforce_loo"] < variance["reinforce"], variance


def test_bad_sample_counts():
    with pytest.raises(ValueError, match="num_samples must be an int >= 2, got 1"):
        ESTIMATORS["reinforce_loo"](TOY.f, TOY.family, TOY.phi, jax.random.key(0), 1)
    with pytest.raises(ValueError, match="num_samples must be a positive int, got 0"):
        ESTIMATORS["reparam"](TOY.f, TOY.family, TOY.phi, jax.random.key(0), 0)
