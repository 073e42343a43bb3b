"""Flow log_prob / sampling against the change-of-variables formula; bits/dim; dequantisation."""

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.distributions import (
    Flow,
    LogitPreprocess,
    StandardNormal,
    bits_per_dim,
    uniform_dequantize,
)
from jgen.flows import DensityObjective

KEY = jax.random.PRNGKey(0)


def _tanh_affine_flow():
    bij = jb.Chain([jb.FromDistrax(distrax.Tanh()), jb.ScalarAffine(0.3, 2.0)])
    return Flow(bij, (2,))


def test_log_prob_matches_change_of_variables():
    flow = _tanh_affine_flow()
    x = jnp.array([[0.1, -0.5], [0.7, 0.2]])
    v = flow.init(KEY, x, method=Flow.log_prob)
    lp = flow.apply(v, x, method=Flow.log_prob)
    # f(z) = tanh(2z + 0.3): f⁻¹(x) = (atanh(x) − 0.3)/2, |df⁻¹/dx| = 1/(2 (1 − x²)).
    z = (jnp.arctanh(x) - 0.3) / 2
    expected = jax.scipy.stats.norm.logpdf(z).sum(-1) - jnp.log(2 * (1 - x**2)).sum(-1)
    np.testing.assert_allclose(lp, expected, rtol=1e-5)


def test_sample_and_log_prob_agrees_with_log_prob():
    flow = _tanh_affine_flow()
    v = flow.init(KEY, jnp.zeros((1, 2)), method=Flow.log_prob)
    x, lp = flow.apply(v, KEY, 64, method=Flow.sample_and_log_prob)
    assert x.shape == (64, 2) and lp.shape == (64,)
    np.testing.assert_allclose(lp, flow.apply(v, x, method=Flow.log_prob), rtol=1e-4, atol=1e-4)


def test_distrax_base_is_accepted():
    base = distrax.MultivariateNormalDiag(jnp.ones(2), 2 * jnp.ones(2))
    flow = Flow(jb.Identity(), (2,), base=base)
    x = jnp.array([[0.0, 1.0]])
    v = flow.init(KEY, x, method=Flow.log_prob)
    np.testing.assert_allclose(flow.apply(v, x, method=Flow.log_prob), base.log_prob(x), rtol=1e-6)
    assert flow.apply(v, KEY, 5, method=Flow.sample).shape == (5, 2)


def test_standard_normal_log_prob():
    base = StandardNormal((2, 3))
    z = jax.random.normal(KEY, (4, 2, 3))
    expected = jax.scipy.stats.norm.logpdf(z).sum((1, 2))
    np.testing.assert_allclose(base.log_prob(z), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "x,error,match",
    [
        (jnp.zeros((3, 5)), ValueError, r"event shape \(2,\)"),
        (jnp.zeros((3, 2), jnp.int32), TypeError, "floating-point"),
    ],
)
def test_log_prob_rejects_bad_input(x, error, match):
    flow = _tanh_affine_flow()
    v = flow.init(KEY, jnp.zeros((1, 2)), method=Flow.log_prob)
    with pytest.raises(error, match=match):
        flow.apply(v, x, method=Flow.log_prob)


def test_bits_per_dim_formula():
    # A uniform density on the unit cube has log p_Y = 0: bits/dim = log2(K).
    np.testing.assert_allclose(bits_per_dim(jnp.zeros(3), 64, 17), math.log2(17), rtol=1e-6)
    # Each extra nat of log-density over D dims lowers bpd by 1/(D ln 2).
    np.testing.assert_allclose(
        bits_per_dim(jnp.array(64.0), 64, 256), 8.0 - 1 / math.log(2), rtol=1e-6
    )


def test_uniform_dequantize_stays_in_each_level_cell():
    x = jnp.arange(17).reshape(1, 17)
    y = uniform_dequantize(KEY, jnp.repeat(x, 100, 0), 17)
    assert float(y.min()) >= 0.0 and float(y.max()) < 1.0
    np.testing.assert_array_equal(np.floor(np.asarray(y) * 17), np.repeat(np.asarray(x), 100, 0))
    with pytest.raises(ValueError, match="num_levels"):
        uniform_dequantize(KEY, x, 1)


def test_logit_preprocess_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        LogitPreprocess(0.5)


def test_uniform_dequantised_density_gives_log2_levels_bits():
    """End to end: the flow 'uniform on [0,1]^D' gives exactly log2(K) bits/dim.

    LogitPreprocess(alpha=0) maps a standard logistic base exactly to U(0, 1), so the dequantised
    data has log p_Y = 0 and the bound is D log K nats.
    """
    base = distrax.Independent(distrax.Logistic(jnp.zeros(4), jnp.ones(4)), 1)
    flow = Flow(LogitPreprocess(0.0, event_ndims=1), (4,), base=base)
    objective = DensityObjective(flow, num_levels=17)
    batch = {"x": jnp.array([[0, 5, 16, 3], [1, 1, 1, 1]])}
    params, state = objective.init(KEY, batch)
    metrics = objective.evaluate(params, state, batch, KEY)
    np.testing.assert_allclose(metrics["bpd"], math.log2(17), rtol=1e-4)


def test_log_prob_rejects_a_bijector_with_the_wrong_event_ndims():
    flow = Flow(jb.Sigmoid(event_ndims=0), (2,))  # per-element log-dets: shape (B, 2)
    x = jnp.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"log-det of shape \(3, 2\), expected the batch shape"):
        flow.init(KEY, x, method=Flow.log_prob)


@pytest.mark.parametrize(
    "context,match",
    [(jnp.zeros(()), "context must have shape"), (jnp.zeros((4, 1)), r"\(3, K\)")],
)
def test_log_prob_rejects_a_context_of_the_wrong_shape(context, match):
    flow = _tanh_affine_flow()
    v = flow.init(KEY, jnp.zeros((1, 2)), method=Flow.log_prob)
    with pytest.raises(ValueError, match=match):
        flow.apply(v, jnp.zeros((3, 2)), context, method=Flow.log_prob)


def test_sample_rejects_bad_num_samples():
    flow = _tanh_affine_flow()
    v = flow.init(KEY, jnp.zeros((1, 2)), method=Flow.log_prob)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        flow.apply(v, KEY, 0, method=Flow.sample)


def test_uniform_dequantize_stays_below_one():
    # Level K (out of range on purpose) would land on exactly 1.0 and above; the result is
    # clipped to the largest float below 1, which also covers (K-1 + u)/K rounding up.
    y = uniform_dequantize(KEY, jnp.full((1000,), 256), 256)
    assert float(y.max()) < 1.0
    assert y.dtype == jnp.result_type(float)
