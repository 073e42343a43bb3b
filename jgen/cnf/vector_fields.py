"""Time-dependent vector fields h(z, t[, context]) -> dz/dt for continuous normalizing flows.

Every field here is a Flax linen module called as ``field(z, t, context=None)``:

    z        (..., D)  the state: one event of shape (D,) or any batch of them (..., D);
    t        scalar, or an array broadcastable to z.shape[:-1] (one time per event);
    context  (..., C)  optional conditioning vector, with the same leading shape as z (or None);
    returns  (..., D)  dz/dt, with the dtype of z.

The output size D is read from ``z`` at initialisation. The fields are pure functions of their
parameters (no batch statistics, no dropout, nothing that couples the events of a batch), which
the CNF relies on: it calls the field on ONE event at a time (it vmaps its per-event dynamics
over the batch), so that trace estimators can differentiate the field as a map R^D -> R^D.

Activations must be smooth (the adaptive ODE solvers and the log-det need a smooth Jacobian):
``'tanh'`` (default), ``'softplus'``, ``'swish'``/``'silu'``, or any callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.nets import SMOOTH_ACTIVATIONS, resolve_activation
from jgen.typing import Array

__all__ = ["ConcatSquashDense", "ConcatSquashField", "MLPField"]


def _resolve_activation(owner: str, activation: Any) -> Callable[[Array], Array]:
    return resolve_activation(owner, activation, choices=SMOOTH_ACTIVATIONS)


def _check_hidden_dims(owner: str, hidden_dims: Any) -> tuple[int, ...]:
    if isinstance(hidden_dims, int) or not isinstance(hidden_dims, Sequence):
        raise TypeError(f"{owner}: hidden_dims must be a sequence of ints, got {hidden_dims!r}")
    for width in hidden_dims:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"{owner}: every hidden width must be a positive int, got {width!r}")
    return tuple(hidden_dims)


def _resolve_param_dtype(param_dtype: Any):
    """None is JAX's default float type: float32, or float64 under ``jax_enable_x64``."""
    return jax.dtypes.canonicalize_dtype(float) if param_dtype is None else param_dtype


def _time_column(t: Array, z: Array) -> Array:
    """t as a (..., 1) column matching z's leading shape, in z's dtype."""
    t = jnp.asarray(t, z.dtype)
    return jnp.broadcast_to(t[..., None] if t.ndim else t, (*z.shape[:-1], 1))


def _check_context(owner: str, z: Array, context: Array | None) -> None:
    if context is not None and context.shape[:-1] != z.shape[:-1]:
        raise ValueError(
            f"{owner}: context must have shape (*z.shape[:-1], C) = {(*z.shape[:-1], 'C')}, got "
            f"{tuple(context.shape)}"
        )


class MLPField(nn.Module):
    """An MLP on the concatenation [z, t, context]:

        h(z, t, c) = W_L σ(... σ(W_1 [z, t, c] + b_1) ...) + b_L,      output size D = dim(z).

    hidden_dims: widths of the hidden layers (may be empty: an affine field in z and t).
    activation:  'tanh' (default), 'softplus', 'swish'/'silu' or a smooth callable.
    param_dtype: dtype of the parameters; None (default) is JAX's default float type (float64
                 under ``jax_enable_x64``, as for every jgen bijector). Computations follow
                 z's dtype.

    Acts on one event (D,) or a batch (..., D) alike (see the module docstring).
    """

    hidden_dims: Sequence[int]
    activation: str | Callable[[Array], Array] = "tanh"
    param_dtype: Any = None

    def __post_init__(self):
        object.__setattr__(self, "hidden_dims", _check_hidden_dims("MLPField", self.hidden_dims))
        _resolve_activation("MLPField", self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, z: Array, t: Array, context: Array | None = None) -> Array:
        _check_context("MLPField", z, context)
        act = _resolve_activation("MLPField", self.activation)
        parts = [z, _time_column(t, z)]
        if context is not None:
            parts.append(context.astype(z.dtype))
        h = jnp.concatenate(parts, axis=-1)
        param_dtype = _resolve_param_dtype(self.param_dtype)
        for i, width in enumerate(self.hidden_dims):
            h = act(nn.Dense(width, param_dtype=param_dtype, name=f"hidden_{i}")(h))
        out = nn.Dense(z.shape[-1], param_dtype=param_dtype, name="out")(h)
        return out.astype(z.dtype)


