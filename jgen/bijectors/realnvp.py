"""Ready-made coupling flows as single jgen bijectors: RealNVP (Dinh et al. 2017) and neural
spline flows (Durkan et al. 2019).

``realnvp``            a stack of affine couplings on vectors, with alternating parity.
``neural_spline_flow`` the same stack with rational-quadratic spline couplings.
``multiscale_realnvp`` the multi-scale image architecture: checkerboard couplings, squeeze,
                       channel couplings and factor-out at each scale.

Both return a ``Chain`` whose forward maps base noise to data and whose inverse maps data to
latents of the same shape, with one log-det (see `jgen.bijectors.base`). Members are listed
from the data side: the inverse (data -> latent) applies the first member first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn

from jgen.bijectors.base import Bijector, Chain
from jgen.bijectors.coupling import VECTOR_MASKS, AffineCoupling, SplineCoupling
from jgen.bijectors.multiscale import multiscale
from jgen.bijectors.scan import Repeat
from jgen.validation import check_int

__all__ = ["multiscale_realnvp", "neural_spline_flow", "realnvp"]

ConditionerFactory = Callable[[int], nn.Module]


def _check_conditioner(owner: str, conditioner: Any) -> None:
    if isinstance(conditioner, nn.Module) or (
        conditioner is not None and not callable(conditioner)
    ):
        raise TypeError(
            f"{owner}: conditioner must be a factory f(num_outputs) -> nn.Module (one network per "
            f"coupling), got {type(conditioner).__name__}"
        )


def _normalization_factory(
    owner: str, actnorm: bool, normalization: Callable[[], Bijector] | None, event_ndims: int
) -> Callable[[], Bijector] | None:
    if actnorm and normalization is not None:
        raise ValueError(f"{owner}: pass either actnorm=True or a normalization factory, not both")
    if normalization is not None and not callable(normalization):
        raise TypeError(
            f"{owner}: normalization must be a factory () -> Bijector, "
            f"got {type(normalization).__name__}"
        )
    if actnorm:
        from jgen.bijectors.normalization import ActNorm

        return lambda: ActNorm(event_ndims=event_ndims)
    return normalization


def _with_normalization(
    couplings: list[Bijector], normalization: Callable[[], Bijector] | None
) -> list[Bijector]:
    """[norm, c1, norm, c2, ...]: a fresh normalisation on the data side of every coupling."""
    if normalization is None:
        return couplings
    layers: list[Bijector] = []
    for coupling in couplings:
        layers += [normalization(), coupling]
    return layers


def _vector_couplings(
    owner: str,
    coupling: type,
    event_dim: int,
    num_layers: int,
    mask: str,
    actnorm: bool,
    normalization: Callable[[], Bijector] | None,
    conditioner: ConditionerFactory | None,
    scan_layers: bool = False,
    **options: Any,
) -> Chain:
    """``num_layers`` couplings of class ``coupling`` on vectors, parities 0, 1, 0, ..., with
    an optional normalisation on the data side of each (`realnvp`, `neural_spline_flow`).

    ``scan_layers``: the same layers as a `Repeat` of the pair (parity 0, parity 1) over
    ``num_layers // 2`` stacked copies, then one more parity-0 coupling when ``num_layers`` is
    odd: one compiled pair whatever the depth."""
    check_int(event_dim, "event_dim", minimum=2, owner=owner)
    check_int(num_layers, "num_layers", minimum=1, owner=owner)
    if mask not in VECTOR_MASKS:
        raise ValueError(f"{owner}: mask must be one of {VECTOR_MASKS}, got {mask!r}")
    _check_conditioner(owner, conditioner)
    norm = _normalization_factory(owner, actnorm, normalization, event_ndims=1)
    if not isinstance(scan_layers, bool):
        raise TypeError(f"{owner}: scan_layers must be a bool, got {scan_layers!r}")

    def layers(count: int) -> list[Bijector]:
        couplings = [
            coupling((event_dim,), mask, parity=i % 2, conditioner=conditioner, **options)
            for i in range(count)
        ]
        return _with_normalization(couplings, norm)

    if not scan_layers:
        return Chain(layers(num_layers))
    members: list[Bijector] = []
    if num_layers >= 2:
        members.append(Repeat(Chain(layers(2)), num_layers // 2))
    if num_layers % 2:
        members += layers(1)
    return Chain(members)


def realnvp(
    event_dim: int,
    *,
    num_layers: int = 8,
    hidden_dims: Sequence[int] = (128, 128),
    mask: str = "alternating",
    context_dim: int | None = None,
    actnorm: bool = False,
    normalization: Callable[[], Bijector] | None = None,
    conditioner: ConditionerFactory | None = None,
    zero_init_last: bool = True,
    param_dtype: Any = None,
    scan_layers: bool = False,
) -> Chain:
    """RealNVP on vectors of size ``event_dim``: ``num_layers`` affine couplings.

    Coupling i uses ``mask`` ('alternating' or 'half') with parity i % 2, so consecutive layers
    transform complementary coordinates. Each conditioner is ``MLP(hidden_dims)`` (or
    ``conditioner(num_outputs)``), with a zero last layer when ``zero_init_last`` (the flow
    starts as the identity). With ``context_dim``, every coupling requires a context of that
    size. ``actnorm=True`` puts an ``ActNorm(event_ndims=1)`` on the data side of every coupling;
    ``normalization`` does the same with any bijector factory (e.g. ``lambda: BatchNorm()``).
    ``param_dtype`` is the couplings' parameter dtype; None (the default) is JAX's default float
    type, float64 under ``jax_enable_x64``.

    ``scan_layers=True`` builds the same flow with the layers' variables stacked and the pairs
    of couplings run in a scan (`jgen.bijectors.scan.Repeat`): compile time no longer grows
    with ``num_layers``. The parameters are then named ``['0_repeat']['body']['0_affine_coupling']``
    (parity 0) and ``['1_affine_coupling']`` (parity 1), with a leading axis of
    ``num_layers // 2``; with the same values the flow is the unrolled one.
    """
    return _vector_couplings(
        "realnvp", AffineCoupling, event_dim, num_layers, mask, actnorm, normalization,
        conditioner, scan_layers, context_dim=context_dim, hidden_dims=tuple(hidden_dims),
        zero_init_last=zero_init_last, param_dtype=param_dtype,
    )  # fmt: skip


def neural_spline_flow(
    event_dim: int,
    *,
    num_layers: int = 8,
    num_bins: int = 8,
    bound: float = 3.0,
    hidden_dims: Sequence[int] = (128, 128),
    mask: str = "alternating",
    context_dim: int | None = None,
    actnorm: bool = False,
    normalization: Callable[[], Bijector] | None = None,
    conditioner: ConditionerFactory | None = None,
    zero_init_last: bool = True,
    min_bin_size: float = 1e-3,
    min_derivative: float = 1e-3,
    param_dtype: Any = None,
    scan_layers: bool = False,
) -> Chain:
    """A neural spline flow (coupling RQ-NSF, Durkan et al. 2019) on vectors of size
    ``event_dim``: `realnvp`'s stack with `SplineCoupling` layers of ``num_bins`` bins on
    [−bound, bound] (identity tails outside). The other options are `realnvp`'s; with
    ``zero_init_last`` every spline starts as the identity; ``scan_layers`` is `realnvp`'s.
    """
    return _vector_couplings(
        "neural_spline_flow", SplineCoupling, event_dim, num_layers, mask, actnorm,
        normalization, conditioner, scan_layers, context_dim=context_dim,
        hidden_dims=tuple(hidden_dims),
        zero_init_last=zero_init_last, param_dtype=param_dtype, num_bins=num_bins,
        bound=bound, min_bin_size=min_bin_size, min_derivative=min_derivative,
    )  # fmt: skip


def multiscale_realnvp(
    image_shape: Sequence[int],
    *,
    num_scales: int = 2,
    num_couplings_per_scale: int = 3,
    num_final_couplings: int = 4,
    channels: int = 64,
    num_blocks: int = 2,
    context_dim: int | None = None,
    actnorm: bool = False,
    normalization: Callable[[], Bijector] | None = None,
    conditioner: ConditionerFactory | None = None,
    zero_init_last: bool = True,
    param_dtype: Any = None,
) -> Chain:
    """Multi-scale RealNVP on NHWC images of shape ``image_shape = (H, W, C)``.

    Data -> latent, at each scale but the last (Dinh et al. 2017, Sec. 3.6):
      ``num_couplings_per_scale`` checkerboard couplings (parities 0, 1, 0, ...),
      squeeze (H, W, C) -> (H/2, W/2, 4C),
      ``num_couplings_per_scale`` channel couplings (parities 0, 1, 0, ...),
      factor out the first 2C channels (they are latents); the next scale gets the other 2C,
      and a final depth-to-space puts the latents back in the shape (H, W, C).
    The last scale: ``num_final_couplings`` checkerboard couplings.

    Written as bijectors (members listed from the data side):
        scale(H, W, C) = Chain([checkerboard couplings..., Inverse(Squeeze()),
                                channel couplings..., FactorOut(scale(H/2, W/2, 2C)), Squeeze()])
    so the latent has the data's shape and the model is one bijector with one log-det; the final
    Squeeze only reorders latents, which leaves a standard normal base density unchanged.

    The paper's recipe fits any C >= 1, including 1-channel 8x8 digits: checkerboard couplings
    need no channel split, and the channel couplings come after the squeeze, which makes 4C >= 4
    channels. With num_scales=2 on (8, 8, 1): 3 checkerboard couplings on 8x8x1, squeeze to
    4x4x4, 3 channel couplings (2 | 2 channels), factor out 2 channels, 4 checkerboard couplings
    on 4x4x2. H and W must be divisible by 2^(num_scales - 1), and the last scale needs at
    least 2 pixels.

    Conditioners are ``ConvResNet(channels, num_blocks)`` (or ``conditioner(num_outputs)``),
    zero-initialised last when ``zero_init_last``. ``context_dim``, ``actnorm`` (an
    ``ActNorm(event_ndims=3)`` on the data side of every coupling), ``normalization`` and
    ``param_dtype`` are as in `realnvp`.
    """
    check_int(
        num_couplings_per_scale, "num_couplings_per_scale", minimum=1, owner="multiscale_realnvp"
    )
    check_int(num_final_couplings, "num_final_couplings", minimum=1, owner="multiscale_realnvp")
    _check_conditioner("multiscale_realnvp", conditioner)
    norm = _normalization_factory("multiscale_realnvp", actnorm, normalization, event_ndims=3)

    def coupling(event_shape, mask, parity):
        return AffineCoupling(
            event_shape,
            mask,
            parity=parity,
            conditioner=conditioner,
            context_dim=context_dim,
            channels=channels,
            num_blocks=num_blocks,
            zero_init_last=zero_init_last,
            param_dtype=param_dtype,
        )

    def layers(event_shape, stage):
        if stage == "last":
            masks = ["checkerboard"] * num_final_couplings
        else:
            mask = "checkerboard" if stage == "before_squeeze" else "channel"
            masks = [mask] * num_couplings_per_scale
        couplings = [coupling(event_shape, m, i % 2) for i, m in enumerate(masks)]
        return _with_normalization(couplings, norm)

    return multiscale(image_shape, num_scales, layers, owner="multiscale_realnvp")
