"""Small Flax linen networks shared by flows (coupling conditioners), VAEs and GANs.

``MLP``        a fully connected network on the last axis.
``ConvResNet`` a small convolutional ResNet on NHWC images that keeps the spatial size.

Both are pure functions of their parameters (no batch statistics, no dropout), so they can be
called inside any jitted/vmapped bijector. ``zero_init_last=True`` sets the last layer's kernel
and bias to zero, so the network outputs exactly 0 at initialisation (used to start every
coupling layer of a flow as the identity, as in Glow).

Activation: the default is GELU (tanh approximation). It is smooth, so a flow whose
conditioners use it has a smooth log-density and smooth gradients everywhere (with ReLU the
conditioner is piecewise linear and the density has kinks), while it behaves like ReLU for
large inputs (no saturation) and costs the same as ReLU next to the matrix products. Pass
``activation=nn.relu`` (or ``nn.silu``, ...) to change it.

Configs name activations: `ACTIVATIONS` is the one table of names, and `resolve_activation`
turns a name (or a callable) into the function with a clear error. Fields that are
differentiated in the model itself (CNF and Moser vector fields: divergences, ODE solves) take
`SMOOTH_ACTIVATIONS` only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jgen.typing import Array
from jgen.validation import check_int

__all__ = ["ACTIVATIONS", "MLP", "SMOOTH_ACTIVATIONS", "ConvResNet", "resolve_activation"]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": nn.gelu,
    "relu": nn.relu,
    "silu": nn.silu,
    "softplus": nn.softplus,
    "swish": nn.swish,
    "tanh": jnp.tanh,
}
SMOOTH_ACTIVATIONS = ("gelu", "silu", "softplus", "swish", "tanh")


def resolve_activation(
    owner: str, activation: Any, *, choices: Sequence[str] = tuple(ACTIVATIONS)
) -> Callable[[Array], Array]:
    """The function named ``activation`` (one of ``choices``), or ``activation`` itself when
    it is a callable; ValueError / TypeError naming ``owner`` and the choices otherwise."""
    if isinstance(activation, str):
        if activation not in choices:
            raise ValueError(
                f"{owner}: activation must be one of {sorted(choices)} or a callable, got "
                f"{activation!r}"
            )
        return ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"{owner}: activation must be a str or a callable, got {activation!r}")
    return activation


def _last_layer_inits(zero_init_last: bool):
    """(kernel_init, bias_init) for the output layer."""
    if zero_init_last:
        return nn.initializers.zeros_init(), nn.initializers.zeros_init()
    return nn.initializers.lecun_normal(), nn.initializers.zeros_init()


class MLP(nn.Module):
    """Fully connected network x -> Dense -> act -> ... -> Dense(out_dim) on the last axis.

    hidden_dims:    widths of the hidden layers (may be empty: a single affine layer).
    out_dim:        size of the output.
    activation:     applied after every hidden layer (default GELU, see the module docstring).
    zero_init_last: zero kernel and bias of the output layer, so the MLP outputs 0 at init.
    param_dtype:    dtype of the parameters; computations follow the input's dtype (a float64
                    input gives a float64 output).

    Works on any leading batch shape: (..., in_dim) -> (..., out_dim); the input size is
    inferred at initialisation.
    """

    hidden_dims: Sequence[int]
    out_dim: int
    activation: Callable[[Array], Array] = nn.gelu
    zero_init_last: bool = False
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        if isinstance(self.hidden_dims, int) or not isinstance(self.hidden_dims, Sequence):
            raise TypeError(
                f"MLP: hidden_dims must be a sequence of ints, got {self.hidden_dims!r}"
            )
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        for width in self.hidden_dims:
            check_int(width, "every hidden width", minimum=1, owner="MLP")
        check_int(self.out_dim, "out_dim", minimum=1, owner="MLP")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for i, width in enumerate(self.hidden_dims):
            x = nn.Dense(width, param_dtype=self.param_dtype, name=f"hidden_{i}")(x)
            x = self.activation(x)
        kernel_init, bias_init = _last_layer_inits(self.zero_init_last)
        return nn.Dense(
            self.out_dim,
            kernel_init=kernel_init,
            bias_init=bias_init,
            param_dtype=self.param_dtype,
            name="out",
        )(x)


LAYER_NORM_EPSILON = 1e-3


class ConvResNet(nn.Module):
    """A small convolutional ResNet on NHWC images; output keeps the spatial size.

        h = Conv3x3(channels)(x)
        repeat num_blocks:  h = h + Conv3x3(act(norm(Conv3x3(act(norm(h))))))   (pre-activation)
        out = Conv3x3(out_channels)(act(norm(h)))

    norm is a per-pixel LayerNorm over the channels when ``normalize`` (default), else nothing:
    it has no batch statistics, so the network is a pure function of its parameters and
    different examples of a batch never interact. Its epsilon is ``LAYER_NORM_EPSILON`` = 1e-3,
    not Flax's 1e-6: on near-constant features (inputs near 0) 1e-6 amplifies rounding by up
    to 1/sqrt(1e-6) = 1e3 per layer, which broke the round trip of stacked couplings (float32
    error 0.3 at |x| = 1e-4; 1e-9 with 1e-3, tests/bijectors/test_numerics.py). All
    convolutions use 'SAME' padding.

    channels:       width of the hidden feature maps.
    num_blocks:     number of residual blocks (0 allowed: conv in, conv out).
    out_channels:   channels of the output.
    zero_init_last: zero kernel and bias of the output convolution (output 0 at init).

    Input (..., H, W, C_in) with any number of leading batch axes -> (..., H, W, out_channels).
    """

    channels: int
    num_blocks: int
    out_channels: int
    zero_init_last: bool = False
    activation: Callable[[Array], Array] = nn.gelu
    normalize: bool = True
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        check_int(self.channels, "channels", minimum=1, owner="ConvResNet")
        check_int(self.num_blocks, "num_blocks", minimum=0, owner="ConvResNet")
        check_int(self.out_channels, "out_channels", minimum=1, owner="ConvResNet")
        super().__post_init__()

    def _norm_act(self, h: Array, name: str) -> Array:
        if self.normalize:
            h = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, param_dtype=self.param_dtype, name=name)(h)
        return self.activation(h)

    def _conv(self, features: int, name: str, **kwargs) -> nn.Conv:
        return nn.Conv(
            features, (3, 3), padding="SAME", param_dtype=self.param_dtype, name=name, **kwargs
        )

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim < 3:
            raise ValueError(
                f"ConvResNet expects images (..., H, W, C), got an input of shape {x.shape}"
            )
        h = self._conv(self.channels, "conv_in")(x)
        for i in range(self.num_blocks):
            r = self._conv(self.channels, f"block{i}_conv0")(self._norm_act(h, f"block{i}_norm0"))
            r = self._conv(self.channels, f"block{i}_conv1")(self._norm_act(r, f"block{i}_norm1"))
            h = h + r
        kernel_init, bias_init = _last_layer_inits(self.zero_init_last)
        out_conv = self._conv(
            self.out_channels, "conv_out", kernel_init=kernel_init, bias_init=bias_init
        )
        return out_conv(self._norm_act(h, "norm_out"))