class ConcatSquashDense(nn.Module):
    """FFJORD's ConcatSquashLinear layer (Grathwohl et al. 2019):

        out = (W x + b) ⊙ sigmoid(W_g s + b_g) + W_b s,      s = [t, context]  (or s = t),

    a dense layer whose output is gated and shifted by functions of the time (FFJORD's
    ``_hyper_gate`` has a bias, its ``_hyper_bias`` has none). The context, when given, joins
    the time as an input of the two hyper-networks.

    x: (..., in), t: scalar or (...,), context: (..., C) or None  ->  (..., features).
    param_dtype: dtype of the parameters; None (default) is JAX's default float type.
    """

    features: int
    param_dtype: Any = None

    @nn.compact
    def __call__(self, x: Array, t: Array, context: Array | None = None) -> Array:
        s = _time_column(t, x)
        if context is not None:
            s = jnp.concatenate([s, context.astype(x.dtype)], axis=-1)
        param_dtype = _resolve_param_dtype(self.param_dtype)
        dense = nn.Dense(self.features, param_dtype=param_dtype, name="layer")(x)
        gate = nn.Dense(self.features, param_dtype=param_dtype, name="hyper_gate")(s)
        shift = nn.Dense(self.features, use_bias=False, param_dtype=param_dtype, name="hyper_bias")(
            s
        )
        return dense * nn.sigmoid(gate) + shift


class ConcatSquashField(nn.Module):
    """FFJORD's ODE network for vectors: ConcatSquash layers with activations in between,

        h_0 = z,   h_{l+1} = σ(CS_l(h_l, t, c)),   h(z, t, c) = CS_L(h_L, t, c)   (no final σ),

    where CS is `ConcatSquashDense`: CS(x, t, c) = (W x + b) ⊙ sigmoid(W_g [t, c] + b_g)
    + W_b [t, c]. The output layer has D = dim(z) features.

    hidden_dims: widths of the hidden ConcatSquash layers (FFJORD's toy models use 64-64-64).
    activation:  'tanh' (default), 'softplus' (FFJORD's toy default), 'swish'/'silu' or a
                 smooth callable.
    param_dtype: dtype of the parameters; None (default) is JAX's default float type (float64
                 under ``jax_enable_x64``, as for every jgen bijector). Computations follow
                 z's dtype.

    Acts on one event (D,) or a batch (..., D) alike (see the module docstring).
    """

    hidden_dims: Sequence[int]
    activation: str | Callable[[Array], Array] = "tanh"
    param_dtype: Any = None

    def __post_init__(self):
        object.__setattr__(
            self, "hidden_dims", _check_hidden_dims("ConcatSquashField", self.hidden_dims)
        )
        _resolve_activation("ConcatSquashField", self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, z: Array, t: Array, context: Array | None = None) -> Array:
        _check_context("ConcatSquashField", z, context)
        act = _resolve_activation("ConcatSquashField", self.activation)
        h = z
        for i, width in enumerate(self.hidden_dims):
            h = act(ConcatSquashDense(width, self.param_dtype, name=f"hidden_{i}")(h, t, context))
        out = ConcatSquashDense(z.shape[-1], self.param_dtype, name="out")(h, t, context)
        return out.astype(z.dtype)


class FlattenedField(nn.Module):
    """A vector field on events of any shape from a field on flat vectors:

        h(z, t, c) = reshape(g(flatten(z), t, c), z.shape)

    e.g. ``FlattenedField(ConcatSquashField((256, 256)))`` on (8, 8, 1) images. Acts on one
    event (its whole shape is flattened), which is how `CNF` calls its field.
    """

    field: nn.Module

    @nn.compact
    def __call__(self, z: Array, t: Array, context: Array | None = None) -> Array:
        return self.field(z.reshape(-1), t, context).reshape(z.shape)
