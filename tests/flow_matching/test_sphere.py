"""S²: the vMF mixture's density integrates to 1 and its quadrature entropy matches the closed
form (one component) and Monte Carlo (a mixture); the geodesic path's velocity is d x_t/dt and
tangent; a CNF with a tangent field keeps samples on the sphere and its density (w.r.t. area,
uniform prior) integrates to 1 by quadrature."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.cnf import CNF, MLPField
from jgen.flow_matching import FlowMatchingObjective
from jgen.flow_matching.sphere import (
    FOUR_VMF,
    GeodesicPath,
    TangentField,
    UniformSphere,
    VonMisesFisherMixture,
    sphere_quadrature,
)
from jgen.validation import ValidationError

MIXTURE = FOUR_VMF


def test_vmf_mixture_density_and_entropy():
    points, weights = sphere_quadrature(256, 256)
    assert np.sum(weights) == pytest.approx(4 * np.pi, rel=1e-12)
    assert np.sum(weights * np.exp(MIXTURE.log_prob(points))) == pytest.approx(1.0, abs=1e-6)
    kappa = 10.0
    single = VonMisesFisherMixture(((0.0, 0.0, 1.0),), (kappa,))
    log_c = np.log(kappa / (4 * np.pi * np.sinh(kappa)))
    closed_form = -log_c - kappa * (1 / np.tanh(kappa) - 1 / kappa)
    assert single.entropy() == pytest.approx(closed_form, abs=1e-6)
    samples = MIXTURE.sample(20_000, seed=1)
    np.testing.assert_allclose(np.linalg.norm(samples, axis=-1), 1.0, atol=1e-5)
    nll = -MIXTURE.log_prob(samples)
    assert abs(nll.mean() - MIXTURE.entropy()) < 4 * nll.std() / np.sqrt(len(nll))


def test_geodesic_path_velocity_is_tangent_and_the_derivative():
    key = jax.random.key(0)
    x0 = jax.random.normal(key, (6, 3))
    x1 = jnp.asarray(MIXTURE.sample(6, seed=2))
    t = jnp.linspace(0.1, 0.9, 6)
    path = GeodesicPath()
    x_t, u_t = path.sample(None, x0, x1, t)
    np.testing.assert_allclose(jnp.linalg.norm(x_t, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(jnp.sum(x_t * u_t, -1), 0.0, atol=1e-5)
    _, derivative = jax.jvp(lambda s: path.sample(None, x0, x1, s)[0], (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(u_t, derivative, rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def sphere_model():
    controller = diffrax.PIDController(rtol=1e-5, atol=1e-5)
    cnf = CNF(TangentField(MLPField((16,), activation="tanh")), (3,),
              stepsize_controller=controller)  # fmt: skip
    objective = FlowMatchingObjective(cnf, path=GeodesicPath(), base=UniformSphere())
    params, state = objective.init(jax.random.key(0), {"x": jnp.ones((2, 3)) / np.sqrt(3)})
    return objective, params, state


def test_model_density_on_the_sphere_integrates_to_one(sphere_model):
    objective, params, state = sphere_model
    points, weights = sphere_quadrature(24, 48)
    log_p = np.asarray(jax.jit(objective.log_prob)(params, state, jnp.asarray(points, jnp.float32)))
    density = np.exp(log_p)
    assert density.max() / density.min() > 5.0  # far from the uniform density
    assert np.sum(weights * density) == pytest.approx(1.0, abs=0.01)


def test_samples_stay_on_the_sphere_with_their_log_density(sphere_model):
    objective, params, state = sphere_model
    x, log_p = jax.jit(objective.sample_and_log_prob, static_argnums=3)(
        params, state, jax.random.key(1), 64
    )
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(log_p, jax.jit(objective.log_prob)(params, state, x), atol=2e-3)


def test_sphere_bad_arguments():
    with pytest.raises(ValidationError, match="concentrations"):
        VonMisesFisherMixture(((0, 0, 1),), (0.0,))
    with pytest.raises(ValidationError, match="means"):
        VonMisesFisherMixture(((0, 1),), (1.0,))
