"""Masked autoregressive networks (MADE, Germain et al. 2015): degrees, masks and layers.

One MADE for every family: `jgen.autoregressive.MADE` (a discrete model) and the masked
autoregressive flows of `jgen.bijectors.autoregressive` (MAF/IAF conditioners) build their
networks from `made_masks` and `MaskedDense`. This module sits below both (it imports neither).

Degrees: input (and output) unit d of the D dimensions has degree d; hidden units get degrees
1..D-1, assigned cyclically, so the masks are deterministic. A hidden unit of degree m sees the
inputs (or hidden units) of degree <= m; an output of degree d sees the hidden units (and,
through a direct connection, the inputs) of degree < d. Output d therefore depends on inputs
1..d-1 only: the Jacobian of the outputs w.r.t. the inputs is strictly lower triangular.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.nets import resolve_activation
from jgen.typing import Array
from jgen.validation import check_int

__all__ = ["MaskedDense", "MaskedMLP", "made_masks"]


def made_masks(
    num_dims: int, num_levels: int, hidden_dims: Sequence[int], *, one_hot: bool = True
) -> list[np.ndarray]:
    """The 0/1 masks ``(in, out)`` of every layer: input->hidden..., hidden->output, input->output.

    Output features (and one-hot input features) are ordered dimension-major: ``d * K + k``
    with K = ``num_levels`` outputs per dimension; scalar inputs (``one_hot=False``) have one
    feature per dimension.
    """
    input_degree = np.repeat(np.arange(1, num_dims + 1), num_levels if one_hot else 1)
    degrees = [input_degree]
    for width in hidden_dims:
        degrees.append(np.arange(width) % max(num_dims - 1, 1) + 1)
    output_degree = np.repeat(np.arange(1, num_dims + 1), num_levels)
    masks = [
        (later[None, :] >= earlier[:, None]).astype(np.float32)
        for earlier, later in itertools.pairwise(degrees)
    ]
    masks.append((output_degree[None, :] > degrees[-1][:, None]).astype(np.float32))
    masks.append((output_degree[None, :] > input_degree[:, None]).astype(np.float32))
    return masks


class MaskedDense(nn.Module):
    """y = x (W * M) + b with a fixed 0/1 mask M ``(in, out)``."""

    mask: np.ndarray
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, columns: tuple[Array | int, int] | None = None) -> Array:
        """``x (W * M) + b``; with ``columns = (start, size)`` only those ``size`` output columns
        from ``start`` (which may be traced), computing nothing of the others."""
        kernel = self.param("kernel", self.kernel_init, self.mask.shape, self.param_dtype)
        mask = jnp.asarray(self.mask)
        if self.use_bias:
            bias = self.param(
                "bias", nn.initializers.zeros_init(), (self.mask.shape[1],), self.param_dtype
            )
        if columns is not None:
            start, size = columns
            kernel = jax.lax.dynamic_slice_in_dim(kernel, start, size, axis=1)
            mask = jax.lax.dynamic_slice_in_dim(mask, start, size, axis=1)
            if self.use_bias:
                bias = jax.lax.dynamic_slice_in_dim(bias, start, size)
        y = x @ (kernel * mask).astype(x.dtype)
        if self.use_bias:
            y = y + bias.astype(x.dtype)
        return y


class MaskedMLP(nn.Module):
    """The MADE conditioner of autoregressive flows: ``(..., D)`` → ``(..., D, P)``, where
    output ``[..., d, :]`` depends on inputs ``x_1..x_{d-1}`` (and the context) only.

    num_dims, num_params: D and P.
    hidden_dims:    widths of the masked hidden layers (at least one).
    activation:     a name of `jgen.nets.ACTIVATIONS` or a callable.
    zero_init_last: zero output layer (the flow's transformer starts at its identity
                    parameters).
    A context ``(..., K)`` enters the first hidden layer through an unmasked dense layer (every
    output may depend on it).
    """

    num_dims: int
    num_params: int
    hidden_dims: Sequence[int] = (128, 128)
    activation: Any = "gelu"
    zero_init_last: bool = True
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        check_int(self.num_dims, "num_dims", minimum=1, owner="MaskedMLP")
        check_int(self.num_params, "num_params", minimum=1, owner="MaskedMLP")
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        if not self.hidden_dims:
            raise ValueError("MaskedMLP: hidden_dims needs at least one hidden layer, got ()")
        for width in self.hidden_dims:
            check_int(width, "every hidden width", minimum=1, owner="MaskedMLP")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None) -> Array:
        activation = resolve_activation("MaskedMLP", self.activation)
        masks = made_masks(self.num_dims, self.num_params, self.hidden_dims, one_hot=False)
        h = MaskedDense(masks[0], param_dtype=self.param_dtype, name="hidden_0")(x)
        if context is not None:
            h = h + nn.Dense(self.hidden_dims[0], param_dtype=self.param_dtype, name="context")(
                context.astype(x.dtype)
            ).astype(x.dtype)
        h = activation(h)
        for i, mask in enumerate(masks[1:-2], start=1):
            h = activation(MaskedDense(mask, param_dtype=self.param_dtype, name=f"hidden_{i}")(h))
        last_init = nn.initializers.zeros_init() if self.zero_init_last else None
        kwargs = {} if last_init is None else {"kernel_init": last_init}
        out = MaskedDense(masks[-2], param_dtype=self.param_dtype, name="output", **kwargs)(h)
        return out.reshape((*x.shape[:-1], self.num_dims, self.num_params))
