"""Unit tests of the elementwise bijectors beyond the registry properties."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb

LARGE = np.array([-50.0, -20.0, 0.0, 20.0, 50.0], np.float32)


def _fwd(bij, x, variables=None):
    out = bij.apply(variables or {}, x, method="forward_and_log_det")
    return tuple(np.asarray(a) for a in out)


def _inv(bij, y, variables=None):
    out = bij.apply(variables or {}, y, method="inverse_and_log_det")
    return tuple(np.asarray(a) for a in out)


def test_sigmoid_forward_and_log_det_finite_at_large_inputs():
    y, ld = _fwd(jb.Sigmoid(event_ndims=0), jnp.asarray(LARGE))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ld))
    # log σ'(x) = -|x| - 2 log(1 + e^{-|x|}) → -|x| for large |x|
    np.testing.assert_allclose(ld[[0, -1]], [-50.0, -50.0], rtol=1e-6)
    np.testing.assert_allclose(ld[2], -2 * math.log(2.0), rtol=1e-6)


def test_logit_inverse_log_det_finite_at_large_inputs():
    x, ld = _inv(jb.Logit(event_ndims=0), jnp.asarray(LARGE))
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(ld))
    np.testing.assert_allclose(ld[[0, -1]], [-50.0, -50.0], rtol=1e-6)


def test_tanh_forward_and_log_det_finite_at_large_inputs():
    y, ld = _fwd(jb.Tanh(event_ndims=0), jnp.asarray(LARGE))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ld))
    # log(1 - tanh²x) → 2 log 2 - 2|x| for large |x| (the naive formula gives log 0 = -inf)
    expected = 2 * math.log(2.0) - 2 * np.abs(LARGE[[0, 1, 3, 4]])
    np.testing.assert_allclose(ld[[0, 1, 3, 4]], expected, rtol=1e-6)
    np.testing.assert_allclose(ld[2], 0.0, atol=1e-7)


def test_tanh_log_det_matches_direct_formula():
    with jax.enable_x64(True):
        x = jnp.linspace(-4.0, 4.0, 9, dtype=jnp.float64)
        _, ld = _fwd(jb.Tanh(event_ndims=0), x)
        np.testing.assert_allclose(ld, np.log1p(-(np.tanh(np.asarray(x)) ** 2)), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inverses_finite_at_interval_edges(dtype):
    with jax.enable_x64(dtype == "float64"):
        unit_edges = jnp.array([0.0, 1.0], dtype)
        x, ld = _inv(jb.Sigmoid(event_ndims=0), unit_edges)
        y, ld_logit = _fwd(jb.Logit(event_ndims=0), unit_edges)
        t, ld_tanh = _inv(jb.Tanh(event_ndims=0), jnp.array([-1.0, 1.0], dtype))
        for value in (x, ld, y, ld_logit, t, ld_tanh):
            assert value.dtype == np.dtype(dtype)
            assert np.all(np.isfinite(value)), value
        assert x[0] < -10 < 10 < x[1]  # clipped to the open interval, not to a moderate value
        np.testing.assert_array_equal(y, x)
        assert t[0] < -5 < 5 < t[1]
        np.testing.assert_allclose(t[0], -t[1])


def test_logit_equals_sigmoid_inverse():
    u = jnp.array([[0.01, 0.3, 0.5, 0.97]])
    np.testing.assert_allclose(
        _fwd(jb.Logit(), u)[0], _inv(jb.Sigmoid(), u)[0], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(_fwd(jb.Logit(), u)[1], _inv(jb.Sigmoid(), u)[1], rtol=1e-6)


def test_elementwise_log_det_summed_over_event_axes():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4))
    per_element = _fwd(jb.Sigmoid(event_ndims=0), x)[1]
    for ndims, axes in [(1, (-1,)), (2, (-2, -1))]:
        ld = _fwd(jb.Sigmoid(event_ndims=ndims), x)[1]
        np.testing.assert_allclose(ld, per_element.sum(axis=axes), rtol=1e-5)


def test_scalar_affine_log_det_uses_absolute_scale():
    x = jnp.ones((2, 4, 4, 3))
    y, ld = _fwd(jb.ScalarAffine(shift=1.0, scale=-2.5, event_ndims=3), x)
    np.testing.assert_allclose(y, -1.5)
    np.testing.assert_allclose(ld, [48 * math.log(2.5)] * 2, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(scale=0.0), ValueError),
        (dict(scale="2"), TypeError),
        (dict(shift=None), TypeError),
        (dict(scale=float("inf")), ValueError),
        (dict(event_ndims=-1), ValueError),
    ],
)
def test_scalar_affine_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error, match="ScalarAffine"):
        jb.ScalarAffine(**kwargs)


def test_affine_default_init_is_identity_and_random_init_is_not():
    x = jax.random.normal(jax.random.key(0), (3, 4))
    bij = jb.Affine((4,))
    variables = bij.init(jax.random.key(1), x, method="forward_and_log_det")
    y, ld = _fwd(bij, x, variables)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(ld, np.zeros(3))

    bij = jb.Affine((4,), log_scale_init=nn.initializers.normal(1.0))
    variables = bij.init(jax.random.key(1), x, method="forward_and_log_det")
    log_scale = variables["params"]["log_scale"]
    y, ld = _fwd(bij, x, variables)
    np.testing.assert_allclose(y, x * np.exp(log_scale), rtol=1e-6)
    np.testing.assert_allclose(ld, [float(log_scale.sum())] * 3, rtol=1e-6)


def test_affine_per_channel_parameters_broadcast_over_image_events():
    x = jax.random.normal(jax.random.key(0), (2, 4, 5, 3))
    bij = jb.Affine((3,), event_ndims=3, log_scale_init=nn.initializers.normal(1.0))
    variables = bij.init(jax.random.key(1), x, method="forward_and_log_det")
    _, ld = _fwd(bij, x, variables)
    np.testing.assert_allclose(ld, [20 * float(variables["params"]["log_scale"].sum())] * 2, 1e-5)


@pytest.mark.parametrize("event_shape", [(0, 3), [3], (2.0,)])
def test_affine_rejects_bad_event_shape(event_shape):
    with pytest.raises(ValueError, match="event_shape"):
        jb.Affine(event_shape)


@pytest.mark.parametrize("cls", [jb.Sigmoid, jb.Logit, jb.Tanh])
def test_negative_event_ndims_rejected(cls):
    with pytest.raises(ValueError, match="event_ndims"):
        cls(event_ndims=-1)
