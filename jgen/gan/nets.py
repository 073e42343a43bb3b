"""Generators and discriminators: MLPs for vectors, DCGAN-style convolutions for small images.

Generators map a latent z ~ N(0, I) (and, conditionally, a class label) to a sample; their
output is linear (vectors) or tanh-squashed into [−1, 1] (images). Discriminators map a sample
(and a label) to one logit per example. Conditioning:

* generator: the label's learned embedding is concatenated to z;
* discriminator: projection (Miyato & Koyama 2018): l(x, y) = ψ(φ(x)) + ⟨e_y, φ(x)⟩, with φ the
  features, ψ a linear head and e_y a learned class embedding.

``spectral_norm=True`` wraps every layer of the discriminator in ``flax.linen.SpectralNorm``
(Miyato et al. 2018): the kernels are divided by their largest singular value, estimated by
power iteration whose vectors live in the ``batch_stats`` collection (the trainer's
``model_state``). They advance when the module is called with ``update_stats=True`` (the
discriminator's own train steps). No batch normalisation anywhere: every example's output
depends on that example only, so gradient penalties are per-example and data parallelism is
exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jgen.nets import MLP
from jgen.typing import Array
from jgen.validation import check_int

__all__ = ["ConvDiscriminator", "ConvGenerator", "MLPDiscriminator", "MLPGenerator"]


def _leaky_relu(x: Array) -> Array:
    return nn.leaky_relu(x, 0.2)


def _with_label(z: Array, label: Array | None, num_classes: int | None, dim: int) -> Array:
    if num_classes is None:
        return z
    if label is None:
        raise ValueError("a conditional generator needs labels")
    embedding = nn.Embed(num_classes, dim, name="label_embedding")(label)
    return jnp.concatenate([z, embedding.astype(z.dtype)], axis=-1)


class MLPGenerator(nn.Module):
    """x = MLP([z, e_y]) reshaped to ``event_shape`` (tanh-squashed if ``squash``)."""

    hidden_dims: Sequence[int]
    event_shape: Sequence[int]
    num_classes: int | None = None
    embed_dim: int = 16
    squash: bool = False
    activation: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, z: Array, label: Array | None = None) -> Array:
        h = _with_label(z, label, self.num_classes, self.embed_dim)
        size = math.prod(self.event_shape)
        x = MLP(self.hidden_dims, size, activation=self.activation, name="mlp")(h)
        x = jnp.tanh(x) if self.squash else x
        return x.reshape(*z.shape[:-1], *self.event_shape)


class _Discriminator(nn.Module):
    """Shared head: logit = ψ(φ) + ⟨e_y, φ⟩ over features φ from ``features``."""

    num_classes: int | None = None
    spectral_norm: bool = False

    def layer(self, module: nn.Module, h: Array, update_stats: bool) -> Array:
        if self.spectral_norm:
            return nn.SpectralNorm(module)(h, update_stats=update_stats)
        return module(h)

    def features(self, x: Array, update_stats: bool) -> Array:
        raise NotImplementedError

    @nn.compact
    def __call__(self, x: Array, label: Array | None = None, *, update_stats: bool = False):
        phi = self.features(x, update_stats)
        logit = self.layer(nn.Dense(1, name="head"), phi, update_stats)[..., 0]
        if self.num_classes is not None:
            if label is None:
                raise ValueError("a conditional discriminator needs labels")
            embedding = nn.Embed(self.num_classes, phi.shape[-1], name="projection")(label)
            logit = logit + jnp.sum(embedding.astype(phi.dtype) * phi, axis=-1)
        return logit


class MLPDiscriminator(_Discriminator):
    """φ = leaky-ReLU MLP features of the flattened input times ``input_scale``; logit as in
    `_Discriminator`.

    ``input_scale`` multiplies the input before the first layer: with data whose structure is
    much finer than its range (the ring's modes have std 0.02 on a circle of radius 2), the
    first layer needs weights of order range/scale to resolve it, which Adam reaches only after
    many steps from a unit-scale initialisation; a larger input scale starts closer.
    """

    hidden_dims: Sequence[int] = (128, 128)
    event_ndims: int = 1
    input_scale: float = 1.0

    def features(self, x: Array, update_stats: bool) -> Array:
        h = self.input_scale * x.reshape(*x.shape[: x.ndim - self.event_ndims], -1)
        for i, width in enumerate(self.hidden_dims):
            h = _leaky_relu(self.layer(nn.Dense(width, name=f"hidden_{i}"), h, update_stats))
        return h


class ConvGenerator(nn.Module):
    """DCGAN-style: Dense([z, e_y]) → (H/2ⁿ, W/2ⁿ, 2ⁿC) → ReLU → n × [ConvTranspose(stride 2,
    halving the channels) → ReLU] → Conv3x3(channels of the image) → tanh, with
    n = ``num_upsamples`` (1 for 8x8 digits; 2 for 28x28: 7 → 14 → 28). ``image_shape``
    (H, W, C) with H, W divisible by 2ⁿ."""

    image_shape: Sequence[int]
    channels: int = 32
    num_classes: int | None = None
    embed_dim: int = 16
    num_upsamples: int = 1

    def __post_init__(self):
        check_int(self.channels, "channels", minimum=1, owner="ConvGenerator")
        check_int(self.num_upsamples, "num_upsamples", minimum=1, owner="ConvGenerator")
        height, width, _ = self.image_shape
        factor = 2**self.num_upsamples
        if height % factor or width % factor:
            raise ValueError(
                f"ConvGenerator: image_shape needs H, W divisible by 2^num_upsamples = {factor}, "
                f"got {self.image_shape}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, z: Array, label: Array | None = None) -> Array:
        height, width, out_channels = self.image_shape
        n = self.num_upsamples
        h = _with_label(z, label, self.num_classes, self.embed_dim)
        base = (height >> n, width >> n, 2**n * self.channels)
        h = nn.Dense(math.prod(base), name="project")(h)
        h = nn.relu(h.reshape(*z.shape[:-1], *base))
        for i in range(n):  # the first upsampling keeps the name of the one-step generator
            features = 2 ** (n - 1 - i) * self.channels
            up = nn.ConvTranspose(
                features, (4, 4), strides=(2, 2), name="up" if i == 0 else f"up{i}"
            )
            h = nn.relu(up(h))
        return jnp.tanh(nn.Conv(out_channels, (3, 3), padding="SAME", name="out")(h))


class ConvDiscriminator(_Discriminator):
    """DCGAN-style: Conv3x3(C) → lReLU → n × [Conv4x4(stride 2, doubling the channels) →
    lReLU] → flatten → φ, with n = ``num_downsamples`` (1 for 8x8 digits, 2 for 28x28)."""

    channels: int = 32
    num_downsamples: int = 1

    def features(self, x: Array, update_stats: bool) -> Array:
        c = self.channels
        h = _leaky_relu(self.layer(nn.Conv(c, (3, 3), name="conv0"), x, update_stats))
        for i in range(1, self.num_downsamples + 1):
            conv = nn.Conv(2**i * c, (4, 4), strides=(2, 2), name=f"conv{i}")
            h = _leaky_relu(self.layer(conv, h, update_stats))
        return h.reshape(*h.shape[:-3], -1)
