"""Affine coupling layers (RealNVP, Dinh et al. 2017) for vectors and NHWC images.

The coordinates of an event are split into a conditioning part x_A (left unchanged) and a
transformed part x_B. With the conditioner network's output (raw_s, t) = NN(x_A [, context]):

    s   = scale ⊙ tanh(raw_s)                  (bounded log-scale, |s| < |scale|)
    y_A = x_A
    y_B = x_B ⊙ exp(s) + t                     (forward)
    x_B = (y_B − t) ⊙ exp(−s)                  (inverse; y_A = x_A gives back the same s, t)
    log|det ∂y/∂x| = Σ_B s                     (the Jacobian is triangular with diagonal
                                                1 on A and exp(s) on B)

``scale`` is a learnable vector (one entry per transformed coordinate for vectors, one per
channel for images), initialised to 1. The bound keeps exp(s) within [e^-|scale|, e^|scale|],
which avoids the exploding scales of an unbounded exp(raw_s) early in training, while the
learnable bound still lets the layer reach large scales (RealNVP's "tanh with a learned scale").

The conditioner's last layer is zero-initialised by default (``zero_init_last=True``), so raw_s
= t = 0 and every coupling starts as the identity (Glow); set it to False for random layers.

Masks (``mask``; ``parity`` ∈ {0, 1} swaps the roles of the two parts):

    vectors (event_shape (D,)):
      'alternating'  A = even positions (parity 0) or odd positions (parity 1).
      'half'         with k = D // 2: A = x[:k] (parity 0) or x[k:] (parity 1).
    images (event_shape (H, W, C), NHWC):
      'checkerboard' A = pixels with (h + w) % 2 == parity, all their channels.
      'channel'      with k = C // 2: A = channels [:k] (parity 0) or [k:] (parity 1).

'alternating', 'half' and 'channel' are implemented by splitting: x_A is sliced out with static
(strided) slices, the conditioner sees only x_A (plus the context) and outputs only the
2·|B| values it needs, and y is reassembled by concatenation/interleaving. This does no work
for the coordinates a mask would zero out. 'checkerboard' needs the spatial layout for its
convolutional conditioner, so it uses the masked form: the conditioner sees x ⊙ m (m = 1 on
A) and s, t are multiplied by 1 − m, so only B positions change and enter the log-det.

Context (optional, a batch of vectors (..., K)): concatenated to the conditioner input for
vectors; broadcast over H, W and concatenated as K extra channels for images. A coupling
uses the context whenever one is passed; ``context_dim`` (optional) makes it required and
checks its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.base import Bijector, sum_rightmost
from jgen.nets import MLP, ConvResNet
from jgen.typing import Array

__all__ = ["IMAGE_MASKS", "VECTOR_MASKS", "AffineCoupling", "checkerboard_mask"]

VECTOR_MASKS = ("alternating", "half")
IMAGE_MASKS = ("checkerboard", "channel")


def checkerboard_mask(height: int, width: int, parity: int = 0) -> np.ndarray:
    """Boolean (height, width, 1) array, True where (h + w) % 2 == parity."""
    h, w = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((h + w) % 2 == parity)[..., None]


def _interleave(even: Array, odd: Array) -> Array:
    """Inverse of (x[..., 0::2], x[..., 1::2]): merge two parts on the last axis."""
    n = even.shape[-1] + odd.shape[-1]
    if odd.shape[-1] < even.shape[-1]:  # odd length: pad, interleave, drop the pad
        odd = jnp.concatenate([odd, jnp.zeros((*odd.shape[:-1], 1), odd.dtype)], axis=-1)
    merged = jnp.stack([even, odd], axis=-1)
    return merged.reshape((*merged.shape[:-2], -1))[..., :n]


class AffineCoupling(Bijector):
    """Affine coupling y_A = x_A, y_B = x_B ⊙ exp(s(x_A)) + t(x_A); log-det Σ_B s.

    See the module docstring for the maths, the masks and the scale parameterisation.

    event_shape:    (D,) for vectors or (H, W, C) for NHWC images; ``event_ndims`` is its length.
    mask:           'alternating' (default for vectors), 'half', 'checkerboard' (default for
                    images) or 'channel'.
    parity:         0 or 1; 1 swaps the conditioning and transformed parts.
    conditioner:    None for the default network (``MLP(hidden_dims)`` for vectors,
                    ``ConvResNet(channels, num_blocks)`` for images); a factory
                    ``f(num_outputs) -> nn.Module`` (e.g. ``functools.partial(MLP, (64, 64),
                    zero_init_last=True)``); or a Flax module (used by this coupling only). It
                    maps the conditioning input to 2·|B| features (vectors) or 2·C'
                    channels (images; C' = C for 'checkerboard', the transformed channels
                    for 'channel'), ordered (raw_s, t). ``zero_init_last`` only applies to the
                    default network; a custom one is the identity at init only if it outputs 0.
    context_dim:    if set, a context of that size is required; if None, a context is used
                    whenever given (its size is inferred at initialisation).
    hidden_dims:    hidden widths of the default MLP conditioner.
    channels, num_blocks: width and depth of the default ConvResNet conditioner.
    zero_init_last: start as the identity (zero last layer of the default conditioner).
    param_dtype:    dtype of ``scale`` and of the default conditioner's parameters; None (the
                    default) is JAX's default float type: float32, or float64 under
                    ``jax_enable_x64`` (as for every other jgen bijector). A custom conditioner
                    keeps its own parameter dtype.
    """

    event_shape: Sequence[int]
    mask: str | None = None
    parity: int = 0
    conditioner: Any = None
    context_dim: int | None = None
    hidden_dims: Sequence[int] = (128, 128)
    channels: int = 64
    num_blocks: int = 2
    zero_init_last: bool = True
    param_dtype: Any = None

    def __post_init__(self):
        shape = self.event_shape
        if isinstance(shape, int) or not isinstance(shape, Sequence):
            raise TypeError(f"AffineCoupling: event_shape must be a tuple of ints, got {shape!r}")
        shape = tuple(shape)
        if len(shape) not in (1, 3) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape
        ):
            raise ValueError(
                "AffineCoupling: event_shape must be (D,) or (H, W, C) with positive ints, "
                f"got {shape!r}"
            )
        object.__setattr__(self, "event_shape", shape)
        mask = self.mask
        if mask is None:
            mask = "alternating" if len(shape) == 1 else "checkerboard"
            object.__setattr__(self, "mask", mask)
        allowed = VECTOR_MASKS if len(shape) == 1 else IMAGE_MASKS
        if mask not in allowed:
            kind = "vector" if len(shape) == 1 else "image"
            raise ValueError(
                f"AffineCoupling: mask for {kind} events {shape} must be one of {allowed}, "
                f"got {mask!r}"
            )
        if isinstance(self.parity, bool) or self.parity not in (0, 1):
            raise ValueError(f"AffineCoupling: parity must be 0 or 1, got {self.parity!r}")
        if mask in VECTOR_MASKS and shape[0] < 2:
            raise ValueError(f"AffineCoupling: mask {mask!r} needs D >= 2, got event_shape {shape}")
        if mask == "channel" and shape[2] < 2:
            raise ValueError(
                f"AffineCoupling: mask 'channel' needs C >= 2 channels, got event_shape {shape} "
                "(squeeze the image first)"
            )
        if mask == "checkerboard" and shape[0] * shape[1] < 2:
            raise ValueError(
                f"AffineCoupling: mask 'checkerboard' needs at least 2 pixels, got {shape}"
            )
        if self.context_dim is not None and (
            isinstance(self.context_dim, bool)
            or not isinstance(self.context_dim, int)
            or self.context_dim < 1
        ):
            raise ValueError(
                f"AffineCoupling: context_dim must be None or a positive int, "
                f"got {self.context_dim!r}"
            )
        if self.conditioner is not None and not callable(self.conditioner):
            raise TypeError(
                "AffineCoupling: conditioner must be None, a Flax module or a factory "
                f"f(num_outputs) -> module, got {type(self.conditioner).__name__}"
            )
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        super().__post_init__()

    @property
    def event_ndims(self) -> int:
        return len(self.event_shape)

    # Static layout ---------------------------------------------------------------------------
    def _split_point(self) -> int:
        return self.event_shape[-1] // 2

    def _num_transformed(self) -> int:
        """Size of s (and t) on the last axis."""
        n = self.event_shape[-1]
        if self.mask == "checkerboard":
            return n
        if self.mask == "alternating":
            return len(range(1 - self.parity, n, 2))
        k = self._split_point()
        return n - k if self.parity == 0 else k

    def _split(self, x: Array) -> tuple[Array, Array]:
        """(conditioning part, transformed part) along the last axis."""
        p = self.parity
        if self.mask == "alternating":
            return x[..., p::2], x[..., 1 - p :: 2]
        k = self._split_point()
        first, second = x[..., :k], x[..., k:]
        return (first, second) if p == 0 else (second, first)

    def _merge(self, conditioning: Array, transformed: Array) -> Array:
        """Inverse of ``_split``."""
        first, second = (
            (conditioning, transformed) if self.parity == 0 else (transformed, conditioning)
        )
        if self.mask == "alternating":
            return _interleave(first, second)
        return jnp.concatenate([first, second], axis=-1)

    # Parameters ------------------------------------------------------------------------------
    def _param_dtype(self):
        if self.param_dtype is None:
            return jax.dtypes.canonicalize_dtype(float)
        return self.param_dtype

    def setup(self):
        num_outputs = 2 * self._num_transformed()
        param_dtype = self._param_dtype()
        if self.conditioner is None:
            if self.event_ndims == 1:
                self.net = MLP(
                    self.hidden_dims,
                    num_outputs,
                    zero_init_last=self.zero_init_last,
                    param_dtype=param_dtype,
                )
            else:
                self.net = ConvResNet(
                    self.channels,
                    self.num_blocks,
                    num_outputs,
                    zero_init_last=self.zero_init_last,
                    param_dtype=param_dtype,
                )
        elif not isinstance(self.conditioner, nn.Module):
            net = self.conditioner(num_outputs)
            if not isinstance(net, nn.Module):
                raise TypeError(
                    "AffineCoupling: the conditioner factory must return a Flax module, "
                    f"got {type(net).__name__}"
                )
            self.net = net
        self.scale = self.param(
            "scale", nn.initializers.ones_init(), (self._num_transformed(),), param_dtype
        )

    def _network(self) -> nn.Module:
        if isinstance(self.conditioner, nn.Module):
            return self.conditioner
        return self.net

    # Maths -----------------------------------------------------------------------------------
    def _with_context(self, h: Array, context: Array | None) -> Array:
        if context is None:
            if self.context_dim is not None:
                raise ValueError(
                    f"AffineCoupling: context_dim={self.context_dim} but no context was given"
                )
            return h
        if context.ndim < 1 or (
            self.context_dim is not None and context.shape[-1] != self.context_dim
        ):
            raise ValueError(
                f"AffineCoupling: expected a context of shape (..., {self.context_dim or 'K'}), "
                f"got {context.shape}"
            )
        context = context.astype(h.dtype)
        if self.event_ndims == 3:  # broadcast over the pixels
            context = context[..., None, None, :]
        context = jnp.broadcast_to(context, (*h.shape[:-1], context.shape[-1]))
        return jnp.concatenate([h, context], axis=-1)

    def _log_scale_and_shift(self, h: Array, context: Array | None) -> tuple[Array, Array]:
        out = self._network()(self._with_context(h, context))
        n = self._num_transformed()
        expected = (*h.shape[:-1], 2 * n)
        if out.shape != expected:
            raise ValueError(
                f"AffineCoupling: the conditioner must output shape {expected} (raw_s and t for "
                f"{n} transformed features), got {out.shape}"
            )
        raw_log_scale, shift = out[..., :n], out[..., n:]
        return self.scale * jnp.tanh(raw_log_scale), shift

    def _check_input(self, x: Array) -> None:
        if x.ndim < self.event_ndims or x.shape[x.ndim - self.event_ndims :] != self.event_shape:
            raise ValueError(
                f"AffineCoupling: expected inputs of shape (batch..., *{self.event_shape}), "
                f"got {x.shape}"
            )

    def _couple(self, x: Array, context: Array | None, inverse: bool) -> tuple[Array, Array]:
        self._check_input(x)
        if self.mask == "checkerboard":
            h, w = self.event_shape[:2]
            m = jnp.asarray(checkerboard_mask(h, w, self.parity), x.dtype)
            log_scale, shift = self._log_scale_and_shift(x * m, context)
            log_scale, shift = log_scale * (1 - m), shift * (1 - m)
            if inverse:
                y = (x - shift) * jnp.exp(-log_scale)
            else:
                y = x * jnp.exp(log_scale) + shift
            log_det = sum_rightmost(log_scale, 3)
        else:
            conditioning, z = self._split(x)
            log_scale, shift = self._log_scale_and_shift(conditioning, context)
            if inverse:
                z = (z - shift) * jnp.exp(-log_scale)
            else:
                z = z * jnp.exp(log_scale) + shift
            y = self._merge(conditioning, z)
            log_det = sum_rightmost(log_scale, self.event_ndims)
        return y, -log_det if inverse else log_det

    def forward_and_log_det(self, x, context=None):
        return self._couple(x, context, inverse=False)

    def inverse_and_log_det(self, y, context=None):
        return self._couple(y, context, inverse=True)
