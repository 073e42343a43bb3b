"""Tests for the shared networks in `jgen.nets`: shapes, zero-init, dtypes and argument checks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets import MLP, ConvResNet


def _normal(shape, seed=0, dtype=np.float32):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def _init_apply(net, x):
    variables = net.init(jax.random.key(0), x)
    return variables, net.apply(variables, x)


def test_mlp_output_shape_with_several_batch_axes():
    variables, y = _init_apply(MLP((16, 8), 3), _normal((2, 3, 5)))
    assert y.shape == (2, 3, 3)
    params = variables["params"]
    assert params["hidden_0"]["kernel"].shape == (5, 16)
    assert params["hidden_1"]["kernel"].shape == (16, 8)
    assert params["out"]["kernel"].shape == (8, 3)
    assert np.all(np.asarray(y) != 0)


def test_mlp_without_hidden_layers_is_affine():
    variables, y = _init_apply(MLP((), 2), _normal((3, 4)))
    out = variables["params"]["out"]
    np.testing.assert_allclose(y, _normal((3, 4)) @ out["kernel"] + out["bias"], rtol=1e-6)


def test_mlp_zero_init_last_outputs_zero_and_is_trainable():
    net = MLP((8,), 4, zero_init_last=True)
    x = _normal((3, 5))
    variables, y = _init_apply(net, x)
    np.testing.assert_array_equal(y, np.zeros((3, 4)))
    assert np.any(np.asarray(variables["params"]["hidden_0"]["kernel"]) != 0)
    grad = jax.grad(lambda v: jnp.sum(net.apply(v, x) * jnp.arange(4.0)))(variables)
    assert np.any(np.asarray(grad["params"]["out"]["kernel"]) != 0)


def test_mlp_activation_and_float64():
    with jax.enable_x64(True):
        x = _normal((3, 5), dtype=np.float64)
        net = MLP((8,), 2, activation=nn.relu)
        variables, y = _init_apply(net, x)
        assert y.dtype == jnp.float64
        p = variables["params"]
        h = jnp.maximum(x @ p["hidden_0"]["kernel"] + p["hidden_0"]["bias"], 0)
        np.testing.assert_allclose(y, h @ p["out"]["kernel"] + p["out"]["bias"], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(hidden_dims=(8, 0), out_dim=2), ValueError),
        (dict(hidden_dims=(8,), out_dim=0), ValueError),
        (dict(hidden_dims=8, out_dim=2), TypeError),
    ],
)
def test_mlp_bad_arguments(kwargs, error):
    with pytest.raises(error, match="MLP"):
        MLP(**kwargs)


def test_conv_resnet_shapes_and_batch_axes():
    net = ConvResNet(channels=8, num_blocks=2, out_channels=6)
    x = _normal((3, 4, 6, 2))
    variables, y = _init_apply(net, x)
    assert y.shape == (3, 4, 6, 6)
    assert np.all(np.asarray(y) != 0)
    assert net.apply(variables, x[None]).shape == (1, 3, 4, 6, 6)
    np.testing.assert_allclose(net.apply(variables, x[0]), y[0], rtol=1e-5, atol=1e-6)
    names = set(variables["params"])
    assert {"conv_in", "block1_conv1", "conv_out"} <= names


def test_conv_resnet_zero_init_last_outputs_zero():
    net = ConvResNet(channels=4, num_blocks=1, out_channels=2, zero_init_last=True)
    variables, y = _init_apply(net, _normal((3, 4, 4, 1)))
    np.testing.assert_array_equal(y, np.zeros((3, 4, 4, 2)))
    assert np.any(np.asarray(variables["params"]["conv_in"]["kernel"]) != 0)


def test_conv_resnet_has_no_batch_statistics():
    net = ConvResNet(channels=4, num_blocks=1, out_channels=2)
    x = _normal((3, 4, 4, 1))
    variables, y = _init_apply(net, x)
    assert set(variables) == {"params"}
    # Changing one example leaves the others' outputs unchanged.
    y2 = net.apply(variables, x.at[0].add(1.0))
    np.testing.assert_array_equal(y2[1:], y[1:])
    assert np.all(np.asarray(y2[0]) != np.asarray(y[0]))


def test_conv_resnet_without_norm_has_no_norm_params():
    net = ConvResNet(channels=4, num_blocks=1, out_channels=2, normalize=False)
    variables, _ = _init_apply(net, _normal((3, 4, 4, 1)))
    assert not any("norm" in name for name in variables["params"])


def test_conv_resnet_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="channels"):
        ConvResNet(channels=0, num_blocks=1, out_channels=2)
    with pytest.raises(ValueError, match="num_blocks"):
        ConvResNet(channels=4, num_blocks=-1, out_channels=2)
    with pytest.raises(ValueError, match="images"):
        ConvResNet(channels=4, num_blocks=1, out_channels=2).init(
            jax.random.key(0), jnp.ones((3, 4))
        )
