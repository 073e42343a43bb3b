"""Glow (Kingma & Dhariwal 2018) for NHWC images, as one jgen bijector.

Data → latent, at each of ``num_levels`` levels: squeeze (H, W, C) → (H/2, W/2, 4C), then
``num_steps`` steps of

    ActNorm → invertible 1×1 convolution (LU, `Conv1x1`) → affine coupling ('channel' mask,
    parities alternating; ``additive=True`` for Glow's additive coupling)

and, except at the last level, factor out half of the channels (they are latents; the next
level gets the other half). Written, like `multiscale_realnvp`, with members listed from the
data side:

    level(H, W, C) = Chain([Inverse(Squeeze()), steps..., FactorOut(level(H/2, W/2, 2C)),
                            Squeeze()])

so the latent has the data's shape and the whole model is one bijector with one log-det (the
final Squeeze only reorders latents, which leaves a standard normal base unchanged). Sampling at
a temperature T (z ~ N(0, T² I)) is `Flow.sample(..., temperature=T)`.

`glow_vector` is the same step on vectors (D,): ActNorm → `LULinear` (the dense analogue of the
1×1 convolution) → affine coupling ('alternating' mask, MLP conditioners), with no squeeze or
levels; e.g. the "Glow" of the 2-D toy comparisons in docs/flows.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jgen.bijectors.base import Bijector, Chain, Inverse
from jgen.bijectors.coupling import AffineCoupling
from jgen.bijectors.linear import Conv1x1, LULinear
from jgen.bijectors.multiscale import FactorOut, Squeeze
from jgen.bijectors.normalization import ActNorm
from jgen.bijectors.realnvp import realnvp
from jgen.validation import check_int

__all__ = ["glow", "glow_vector"]


def glow(
    image_shape: Sequence[int],
    *,
    num_levels: int = 2,
    num_steps: int = 4,
    channels: int = 64,
    num_blocks: int = 1,
    additive: bool = False,
    context_dim: int | None = None,
    zero_init_last: bool = True,
    param_dtype: Any = None,
) -> Chain:
    """Glow on images of shape ``(H, W, C)`` (module docstring): ``num_levels`` levels of
    ``num_steps`` steps; coupling conditioners ``ConvResNet(channels, num_blocks)``
    (zero-initialised last layer when ``zero_init_last``: every coupling starts as the
    identity). H and W must be divisible by 2^num_levels."""
    shape = tuple(image_shape) if isinstance(image_shape, Sequence) else None
    if shape is None or len(shape) != 3:
        raise ValueError(f"glow: image_shape must be (H, W, C), got {image_shape!r}")
    for name, n in zip(("H", "W", "C"), shape, strict=True):
        check_int(n, f"image_shape {name}", minimum=1, owner="glow")
    check_int(num_levels, "num_levels", minimum=1, owner="glow")
    check_int(num_steps, "num_steps", minimum=1, owner="glow")
    h, w, _ = shape
    factor = 2**num_levels
    if h % factor or w % factor:
        raise ValueError(
            f"glow: with num_levels={num_levels}, H and W must be divisible by {factor} (one "
            f"squeeze per level), got image_shape {shape}"
        )

    def step(event_shape, parity) -> list[Bijector]:
        coupling = AffineCoupling(
            event_shape, "channel", parity=parity, channels=channels, num_blocks=num_blocks,
            additive=additive, context_dim=context_dim, zero_init_last=zero_init_last,
            param_dtype=param_dtype,
        )  # fmt: skip
        return [ActNorm(event_ndims=3), Conv1x1(event_shape[-1]), coupling]

    def level(event_shape, index) -> Chain:
        sh, sw, sc = event_shape
        squeezed = (sh // 2, sw // 2, 4 * sc)
        steps = [b for i in range(num_steps) for b in step(squeezed, i % 2)]
        if index == num_levels - 1:
            return Chain([Inverse(Squeeze()), *steps, Squeeze()])
        deeper = level((sh // 2, sw // 2, 2 * sc), index + 1)
        return Chain([Inverse(Squeeze()), *steps, FactorOut(deeper, factored="first"), Squeeze()])

    return level(shape, 0)


def glow_vector(
    event_dim: int,
    *,
    num_steps: int = 8,
    hidden_dims: Sequence[int] = (128, 128),
    context_dim: int | None = None,
    zero_init_last: bool = True,
    param_dtype: Any = None,
) -> Chain:
    """Glow's step on vectors of size ``event_dim``: ``num_steps`` × (ActNorm → `LULinear` →
    affine coupling with an ``MLP(hidden_dims)`` conditioner, parities alternating), listed from
    the data side. It is `realnvp` with ActNorm and a learned invertible linear map on the data
    side of every coupling; the options are `realnvp`'s."""
    check_int(event_dim, "event_dim", minimum=2, owner="glow_vector")
    check_int(num_steps, "num_steps", minimum=1, owner="glow_vector")

    def mixing() -> Bijector:
        return Chain([ActNorm(event_ndims=1), LULinear(event_dim)])

    return realnvp(
        event_dim, num_layers=num_steps, hidden_dims=hidden_dims, context_dim=context_dim,
        normalization=mixing, zero_init_last=zero_init_last, param_dtype=param_dtype,
    )  # fmt: skip
