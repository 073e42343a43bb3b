"""Moser flow: μ = ν − div u integrates to 1 over the box for any parameters (and would not
without the boundary factor), sampling's change of variables reproduces μ, the loss has the
paper's form, and a small model learns."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.data import load_dataset
from jgen.flow_matching import BoxField, MoserObjective, field_and_divergence
from jgen.nets import MLP
from jgen.train import TrainConfig, fit, make_optimizer

L = 3.0


@functools.cache
def _quadrature(order: int = 64):
    """Gauss–Legendre nodes and weights on [−L, L]²."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    points = L * np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
    return jnp.asarray(points, jnp.float32), L * L * np.outer(weights, weights).ravel()


def _objective(scale=None, **kwargs):
    return MoserObjective(BoxField((16, 16), L, output_scale=scale), **kwargs)


@pytest.mark.parametrize("seed", [0, 1])
def test_density_integrates_to_one_by_construction(seed):
    points, weights = _quadrature()
    # A large output scale: μ takes both signs, far from the prior; ∫ μ is still exactly 1.
    objective = _objective(scale=1.0)
    params, _ = objective.init(jax.random.key(seed), {"x": points[:2]})
    mu = np.asarray(jax.jit(objective.density)(params, points), np.float64)
    assert mu.min() < 0 < mu.max() and np.std(mu) > 5 * objective.prior_density
    assert np.sum(weights * mu) == pytest.approx(1.0, abs=1e-4)


def test_without_the_boundary_factor_the_integral_is_not_one():
    points, weights = _quadrature()
    net = MLP((16, 16), 2, activation=nn.softplus)
    params = net.init(jax.random.key(0), points[:1])
    _, div = field_and_divergence(lambda z: net.apply(params, z), points)
    integral = np.sum(weights * (1.0 / (2 * L) ** 2 - np.asarray(div, np.float64)))
    assert abs(integral - 1.0) > 0.05


def test_sampling_change_of_variables_reproduces_mu():
    # Samples x1 = Φ_1(x0), x0 ~ ν, with log ν − log|det ∂Φ_1/∂x0| = log μ(x1): the flow of
    # v_t = u / ((1 − t)ν + tμ) carries ν to μ (μ > 0 here: a small output scale).
    objective = _objective(scale=0.02)
    params, state = objective.init(jax.random.key(2), {"x": jnp.zeros((1, 2))})
    points, _ = _quadrature(32)
    assert float(jnp.min(objective.density(params, points))) > 0
    x1, log_prob, stats = objective.sample_with_stats(params, state, jax.random.key(3), 16)
    assert float(stats["succeeded_fraction"]) == 1.0 and float(stats["nfe"]) > 0
    assert np.all(np.abs(np.asarray(x1)) <= L)
    x0 = objective.sample_prior(jax.random.key(3), 16)
    assert float(jnp.max(jnp.abs(x1 - x0))) > 0.05  # the samples moved
    np.testing.assert_allclose(log_prob, objective.log_density(params, x1), atol=2e-3)


def test_loss_is_clamped_nll_plus_weighted_negative_mass():
    objective = _objective(scale=1.0, penalty=3.0, eps=1e-3)
    x = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (8, 2)), jnp.float32)
    params, state = objective.init(jax.random.key(0), {"x": x})
    key = jax.random.key(5)
    loss, (metrics, _) = objective.loss(params, state, {"x": x}, key)
    mu = objective.density(params, x)
    nll = -np.mean(np.log(np.maximum(mu, 1e-3)))
    y = objective.sample_prior(key, 8)
    negative = (2 * L) ** 2 * np.mean(np.maximum(1e-3 - objective.density(params, y), 0.0))
    assert negative > 0
    np.testing.assert_allclose(float(loss), nll + 3.0 * negative, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["negative_mass"]), negative, rtol=1e-5)
    np.testing.assert_allclose(objective.evaluate(params, state, {"x": x}, key)["nll"], -np.log(
        np.maximum(mu, 1e-3)), rtol=1e-5)  # fmt: skip


def test_small_model_learns_8gaussians():
    dataset = load_dataset("8gaussians", n_train=4096, n_test=512, seed=0)
    objective = MoserObjective(BoxField((32, 32), 4.5), eps=1e-4, penalty=1.0)
    steps = 300
    tx = make_optimizer(learning_rate=5e-3, total_steps=steps, schedule="cosine")
    config = TrainConfig(steps=steps, batch_size=128, log_every=0, eval_every=0, progress=False)
    result = fit(objective, dataset, tx, config)
    # The uniform prior on [−4.5, 4.5]² is log 81 = 4.39 nats; a single Gaussian is 4.26.
    assert result.eval_metrics["nll"] < 3.6, result.eval_metrics
