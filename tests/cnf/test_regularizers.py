"""RNODE regularisers (kinetic energy, Jacobian Frobenius norm) integrated along the CNF solve,
the estimators' Frobenius estimates, and their use (and NFE) in the maximum-likelihood objective."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jgen.cnf import CNF, ExactTrace, Hutchinson, HutchPlusPlus, MLPField, collect_regularizers
from jgen.distributions import Flow
from jgen.flows import DensityObjective
from tests.cnf.test_cnf import MATRIX, T0, T1, TIGHT, LinearField, _x

BOTH = ("kinetic_energy", "jacobian_frobenius")


def _kinetic_energy_by_quadrature(x: np.ndarray) -> np.ndarray:
    """∫_{t0}^{t1} ||A expm((t - t0) A) x||² dt per row of x (Gauss-Legendre, 40 nodes)."""
    nodes, weights = np.polynomial.legendre.leggauss(40)
    times = T0 + (T1 - T0) * (nodes + 1) / 2
    total = np.zeros(len(x))
    for t, w in zip(times, weights, strict=True):
        velocity = x @ (MATRIX @ scipy.linalg.expm((t - T0) * MATRIX)).T
        total += w * (T1 - T0) / 2 * np.sum(velocity**2, axis=-1)
    return total


def test_linear_field_regularizers_are_analytic_in_both_directions():
    """h = A z: F = (t1 - t0) ||A||_F² exactly, E = ∫ ||A z(t)||² dt (quadrature), the same
    (non-negative) values whether the trajectory is integrated forwards or backwards."""
    with jax.enable_x64(True):
        cnf = CNF(LinearField(), event_shape=(3,), t0=T0, t1=T1, stepsize_controller=TIGHT,
                  regularizers=BOTH)  # fmt: skip
        x = _x()
        variables = cnf.init(jax.random.key(0), x, method="forward_and_log_det")
        (y, _), state = cnf.apply(
            variables, x, method="forward_and_log_det", mutable=["intermediates"]
        )
        forward = collect_regularizers(state)
        _, state = cnf.apply(variables, y, method="inverse_and_log_det", mutable=["intermediates"])
        inverse = collect_regularizers(state)
        expected_frobenius = np.full(4, (T1 - T0) * np.sum(MATRIX**2))
        expected_kinetic = _kinetic_energy_by_quadrature(np.asarray(x))
        for regs in (forward, inverse):
            assert set(regs) == set(BOTH) and regs["kinetic_energy"].shape == (4,)
            np.testing.assert_allclose(regs["jacobian_frobenius"], expected_frobenius, rtol=1e-7)
            np.testing.assert_allclose(regs["kinetic_energy"], expected_kinetic, rtol=1e-6)


def _dense_field(matrix):
    return lambda z: jnp.tanh(matrix @ z) + 0.1 * z


@pytest.mark.parametrize(
    "estimator", [Hutchinson("gaussian", 2), Hutchinson("rademacher"), HutchPlusPlus(3)], ids=repr
)
def test_stochastic_frobenius_estimates_are_unbiased(estimator):
    """Mean over 20k probe draws of the Frobenius estimate ≈ ||∂f/∂z||_F² (5 standard errors)."""
    rng = np.random.default_rng(0)
    dim = 5
    matrix = jnp.asarray(rng.normal(size=(dim, dim)) / np.sqrt(dim), jnp.float32)
    f, z = _dense_field(matrix), jnp.asarray(rng.normal(size=dim), jnp.float32)
    exact = float(jnp.sum(jax.jacfwd(f)(z) ** 2))
    _, _, exact_estimate = ExactTrace().estimate(f, z, None, frobenius=True)
    np.testing.assert_allclose(exact_estimate, exact, rtol=1e-5)

    keys = jax.random.split(jax.random.key(1), 20_000)

    @jax.jit
    @jax.vmap
    def estimates(key):
        probes = estimator.init_probes(key, (dim,), jnp.float32)
        return estimator.estimate(f, z, probes, frobenius=True)[2]

    values = np.asarray(estimates(keys), np.float64)
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(values.mean() - exact) < 5 * standard_error + 1e-6, (values.mean(), exact)


@pytest.fixture(scope="module")
def regularized_objective():
    field = MLPField((8,), activation="tanh")
    cnf = CNF(field, event_shape=(2,), stepsize_controller=diffrax.PIDController(1e-3, 1e-3),
              regularizers=BOTH)  # fmt: skip
    weights = {"kinetic_energy": 0.3, "jacobian_frobenius": 0.05}
    objective = DensityObjective(Flow(cnf, (2,)), regularization=weights)
    batch = {"x": jax.random.normal(jax.random.key(0), (8, 2))}
    params, model_state = objective.init(jax.random.key(1), batch)
    return objective, weights, batch, params, model_state


def test_objective_adds_weighted_regularizers_and_reports_nfe(regularized_objective):
    objective, weights, batch, params, model_state = regularized_objective
    loss_fn = jax.jit(jax.value_and_grad(objective.loss, has_aux=True))
    (loss, (metrics, _)), grads = loss_fn(params, model_state, batch, jax.random.key(2))
    expected = metrics["nll"] + sum(w * metrics[name] for name, w in weights.items())
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert metrics["kinetic_energy"] > 0 and metrics["jacobian_frobenius"] > 0
    assert metrics["nfe"] >= 6  # at least one Tsit5 step
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))

    per_example = jax.jit(objective.evaluate)(params, model_state, batch, jax.random.key(3))
    assert per_example["nfe"].shape == (8,) and per_example["kinetic_energy"].shape == (8,)


def test_regularizer_weights_are_checked():
    flow = Flow(CNF(MLPField((4,)), event_shape=(2,)), (2,))
    with pytest.raises(ValueError, match="regularization keys"):
        DensityObjective(flow, regularization={"kinetic": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        DensityObjective(flow, regularization={"kinetic_energy": -1.0})
    # A CNF that does not integrate the regulariser does not report it: refused up front.
    with pytest.raises(ValueError, match=r"report \('accepted_steps', 'nfe', 'rejected_steps'\)"):
        DensityObjective(flow, regularization={"kinetic_energy": 1.0})


def test_cnf_rejects_unknown_regularizers():
    with pytest.raises(ValueError, match="regularizers"):
        CNF(MLPField((4,)), event_shape=(2,), regularizers=("kinetic",))
    with pytest.raises(ValueError, match="regularizers"):
        CNF(MLPField((4,)), event_shape=(2,), regularizers="kinetic_energy")
