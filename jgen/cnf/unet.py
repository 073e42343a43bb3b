"""A time-conditioned U-Net vector field for image events (Ho et al. 2020; Dhariwal & Nichol 2021).

``UNetField(widths, num_res_blocks, attention, ...)`` is a CNF vector field
h(z, t, context) -> dz/dt on images z of shape (..., H, W, C), following the field contract of
`jgen.cnf.vector_fields` (one event or any batch of them; nothing couples the events; smooth):

    e   = MLP(sinusoidal(time_scale · t))  [+ Dense(context)]         time (and context) embedding
    h   = Conv3x3(widths[0])(z)
    down: at level l (width widths[l]) ``num_res_blocks`` residual blocks,
          then a stride-2 3x3 convolution (all levels but the last);
    mid:  residual block, self-attention (``attention``), residual block at the lowest
          resolution;
    up:   the levels in reverse, each ``num_res_blocks + 1`` residual blocks on [h, skip]
          (the skips of the down path), then nearest-neighbour ×2 upsampling and a 3x3
          convolution (all levels but the last);
    out = Conv3x3(C)(σ(GroupNorm(h)))        zero-initialised: the field is 0 at initialisation.

A residual block is h + Conv(σ(GN(Conv(σ(GN(h))) + Dense(σ(e))))) (a 1x1 convolution
on the skip when the width changes; the second convolution zero-initialised). Group norm
normalises each example on its own, so the field of one event does not depend on the others;
every nonlinearity is smooth (σ = SiLU by default, softmax), as adaptive ODE solvers and the
CNF's log-det need. H and W must be divisible by 2^(len(widths) − 1) (28x28 with three levels:
28 → 14 → 7).

Usable by every family that takes a field: the CNF (`jgen.cnf.make_field('unet', ...)`),
FFJORD's multi-scale CNF (`jgen.cnf.multiscale_cnf`) and flow matching.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jgen.cnf.vector_fields import _resolve_param_dtype
from jgen.nets import SMOOTH_ACTIVATIONS, resolve_activation
from jgen.typing import Array
from jgen.validation import check_int, check_number

__all__ = ["UNetField", "sinusoidal_embedding"]


def sinusoidal_embedding(t: Array, dim: int, max_period: float = 10_000.0) -> Array:
    """[cos(t ω_k), sin(t ω_k)]_k with ω_k = max_period^(−k / (dim/2)), k < dim/2 (Vaswani et
    al. 2017): t (...,) -> (..., dim); ``dim`` even."""
    half = dim // 2
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=t.dtype) / half)
    angles = t[..., None] * frequencies
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def _group_norm(channels: int, groups: int, param_dtype, name: str) -> nn.GroupNorm:
    """GroupNorm with the largest group count that divides ``channels`` and is <= ``groups``."""
    num_groups = max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(num_groups, param_dtype=param_dtype, name=name)


def _zeros_conv(features: int, param_dtype, name: str) -> nn.Conv:
    return nn.Conv(
        features, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros_init(),
        param_dtype=param_dtype, name=name,
    )  # fmt: skip


class _ResBlock(nn.Module):
    features: int
    groups: int
    activation: Callable[[Array], Array]
    param_dtype: Any

    @nn.compact
    def __call__(self, h: Array, emb: Array) -> Array:
        act, dtype = self.activation, self.param_dtype
        r = act(_group_norm(h.shape[-1], self.groups, dtype, "norm0")(h))
        r = nn.Conv(self.features, (3, 3), param_dtype=dtype, name="conv0")(r)
        time = nn.Dense(self.features, param_dtype=dtype, name="time")(act(emb))
        r = act(_group_norm(self.features, self.groups, dtype, "norm1")(r + time[:, None, None, :]))
        r = _zeros_conv(self.features, dtype, "conv1")(r)
        if h.shape[-1] != self.features:
            h = nn.Conv(self.features, (1, 1), param_dtype=dtype, name="skip")(h)
        return h + r


class _Attention(nn.Module):
    """Single-head self-attention over the pixels of each image, residual, output zero-init."""

    groups: int
    param_dtype: Any

    @nn.compact
    def __call__(self, h: Array) -> Array:
        b, height, width, c = h.shape
        x = _group_norm(c, self.groups, self.param_dtype, "norm")(h)
        qkv = nn.Dense(3 * c, param_dtype=self.param_dtype, name="qkv")(x)
        q, k, v = jnp.split(qkv.reshape(b, height * width, 3 * c), 3, axis=-1)
        weights = nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k) / math.sqrt(c), axis=-1)
        out = jnp.einsum("bqk,bkc->bqc", weights, v).reshape(b, height, width, c)
        proj = nn.Dense(
            c, kernel_init=nn.initializers.zeros_init(), param_dtype=self.param_dtype, name="proj"
        )
        return h + proj(out)


class UNetField(nn.Module):
    """A time-conditioned U-Net h(z, t, context) on images (see the module docstring).

    widths:         feature width per resolution level; one stride-2 downsampling between
                    consecutive levels (default (32, 64): two levels).
    num_res_blocks: residual blocks per level on the way down (default 1).
    attention:      self-attention at the lowest resolution (default True).
    groups:         group-norm groups (the largest count <= groups dividing the width; 8).
    activation:     a smooth activation name (`jgen.nets.SMOOTH_ACTIVATIONS`) or callable
                    (default 'silu').
    time_scale:     t is multiplied by it before the sinusoidal embedding (default 1000: t in
                    [0, 1] spans the embedding's frequencies as DDPM's step index does).
    param_dtype:    None (default) is JAX's default float type, as for the other fields.
    """

    widths: Sequence[int] = (32, 64)
    num_res_blocks: int = 1
    attention: bool = True
    groups: int = 8
    time_scale: float = 1000.0
    activation: str | Callable[[Array], Array] = "silu"
    param_dtype: Any = None

    def __post_init__(self):
        check_int(self.num_res_blocks, "num_res_blocks", minimum=1, owner="UNetField")
        check_int(self.groups, "groups", minimum=1, owner="UNetField")
        check_number(self.time_scale, "time_scale", owner="UNetField")
        widths = self.widths
        if isinstance(widths, int) or not isinstance(widths, Sequence) or not widths:
            raise TypeError(f"UNetField: widths must be a non-empty sequence, got {widths!r}")
        for width in widths:
            check_int(width, "every width", minimum=1, owner="UNetField")
        object.__setattr__(self, "widths", tuple(widths))
        resolve_activation("UNetField", self.activation, choices=SMOOTH_ACTIVATIONS)
        super().__post_init__()

    def _check(self, z: Array, context: Array | None) -> None:
        if z.ndim < 3:
            raise ValueError(f"UNetField expects images (..., H, W, C), got shape {z.shape}")
        factor = 2 ** (len(self.widths) - 1)
        if z.shape[-3] % factor or z.shape[-2] % factor:
            raise ValueError(
                f"UNetField: with {len(self.widths)} levels H and W must be divisible by "
                f"{factor}, got an image of shape {z.shape[-3:]}"
            )
        if context is not None and context.shape[:-1] != z.shape[:-3]:
            raise ValueError(
                f"UNetField: context must have shape (*z.shape[:-3], C) = "
                f"{(*z.shape[:-3], 'C')}, got {tuple(context.shape)}"
            )

    @nn.compact
    def __call__(self, z: Array, t: Array, context: Array | None = None) -> Array:
        self._check(z, context)
        act = resolve_activation("UNetField", self.activation, choices=SMOOTH_ACTIVATIONS)
        dtype = _resolve_param_dtype(self.param_dtype)
        batch_shape, image_shape = z.shape[:-3], z.shape[-3:]
        h = z.reshape(-1, *image_shape)
        num = h.shape[0]
        t = jnp.broadcast_to(jnp.asarray(t, z.dtype), batch_shape).reshape(num)
        base = self.widths[0]
        emb = sinusoidal_embedding(self.time_scale * t, base + base % 2)
        emb = nn.Dense(4 * base, param_dtype=dtype, name="time_0")(emb)
        emb = nn.Dense(4 * base, param_dtype=dtype, name="time_1")(act(emb))
        if context is not None:
            c = context.astype(z.dtype).reshape(num, context.shape[-1])
            emb = emb + nn.Dense(4 * base, param_dtype=dtype, name="context")(c)

        def block(width: int, name: str) -> _ResBlock:
            return _ResBlock(width, self.groups, act, dtype, name=name)

        h = nn.Conv(base, (3, 3), param_dtype=dtype, name="conv_in")(h)
        skips = [h]
        last = len(self.widths) - 1
        for level, width in enumerate(self.widths):
            for i in range(self.num_res_blocks):
                h = block(width, f"down{level}_{i}")(h, emb)
                skips.append(h)
            if level < last:
                h = nn.Conv(width, (3, 3), strides=(2, 2), param_dtype=dtype, name=f"down{level}")(
                    h
                )
                skips.append(h)
        h = block(self.widths[-1], "mid_0")(h, emb)
        if self.attention:
            h = _Attention(self.groups, dtype, name="mid_attention")(h)
        h = block(self.widths[-1], "mid_1")(h, emb)
        for level in reversed(range(len(self.widths))):
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = block(self.widths[level], f"up{level}_{i}")(h, emb)
            if level > 0:  # nearest-neighbour x2, then a 3x3 convolution
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
                h = nn.Conv(h.shape[-1], (3, 3), param_dtype=dtype, name=f"up{level}")(h)
        h = act(_group_norm(h.shape[-1], self.groups, dtype, "norm_out")(h))
        out = _zeros_conv(image_shape[-1], dtype, "conv_out")(h)
        return out.reshape(z.shape).astype(z.dtype)
