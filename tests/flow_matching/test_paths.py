"""Probability paths: every path's target u_t is the time derivative of its x_t (autodiff, at
fixed x0, x1 and noise), the affine schedules start at the noise and end at the data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.flow_matching import (
    BrownianBridgePath,
    CosinePath,
    InterpolantPath,
    LinearGaussianPath,
    VariancePreservingPath,
    pairwise_sq_distances,
    squared_distances,
)

PATHS = {
    "linear": LinearGaussianPath(0.05),
    "interpolant": InterpolantPath(0.3),
    "brownian_bridge": BrownianBridgePath(0.7),
    "cosine": CosinePath(),
    "vp": VariancePreservingPath(),
}


def _pair(n=5):
    x0 = jax.random.normal(jax.random.key(0), (n, 3))
    x1 = 2.0 + jax.random.normal(jax.random.key(1), (n, 3))
    return x0, x1


@pytest.mark.parametrize("name", PATHS)
def test_target_is_the_time_derivative_of_the_path(name):
    path = PATHS[name]
    x0, x1 = _pair()
    t = jnp.linspace(0.05, 0.95, 5)
    key = jax.random.key(3)
    _, u_t = path.sample(key, x0, x1, t)
    _, derivative = jax.jvp(lambda s: path.sample(key, x0, x1, s)[0], (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(u_t, derivative, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["linear", "cosine", "vp"])
def test_affine_schedules_join_noise_to_data(name):
    x0, x1 = _pair()
    ends = jnp.zeros(5), jnp.ones(5)
    start, end = (PATHS[name].sample(None, x0, x1, t)[0] for t in ends)
    np.testing.assert_allclose(start, x0, atol=0.05 * 3)  # VP: α_0 = exp(−T(1)/2) ≈ 0.0066
    np.testing.assert_allclose(end, x1, atol=0.05 * 3)


def test_path_bad_arguments():
    with pytest.raises(ValueError, match="beta_min <= beta_max"):
        VariancePreservingPath(beta_min=2.0, beta_max=1.0)
    with pytest.raises(ValueError, match="sigma"):
        BrownianBridgePath(-1.0)
    x0, x1 = _pair()
    np.testing.assert_allclose(pairwise_sq_distances(x0, x1), squared_distances(x0, x1), rtol=1e-5)
