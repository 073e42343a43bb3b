"""A CNF with a stochastic trace estimator trains through the shared `DensityObjective`."""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.cnf import CNF, ExactTrace, Hutchinson, MLPField
from jgen.distributions import Flow
from jgen.flows import DensityObjective


def test_density_objective_feeds_the_trace_rng_stream():
    field = MLPField(hidden_dims=(8,))
    batch = {"x": jnp.asarray(np.random.default_rng(0).normal(size=(4, 2)), jnp.float32)}
    exact = DensityObjective(Flow(CNF(field, event_shape=(2,)), (2,)))
    params, state = exact.init(jax.random.PRNGKey(0), batch)
    stochastic = DensityObjective(
        Flow(CNF(field, event_shape=(2,), trace_estimator=Hutchinson()), (2,))
    )
    evaluate = jax.jit(stochastic.evaluate)
    a = evaluate(params, state, batch, jax.random.PRNGKey(1))["nll"]
    b = evaluate(params, state, batch, jax.random.PRNGKey(1))["nll"]
    c = evaluate(params, state, batch, jax.random.PRNGKey(2))["nll"]
    reference = exact.evaluate(params, state, batch, jax.random.PRNGKey(1))["nll"]
    np.testing.assert_array_equal(a, b)  # the key decides the probes
    assert not np.allclose(a, c)  # other probes, another estimate
    assert np.all(np.isfinite(a)) and np.all(np.abs(a - reference) < 5.0)
    assert isinstance(exact.flow.bijector.trace_estimator, ExactTrace)
