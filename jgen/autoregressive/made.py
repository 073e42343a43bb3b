"""MADE (Germain et al. 2015) for discrete data: exact autoregressive likelihood over pixels.

    log p(x) = sum_{d=1}^{D} log p(x_d | x_1..x_{d-1})

in raster order, each conditional a categorical over ``num_levels`` values computed by one
masked MLP pass (masks and masked layers from `jgen.masked`, shared with the autoregressive
flows). The input is one-hot (D x K features); unit degrees follow the MADE recipe:
input and output units of pixel d have degree d, hidden units degrees in 1..D-1 (assigned
cyclically, so the masks are deterministic), a hidden unit of degree m sees inputs of degree
<= m, and the output of pixel d sees hidden units (and, through the direct connection, inputs)
of degree < d. Pixel 1's conditional is therefore a learned constant distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen import validation
from jgen.masked import MaskedDense, made_masks
from jgen.typing import Array, PRNGKey
from jgen.validation import ValidationError, check_array, check_int

__all__ = ["MADE", "MaskedDense", "made_masks"]


class MADE(nn.Module):
    """Exact autoregressive model of ``event_shape`` arrays of integer levels ``0..K-1``.

    Attributes:
      event_shape: shape of one example, e.g. ``(8, 8, 1)``; D = its size, raster order.
      num_levels: K, the number of levels per dimension.
      hidden_dims: widths of the masked hidden layers (ReLU).
      one_hot: inputs one-hot (D * K features) or scalars x / (K - 1) (D features, fewer
        parameters: less overfitting on small data sets).
      direct: a masked direct connection from inputs to outputs (besides the hidden layers).
    """

    event_shape: Sequence[int]
    num_levels: int
    hidden_dims: Sequence[int] = (512,)
    one_hot: bool = True
    direct: bool = True

    def __post_init__(self):
        object.__setattr__(self, "event_shape", tuple(int(d) for d in self.event_shape))
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        check_int(self.num_levels, "num_levels", minimum=2, owner="MADE")
        for width in self.hidden_dims:
            check_int(width, "every hidden width", minimum=1, owner="MADE")
        if not self.event_shape or math.prod(self.event_shape) < 1:
            raise ValueError(f"MADE: event_shape must be non-empty, got {self.event_shape}")
        super().__post_init__()

    @property
    def num_dims(self) -> int:
        return math.prod(self.event_shape)

    def setup(self):
        masks = made_masks(self.num_dims, self.num_levels, self.hidden_dims, one_hot=self.one_hot)
        self.hidden = [MaskedDense(m, name=f"hidden_{i}") for i, m in enumerate(masks[:-2])]
        self.output = MaskedDense(masks[-2])
        if self.direct:
            self.skip = MaskedDense(masks[-1], use_bias=False)

    def _features(self, x: Array) -> tuple[Array, Array]:
        """The network's inputs ``(B, D·K or D)`` and last hidden layer for integer ``x``."""
        flat = x.reshape(x.shape[0], self.num_dims)
        if self.one_hot:
            inputs = jax.nn.one_hot(flat, self.num_levels).reshape(x.shape[0], -1)
        else:
            inputs = flat.astype(jnp.float32) / (self.num_levels - 1)
        h = inputs
        for layer in self.hidden:
            h = nn.relu(layer(h))
        return inputs, h

    def logits(self, x: Array) -> Array:
        """``(B, D, K)`` logits of p(x_d | x_<d) for integer ``x`` ``(B, *event_shape)``."""
        inputs, h = self._features(x)
        logits = self.output(h)
        if self.direct:
            logits = logits + self.skip(inputs)
        return logits.reshape(x.shape[0], self.num_dims, self.num_levels)

    def pixel_logits(self, x: Array, d: Array | int) -> Array:
        """``(B, K)``: ``logits(x)[:, d]`` (``d`` may be traced) without computing the other
        pixels' outputs: the output layers' K columns of pixel d only (D times less work in the
        output head, which dominates at 28x28 with 256 levels)."""
        inputs, h = self._features(x)
        columns = (d * self.num_levels, self.num_levels)
        logits = self.output(h, columns)
        if self.direct:
            logits = logits + self.skip(inputs, columns)
        return logits

    def __call__(self, x: Array) -> Array:
        return self.log_prob(x)

    def log_prob(self, x: Array) -> Array:
        """Exact log p(x) in nats, shape ``(B,)``; ``x`` holds levels ``0..K-1``."""
        check_levels(x, self.event_shape, self.num_levels)
        log_probs = jax.nn.log_softmax(self.logits(x))
        flat = x.reshape(x.shape[0], self.num_dims).astype(jnp.int32)
        return jnp.take_along_axis(log_probs, flat[..., None], -1)[..., 0].sum(-1)

    def sample(self, key: PRNGKey, num_samples: int) -> Array:
        """``num_samples`` exact samples (int32), one pixel at a time (D passes of
        `pixel_logits`)."""
        x = jnp.zeros((num_samples, self.num_dims), jnp.int32)

        def body(d, x):
            logits = self.pixel_logits(x, d)
            return x.at[:, d].set(jax.random.categorical(jax.random.fold_in(key, d), logits))

        x = jax.lax.fori_loop(0, self.num_dims, body, x)
        return x.reshape((num_samples, *self.event_shape))


def check_levels(x, event_shape: tuple[int, ...], num_levels: int) -> None:
    """Integer-valued ``(B, *event_shape)`` levels in ``0..num_levels - 1`` (values checked on
    concrete arrays only)."""
    check_array(x, "x", event_shape=event_shape, min_ndim=len(event_shape) + 1, floating=False)
    if x.ndim != len(event_shape) + 1:
        raise ValidationError(
            f"x: expected shape (batch, {', '.join(map(str, event_shape))}), got shape "
            f"{tuple(x.shape)}"
        )
    validation.check_levels(x, "x", num_levels)
