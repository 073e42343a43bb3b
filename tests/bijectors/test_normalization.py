"""Unit tests of ActNorm's data-dependent init and BatchNorm's train / eval modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen
from jgen import bijectors as jb

LOC = np.array([2.0, -1.0, 0.5], np.float32)
SCALE = np.array([3.0, 0.2, 1.0], np.float32)


def _data(shape, seed=0):
    """Per-feature loc/scale far from (0, 1), features on the last axis (size 3)."""
    return LOC + SCALE * jax.random.normal(jax.random.key(seed), shape)


def _moments(a):
    axes = tuple(range(a.ndim - 1))
    return np.asarray(a).mean(axis=axes), np.asarray(a).var(axis=axes)


# ActNorm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,event_ndims", [((16, 3), 1), ((4, 3, 2, 3), 3)])
def test_actnorm_forward_init_standardises_forward_output(shape, event_ndims):
    x = _data(shape)
    bij = jb.ActNorm(event_ndims=event_ndims)
    variables = bij.init(jax.random.key(0), x, method="forward_and_log_det")
    y, ld = bij.apply(variables, x, method="forward_and_log_det")
    mean, var = _moments(y)
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    np.testing.assert_allclose(var, 1.0, atol=1e-4)
    positions = int(np.prod(shape[1:-1]))
    expected = -positions * 0.5 * np.log(_moments(x)[1] + bij.eps).sum()
    np.testing.assert_allclose(ld, np.full(shape[0], expected), rtol=1e-5)


@pytest.mark.parametrize("shape,event_ndims", [((16, 3), 1), ((4, 3, 2, 3), 3)])
def test_actnorm_inverse_init_standardises_inverse_output(shape, event_ndims):
    y = _data(shape)
    bij = jb.ActNorm(event_ndims=event_ndims)
    variables = bij.init(jax.random.key(0), y, method="inverse_and_log_det")
    x, ld = bij.apply(variables, y, method="inverse_and_log_det")
    mean, var = _moments(x)
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    np.testing.assert_allclose(var, 1.0, atol=1e-4)
    positions = int(np.prod(shape[1:-1]))
    expected = -positions * 0.5 * np.log(_moments(y)[1] + bij.eps).sum()
    np.testing.assert_allclose(ld, np.full(shape[0], expected), rtol=1e-5)
    # ... and the forward inverts it.
    np.testing.assert_allclose(bij.apply(variables, x, method="forward"), y, rtol=1e-5, atol=1e-5)


def test_actnorm_parameters_are_not_re_estimated_after_init():
    bij = jb.ActNorm()
    variables = bij.init(jax.random.key(0), _data((16, 3)), method="inverse_and_log_det")
    other = 5.0 + 2.0 * _data((16, 3), seed=1)
    x = bij.apply(variables, other, method="inverse")
    p = variables["params"]
    np.testing.assert_allclose(x, (other - p["shift"]) * np.exp(-p["log_scale"]), rtol=1e-6)
    assert np.abs(_moments(x)[0]).max() > 1.0  # not standardised: the init data set the map


def test_actnorm_refuses_a_constant_feature_and_guards_a_nearly_constant_one_by_eps():
    ramp = jnp.linspace(-1.0, 1.0, 8)
    bij = jb.ActNorm(eps=1e-6)
    with pytest.raises(ValueError, match=r"feature\(s\) 1 .*constant"):
        bij.init(jax.random.key(0), jnp.stack([ramp, jnp.full(8, 4.0)], -1), method="forward")
    x = jnp.stack([ramp, 4.0 + 1e-5 * ramp], axis=-1)  # variance ~4e-11, far below eps
    variables = bij.init(jax.random.key(0), x, method="forward_and_log_det")
    y, ld = bij.apply(variables, x, method="forward_and_log_det")
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ld))
    np.testing.assert_allclose(variables["params"]["log_scale"][1], -0.5 * np.log(1e-6), 1e-4)
    assert np.max(np.abs(y[:, 1])) < 0.02


@pytest.mark.parametrize("kwargs", [dict(event_ndims=0), dict(eps=0.0), dict(eps=-1.0)])
def test_actnorm_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="ActNorm"):
        jb.ActNorm(**kwargs)


# BatchNorm -------------------------------------------------------------------------------

MOMENTUM = 0.8
LOG_GAMMA = np.array([0.3, -0.2, 0.1], np.float32)
BETA = np.array([0.5, 0.0, -1.0], np.float32)


def _batchnorm_variables(bij, y_init):
    """Init (train mode, on data) and then set non-trivial log_gamma and beta."""
    variables = jgen.init(bij, jax.random.key(0), y_init)
    params = {"log_gamma": jnp.asarray(LOG_GAMMA), "beta": jnp.asarray(BETA)}
    return {"params": params, "batch_stats": variables["batch_stats"]}


def _inverse_formula(y, mean, var, eps, positions):
    x = (y - mean) / np.sqrt(var + eps) * np.exp(LOG_GAMMA) + BETA
    ld = positions * (LOG_GAMMA - 0.5 * np.log(var + eps)).sum()
    return x, ld


def test_batchnorm_init_moves_running_statistics_from_identity():
    y = _data((16, 3))
    variables = jgen.init(jb.BatchNorm(momentum=MOMENTUM), jax.random.key(0), y)
    mean, var = _moments(y)
    stats = variables["batch_stats"]
    np.testing.assert_allclose(stats["mean"], (1 - MOMENTUM) * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["var"], MOMENTUM + (1 - MOMENTUM) * var, rtol=1e-5)


@pytest.mark.parametrize("shape,event_ndims", [((16, 3), 1), ((4, 3, 2, 3), 3)])
def test_batchnorm_train_mode_uses_batch_statistics_and_updates_running_ones(shape, event_ndims):
    bij = jb.BatchNorm(event_ndims=event_ndims, momentum=MOMENTUM)
    variables = _batchnorm_variables(bij, _data(shape, seed=1))
    y = _data(shape, seed=2)
    (x, ld), state = bij.apply(variables, y, inverse=True, train=True, mutable=["batch_stats"])
    mean, var = _moments(y)  # over batch and spatial axes, per channel
    expected_x, expected_ld = _inverse_formula(y, mean, var, bij.eps, np.prod(shape[1:-1]))
    np.testing.assert_allclose(x, expected_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, np.full(shape[0], expected_ld), rtol=1e-5)
    old = variables["batch_stats"]
    new = state["batch_stats"]
    np.testing.assert_allclose(
        new["mean"], MOMENTUM * old["mean"] + (1 - MOMENTUM) * mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(new["var"], MOMENTUM * old["var"] + (1 - MOMENTUM) * var, 1e-5)


def test_batchnorm_eval_mode_uses_running_statistics_in_both_directions():
    bij = jb.BatchNorm(momentum=MOMENTUM)
    variables = _batchnorm_variables(bij, _data((16, 3), seed=1))
    stats = variables["batch_stats"]
    y = _data((5, 3), seed=2)
    x, ld = bij.apply(variables, y, method="inverse_and_log_det")
    expected_x, expected_ld = _inverse_formula(y, stats["mean"], stats["var"], bij.eps, 1)
    np.testing.assert_allclose(x, expected_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, np.full(5, expected_ld), rtol=1e-5)
    # The forward is the exact inverse of the eval-mode map.
    y_back, ld_fwd = bij.apply(variables, x, method="forward_and_log_det")
    np.testing.assert_allclose(y_back, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld_fwd, -ld, rtol=1e-6)


def test_batchnorm_forward_uses_running_statistics_even_in_train_mode():
    bij = jb.BatchNorm(momentum=MOMENTUM)
    variables = _batchnorm_variables(bij, _data((16, 3), seed=1))
    x = jax.random.normal(jax.random.key(3), (5, 3))
    y_eval = bij.apply(variables, x, method="forward")
    (y_train, _), state = bij.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_array_equal(y_train, y_eval)
    for name in ("mean", "var"):
        np.testing.assert_array_equal(state["batch_stats"][name], variables["batch_stats"][name])


@pytest.mark.parametrize(
    "kwargs", [dict(momentum=1.0), dict(momentum=-0.1), dict(eps=0.0), dict(event_ndims=0)]
)
def test_batchnorm_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="BatchNorm"):
        jb.BatchNorm(**kwargs)
