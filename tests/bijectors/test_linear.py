"""Unit tests of the permutations and the LU-parameterised linear maps."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb


def _init(bij, x, seed=0):
    return bij.init(jax.random.key(seed), x, method="forward_and_log_det")


def _perturbed(variables, scale=0.3, seed=7):
    """Move every parameter away from its init, so that log|det W| is not 0."""
    leaves, treedef = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [
        v + scale * jax.random.normal(k, v.shape, v.dtype)
        for v, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def _methods(bij):
    # Plain (eager) calls: each is used once, so compiling them with jit would only cost time.
    fwd = functools.partial(bij.apply, method="forward_and_log_det")
    inv = functools.partial(bij.apply, method="inverse_and_log_det")
    weight = functools.partial(bij.apply, method="weight")
    return fwd, inv, weight


# LU-parameterised maps ---------------------------------------------------------------------


def test_lu_linear_log_det_equals_slogdet_of_assembled_weight():
    bij = jb.LULinear(4, permutation=(3, 1, 0, 2))
    x = jax.random.normal(jax.random.key(1), (5, 4))
    variables = _perturbed(_init(bij, x))
    fwd, inv, weight = _methods(bij)
    w = np.asarray(weight(variables), np.float64)
    y, ld = fwd(variables, x)
    sign, logabsdet = np.linalg.slogdet(w)
    assert abs(logabsdet) > 0.1, "the test needs a non-trivial determinant"
    # det W = det P · Π s with s > 0: the sign is fixed by the permutation.
    assert sign == np.linalg.det(np.eye(4)[[3, 1, 0, 2]])
    np.testing.assert_allclose(ld, np.full(5, logabsdet), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, x @ w.T + variables["params"]["bias"], rtol=1e-5, atol=1e-5)
    x_back, ld_inv = inv(variables, y)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ld_inv, -ld, rtol=1e-6)


def test_conv1x1_log_det_is_pixels_times_slogdet():
    bij = jb.Conv1x1(4)
    x = jax.random.normal(jax.random.key(1), (2, 5, 3, 4))
    variables = _perturbed(_init(bij, x))
    fwd, inv, weight = _methods(bij)
    w = np.asarray(weight(variables), np.float64)
    y, ld = fwd(variables, x)
    logabsdet = np.linalg.slogdet(w)[1]
    assert abs(logabsdet) > 0.1
    np.testing.assert_allclose(ld, [15 * logabsdet] * 2, rtol=1e-5)
    expected = np.einsum("nhwc,dc->nhwd", x, w) + variables["params"]["bias"]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inv(variables, y)[0], x, rtol=1e-4, atol=1e-4)


def test_default_init_is_random_orthogonal_and_deterministic_given_the_key():
    bij = jb.LULinear(5, use_bias=False)
    x = jnp.zeros((1, 5))
    w0 = np.asarray(bij.apply(_init(bij, x, seed=0), method="weight"))
    w0_again = np.asarray(bij.apply(_init(bij, x, seed=0), method="weight"))
    w1 = np.asarray(bij.apply(_init(bij, x, seed=1), method="weight"))
    np.testing.assert_allclose(w0 @ w0.T, np.eye(5), atol=1e-5)
    np.testing.assert_allclose(w1 @ w1.T, np.eye(5), atol=1e-5)
    np.testing.assert_array_equal(w0, w0_again)
    assert np.abs(w0 - w1).max() > 0.1
    assert np.abs(w0 - np.eye(5)).max() > 0.1
    assert "bias" not in _init(bij, x)["params"]


def test_permutation_gathers_rows_of_the_weight():
    x = jnp.zeros((1, 3))
    plain, permuted = jb.LULinear(3), jb.LULinear(3, permutation=(2, 0, 1))
    w = np.asarray(plain.apply(_init(plain, x), method="weight"))
    w_perm = np.asarray(permuted.apply(_init(permuted, x), method="weight"))
    np.testing.assert_array_equal(w_perm, w[[2, 0, 1]])


def test_lu_params_are_triangular_factors_with_unit_lower_diagonal():
    bij = jb.LULinear(4)
    lu = _perturbed(_init(bij, jnp.zeros((1, 4))))["params"]["lu"]
    # Entries outside the strict triangles are ignored: W depends only on the masked parts.
    w = bij.apply({"params": {"lu": lu, "bias": jnp.zeros(4)}}, method="weight")
    lower = np.tril(lu["lower"], -1) + np.eye(4)
    upper = np.triu(lu["upper"], 1) + np.diag(np.exp(lu["log_diag"]))
    np.testing.assert_allclose(w, lower @ upper, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: jb.LULinear(0),
        lambda: jb.LULinear(3, event_ndims=0),
        lambda: jb.LULinear(3, permutation=(0, 0, 1)),
        lambda: jb.Conv1x1(3, permutation=(0, 1)),
        lambda: jb.Conv1x1(2.5),
    ],
)
def test_linear_rejects_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_linear_rejects_wrong_input_size():
    with pytest.raises(ValueError, match="last axis of size 3"):
        _init(jb.LULinear(3), jnp.zeros((2, 4)))


# Permutations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "permutation,error",
    [
        ((0, 0, 1), ValueError),
        ((0, 2), ValueError),
        ((1, 2, 3), ValueError),
        ((), ValueError),
        (((0, 1), (1, 0)), ValueError),
        ((0.0, 1.0), TypeError),
        ("012", TypeError),
    ],
)
def test_permute_rejects_non_permutation(permutation, error):
    with pytest.raises(error, match="Permute: permutation"):
        jb.Permute(permutation)


def test_permute_rejects_input_of_wrong_size():
    with pytest.raises(ValueError, match="3 entries but the last axis of the input has size 4"):
        jb.Permute((2, 0, 1)).apply({}, jnp.zeros((2, 4)), method="forward")


def test_permute_and_reverse_values_and_inverse():
    x = jnp.arange(24.0).reshape(2, 2, 2, 3)
    perm = jb.Permute(np.array([2, 0, 1]), event_ndims=3)
    y = perm.apply({}, x, method="forward")
    np.testing.assert_array_equal(y, np.asarray(x)[..., [2, 0, 1]])
    np.testing.assert_array_equal(perm.apply({}, y, method="inverse"), x)
    rev = jb.Reverse()
    np.testing.assert_array_equal(rev.apply({}, x, method="forward"), np.asarray(x)[..., ::-1])


@pytest.mark.parametrize(
    "bij,shape,batch_shape",
    [
        (jb.Reverse(), (2, 5, 4), (2, 5)),
        (jb.Permute((3, 1, 0, 2)), (2, 5, 4), (2, 5)),
        (jb.Permute((1, 2, 0), event_ndims=3), (2, 4, 4, 3), (2,)),
        (jb.Reverse(event_ndims=3), (4, 4, 3), ()),
    ],
)
def test_permutation_log_det_is_zero_with_batch_shape(bij, shape, batch_shape):
    x = jnp.ones(shape)
    for method in ("forward_and_log_det", "inverse_and_log_det"):
        _, ld = bij.apply({}, x, method=method)
        assert ld.shape == batch_shape and ld.dtype == x.dtype
        np.testing.assert_array_equal(ld, 0.0)


def test_random_permutation_is_deterministic_and_valid():
    a, b = jb.random_permutation(3, 8), jb.random_permutation(3, 8)
    assert isinstance(a, jb.Permute)
    assert a.permutation == b.permutation
    assert sorted(a.permutation) == list(range(8))
    assert jb.random_permutation(jax.random.key(3), 8).permutation == a.permutation
    assert jb.random_permutation(4, 8).permutation != a.permutation
    assert jb.random_permutation(0, 3, event_ndims=3).event_ndims == 3
    with pytest.raises(ValueError, match="dim"):
        jb.random_permutation(0, 0)
