"""One-solve likelihoods: samples and their log p from one forward solve equal the two-solve
(sample, then density) value to solver tolerance, per example and jointly; log p is
differentiable (gradients against finite differences in float64)."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.cnf import CNF, ConcatSquashField, MLPField
from jgen.flow_matching import FlowMatchingObjective


@pytest.fixture(scope="module")
def model():
    controller = diffrax.PIDController(rtol=1e-6, atol=1e-6)
    cnf = CNF(ConcatSquashField((16, 16), activation="tanh"), (2,), stepsize_controller=controller)
    objective = FlowMatchingObjective(cnf)
    params, state = objective.init(jax.random.key(0), {"x": jnp.ones((4, 2))})
    # Larger weights than at initialisation: a clearly non-Gaussian flow.
    params = jax.tree.map(lambda p: 3.0 * p, params)
    return objective, params, state


@pytest.mark.parametrize("jointly", [False, True], ids=["per_example", "joint"])
def test_one_solve_equals_two_solves(model, jointly):
    objective, params, state = model
    one_solve = jax.jit(objective.sample_and_log_prob, static_argnums=3, static_argnames="jointly")
    x, log_prob = one_solve(params, state, jax.random.key(1), 64, jointly=jointly)
    again = jax.jit(objective.log_prob, static_argnames="jointly")(
        params, state, x, jointly=jointly
    )
    base = jax.scipy.stats.norm.logpdf(x).sum(-1)
    assert float(jnp.max(jnp.abs(log_prob - base))) > 0.1  # the flow is far from the identity
    np.testing.assert_allclose(log_prob, again, atol=2e-4)
    samples, _ = objective.sample_with_stats(params, state, jax.random.key(1), 64)
    np.testing.assert_allclose(samples, x, atol=1e-4)


def test_log_prob_is_differentiable_float64():
    with jax.enable_x64(True):
        controller = diffrax.PIDController(rtol=1e-8, atol=1e-8)
        cnf = CNF(MLPField((6,), activation="tanh"), (2,), stepsize_controller=controller)
        objective = FlowMatchingObjective(cnf)
        x = jax.random.normal(jax.random.key(2), (3, 2), jnp.float64)
        params, state = objective.init(jax.random.key(3), {"x": x})
        leaves, tree = jax.tree.flatten(params)
        direction = jax.tree.unflatten(
            tree,
            [jax.random.normal(jax.random.key(i), p.shape, p.dtype) for i, p in enumerate(leaves)],
        )

        def mean_log_prob(scale, y):
            moved = jax.tree.map(lambda p, d: p + scale * d, params, direction)
            return jnp.mean(objective.log_prob(moved, state, y))

        analytic = jax.jit(jax.grad(mean_log_prob))(0.0, x)
        h = 1e-4
        value = jax.jit(mean_log_prob)
        numeric = (value(h, x) - value(-h, x)) / (2 * h)
        assert abs(float(analytic)) > 1e-3
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5)
