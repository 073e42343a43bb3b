"""Encoder and decoder networks of the VAE: MLPs (on flattened data) and small conv nets (images).

Encoders map data ``(..., *event_shape)`` to a vector ``(..., out_dim)`` (the posterior head:
mean, log-scale and any amortised flow parameters). Decoders map latents ``(..., latent_dim)``
to the likelihood's parameters ``(..., *event_shape, num_params)``. Any number of leading batch
axes is allowed (the VAE decodes ``(samples, batch, latent_dim)``).

The MLPs are `jgen.nets.MLP`. The conv nets halve (encoder) or double (decoder) the spatial size
once per entry of ``channels`` with stride-2 3x3 convolutions, so an 8x8 digit becomes 2x2 with
two stages and a 28x28 MNIST image 7x7; the decoder crops when the size is not a multiple.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn

from jgen.nets import MLP
from jgen.typing import Array

__all__ = ["ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder"]


def _flatten_event(x: Array, event_ndims: int) -> Array:
    return x.reshape((*x.shape[: x.ndim - event_ndims], -1))


class MLPEncoder(nn.Module):
    """Flatten the event, then `jgen.nets.MLP`: (..., *event_shape) -> (..., out_dim)."""

    event_shape: tuple[int, ...]
    hidden_dims: Sequence[int]
    out_dim: int
    activation: Callable[[Array], Array] = nn.gelu

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = _flatten_event(x, len(self.event_shape))
        return MLP(self.hidden_dims, self.out_dim, activation=self.activation, name="mlp")(h)


class MLPDecoder(nn.Module):
    """`jgen.nets.MLP` to D * num_params outputs: (..., latent) -> (..., *event_shape, P)."""

    event_shape: tuple[int, ...]
    hidden_dims: Sequence[int]
    num_params: int
    activation: Callable[[Array], Array] = nn.gelu

    @nn.compact
    def __call__(self, z: Array) -> Array:
        size = math.prod(self.event_shape) * self.num_params
        out = MLP(self.hidden_dims, size, activation=self.activation, name="mlp")(z)
        return out.reshape(z.shape[:-1] + tuple(self.event_shape) + (self.num_params,))


def _merge_batch(x: Array, event_ndims: int) -> tuple[Array, tuple[int, ...]]:
    batch = x.shape[: x.ndim - event_ndims]
    return x.reshape((-1, *x.shape[x.ndim - event_ndims :])), batch


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convolutions (one per ``channels``), flatten, a hidden dense layer, out.

    Images (..., H, W, C) -> (..., out_dim).
    """

    event_shape: tuple[int, ...]
    channels: Sequence[int]
    hidden_dim: int
    out_dim: int
    activation: Callable[[Array], Array] = nn.gelu

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h, batch = _merge_batch(x, 3)
        for i, width in enumerate(self.channels):
            h = self.activation(
                nn.Conv(width, (3, 3), strides=2, padding="SAME", name=f"conv{i}")(h)
            )
        h = h.reshape(h.shape[0], -1)
        h = self.activation(nn.Dense(self.hidden_dim, name="hidden")(h))
        return nn.Dense(self.out_dim, name="out")(h).reshape((*batch, self.out_dim))


class ConvDecoder(nn.Module):
    """Dense layers to a (H/2^n, W/2^n, channels[-1]) map, then stride-2 transposed 3x3
    convolutions up to (H, W) and a 3x3 convolution to C * num_params channels.

    Latents (..., latent) -> (..., H, W, C, num_params).
    """

    event_shape: tuple[int, ...]
    channels: Sequence[int]
    hidden_dim: int
    num_params: int
    activation: Callable[[Array], Array] = nn.gelu

    @nn.compact
    def __call__(self, z: Array) -> Array:
        height, width, chans = self.event_shape
        stages = len(self.channels)
        h0, w0 = -(-height // 2**stages), -(-width // 2**stages)
        flat, batch = _merge_batch(z, 1)
        h = self.activation(nn.Dense(self.hidden_dim, name="hidden")(flat))
        h = self.activation(nn.Dense(h0 * w0 * self.channels[-1], name="project")(h))
        h = h.reshape(-1, h0, w0, self.channels[-1])
        for i, features in enumerate(reversed(self.channels)):
            h = nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding="SAME", name=f"up{i}")(h)
            h = self.activation(h)
        h = nn.Conv(chans * self.num_params, (3, 3), padding="SAME", name="out")(h)
        h = h[:, :height, :width]
        return h.reshape((*batch, height, width, chans, self.num_params))
