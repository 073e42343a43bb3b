"""RealNVP's multi-scale architecture as bijectors: ``Squeeze``, ``FactorOut`` and
``multiscale`` (the whole architecture around any layers: RealNVP's couplings, FFJORD's CNFs).

Dinh et al. (2017) map data to latents scale by scale: at scale i the current tensor h_i goes
through couplings g_i, then half of its channels z_i are "factored out" (sent straight to the
base distribution) and only the other half h_{i+1} is processed further:

    (z_i, h_{i+1}) = split(g_i(h_i)),    z = (z_1, ..., z_L),
    log p(x) = Σ_i log N(z_i; 0, I) + Σ_i log|det ∂g_i/∂h_i| + (the last scale's terms).

``FactorOut(inner)`` is that step written as one bijector: on one part of the channels it is
the identity, on the other it applies ``inner`` (the rest of the deeper scales). Its Jacobian is
block diagonal diag(I, J_inner), so log|det| = log|det J_inner|, and its latent
concat(z_i, inner⁻¹(h_{i+1})) under a standard normal base has density
N(z_i) · N(inner⁻¹(h_{i+1})): exactly the factorised density of Dinh et al. The whole model is
then one bijector with one log-det (and the same likelihood as the paper's, since reordering
i.i.d. N(0, 1) latents does not change their density). Deeper scales cost only half the
channels, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import jax.numpy as jnp

from jgen.bijectors.base import Bijector, Chain, Inverse
from jgen.typing import Array
from jgen.validation import check_int

__all__ = ["FactorOut", "Reshape", "Squeeze", "multiscale"]


class Squeeze(Bijector):
    """Space-to-depth (RealNVP's squeeze): (..., H, W, C) -> (..., H/2, W/2, 4C).

    Every 2x2 block of pixels becomes one pixel with 4C channels, ordered (row in block,
    column in block, channel): output channel (2·dh + dw)·C + c holds x[2i + dh, 2j + dw, c].
    For C = 1 the first half of the output channels is the top row of each block and the second
    half the bottom row, so a channel coupling after a squeeze uses a partition different from
    the checkerboard one (as in Dinh et al., Fig. 3).

    It only moves coordinates: volume preserving, log|det| = 0 exactly (returned with the batch
    shape). The inverse is depth-to-space. H and W must be even (checked at call time).
    """

    parameter_free: ClassVar[bool] = True

    @property
    def event_ndims(self) -> int:
        return 3

    @staticmethod
    def _check(x: Array, what: str) -> None:
        if x.ndim < 3:
            raise ValueError(f"Squeeze expects {what} of shape (..., H, W, C), got {x.shape}")

    def forward_and_log_det(self, x, context=None):
        self._check(x, "inputs")
        *batch, h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(
                f"Squeeze needs an even height and width, got (H, W) = ({h}, {w}) "
                f"from an input of shape {x.shape}"
            )
        y = x.reshape(*batch, h // 2, 2, w // 2, 2, c)
        n = len(batch)
        # (..., i, dh, j, dw, c) -> (..., i, j, dh, dw, c)
        y = jnp.moveaxis(y, n + 1, n + 2)
        y = y.reshape(*batch, h // 2, w // 2, 4 * c)
        return y, jnp.zeros(tuple(batch), x.dtype)

    def inverse_and_log_det(self, y, context=None):
        self._check(y, "outputs")
        *batch, h, w, c4 = y.shape
        if c4 % 4:
            raise ValueError(
                f"Squeeze's inverse needs a channel count divisible by 4, got {c4} "
                f"from an input of shape {y.shape}"
            )
        c = c4 // 4
        x = y.reshape(*batch, h, w, 2, 2, c)
        n = len(batch)
        # (..., i, j, dh, dw, c) -> (..., i, dh, j, dw, c)
        x = jnp.moveaxis(x, n + 2, n + 1)
        x = x.reshape(*batch, 2 * h, 2 * w, c)
        return x, jnp.zeros(tuple(batch), y.dtype)


class FactorOut(Bijector):
    """Identity on one part of the last axis, ``inner`` on the rest (RealNVP's factor-out).

    With the last axis (channels for images) of size C and k = C // 2:

        factored='first':  y = concat(x[..., :k], inner(x[..., k:]))
        factored='last':   y = concat(inner(x[..., :C-k]), x[..., C-k:])
        log|det J| = log|det J_inner|,       inverse: the same with inner⁻¹.

    The factored part maps straight to the base distribution; see the module docstring for
    why this equals Dinh et al.'s multi-scale factor-out. ``inner`` must keep the shape of its
    part (e.g. a Chain that squeezes and unsqueezes again) and share the event rank: the split
    is on the last axis of the event, identical in both directions. ``context`` goes to
    ``inner``.
    """

    inner: Bijector
    factored: str = "first"

    def __post_init__(self):
        if not isinstance(self.inner, Bijector):
            raise TypeError(f"FactorOut: inner must be a jgen Bijector, got {type(self.inner)}")
        if self.factored not in ("first", "last"):
            raise ValueError(
                f"FactorOut: factored must be 'first' or 'last', got {self.factored!r}"
            )
        super().__post_init__()

    @property
    def event_ndims(self) -> int:
        return self.inner.event_ndims

    def _split(self, x: Array) -> tuple[Array, Array, int]:
        n = x.shape[-1]
        if n < 2:
            raise ValueError(f"FactorOut needs at least 2 entries on the last axis, got {x.shape}")
        k = n // 2
        if self.factored == "first":
            return x[..., :k], x[..., k:], 0
        return x[..., n - k :], x[..., : n - k], 1

    def _apply(self, x: Array, context, inverse: bool) -> tuple[Array, Array]:
        kept, processed, order = self._split(x)
        method = self.inner.inverse_and_log_det if inverse else self.inner.forward_and_log_det
        out, log_det = method(processed, context)
        if out.shape != processed.shape:
            raise ValueError(
                f"FactorOut: inner must keep the shape {processed.shape} of its part, "
                f"got {out.shape}"
            )
        parts = [kept, out] if order == 0 else [out, kept]
        return jnp.concatenate(parts, axis=-1), log_det

    def forward_and_log_det(self, x, context=None):
        return self._apply(x, context, inverse=False)

    def inverse_and_log_det(self, y, context=None):
        return self._apply(y, context, inverse=True)


class Reshape(Bijector):
    """Reshape the event: trailing axes ``in_shape`` (forward input) ↔ ``out_shape``, with the
    same number of elements; log|det| = 0. Used to run vector flows (NSF, MAF) on images:
    ``Chain([Reshape((D,), (H, W, C)), flow, Reshape((H, W, C), (D,))])`` keeps image-shaped
    latents and data."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __post_init__(self):
        for name in ("in_shape", "out_shape"):
            shape = getattr(self, name)
            if isinstance(shape, int) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
            ):
                raise ValueError(f"Reshape: {name} must be a tuple of positive ints, got {shape!r}")
            object.__setattr__(self, name, tuple(shape))
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(
                f"Reshape: in_shape {self.in_shape} and out_shape {self.out_shape} have different "
                "sizes"
            )
        super().__post_init__()

    @property
    def event_ndims(self) -> int:
        return len(self.in_shape)

    @staticmethod
    def _reshape(x: Array, source: tuple[int, ...], target: tuple[int, ...]):
        n = len(source)
        if x.ndim < n or tuple(x.shape[x.ndim - n :]) != source:
            raise ValueError(f"Reshape: expected inputs of shape (..., *{source}), got {x.shape}")
        batch = x.shape[: x.ndim - n]
        return x.reshape((*batch, *target)), jnp.zeros(batch, x.dtype)

    def forward_and_log_det(self, x, context=None):
        return self._reshape(x, self.in_shape, self.out_shape)

    def inverse_and_log_det(self, y, context=None):
        return self._reshape(y, self.out_shape, self.in_shape)


MultiscaleLayers = Callable[[tuple[int, int, int], str], list[Bijector]]
STAGES = ("before_squeeze", "after_squeeze", "last")


def multiscale(
    image_shape: Sequence[int], num_scales: int, layers: MultiscaleLayers, *, owner: str
) -> Bijector:
    """The multi-scale architecture of RealNVP and FFJORD around any invertible layers.

    ``layers(event_shape, stage)`` returns the bijectors (data side first) of one stage:
    'before_squeeze' on (H, W, C) at every scale but the last, 'after_squeeze' on
    (H/2, W/2, 4C) at those scales, 'last' at the last scale. Data -> latent at a scale:

        before_squeeze layers, squeeze, after_squeeze layers, factor out the first 2C channels
        (latents), the next scale on the other 2C, and a final depth-to-space

    i.e. ``scale(H, W, C) = Chain([*before, Inverse(Squeeze()), *after,
    FactorOut(scale(H/2, W/2, 2C)), Squeeze()])``, so the latent has the data's shape and
    the whole model is one bijector with one log-det. H and W must be divisible by
    2^(num_scales − 1) and the last scale needs at least 2 pixels; errors name ``owner``.
    """
    shape = tuple(image_shape) if isinstance(image_shape, Sequence) else None
    if shape is None or len(shape) != 3:
        raise ValueError(f"{owner}: image_shape must be (H, W, C), got {image_shape!r}")
    for name, n in zip(("H", "W", "C"), shape, strict=True):
        check_int(n, f"image_shape {name}", minimum=1, owner=owner)
    check_int(num_scales, "num_scales", minimum=1, owner=owner)
    h, w, _ = shape
    factor = 2 ** (num_scales - 1)
    if h % factor or w % factor:
        raise ValueError(
            f"{owner}: with num_scales={num_scales}, H and W must be divisible by "
            f"{factor} (one squeeze per scale but the last), got image_shape {shape}"
        )
    if (h // factor) * (w // factor) < 2:
        raise ValueError(
            f"{owner}: the last scale would have a 1x1 image (image_shape {shape}, "
            f"num_scales={num_scales}); use fewer scales"
        )

    def scale(event_shape, level):
        if level == num_scales - 1:
            return Chain(layers(event_shape, "last"))
        sh, sw, sc = event_shape
        deeper = scale((sh // 2, sw // 2, 2 * sc), level + 1)
        return Chain(
            [
                *layers(event_shape, "before_squeeze"),
                Inverse(Squeeze()),
                *layers((sh // 2, sw // 2, 4 * sc), "after_squeeze"),
                FactorOut(deeper, factored="first"),
                Squeeze(),
            ]
        )

    return scale(shape, 0)
