"""FFJORD's multi-scale CNF for images (Grathwohl et al. 2019, Sec. 5; their ``ODENVP``).

RealNVP's multi-scale architecture (`jgen.bijectors.multiscale`) with stacks of CNF blocks in
place of the couplings: at every scale but the last, ``num_blocks`` CNFs on (H, W, C), a squeeze
to (H/2, W/2, 4C), ``num_blocks`` CNFs there, and half of the channels factored out to the base
distribution; the last scale has ``num_blocks`` CNFs. Each CNF has its own field, built by
``field(event_shape)`` for its stage's shape (e.g. a `UNetField`), and its own solve, built by
`make_cnf` from ``cnf_options``. log p(x) is the sum of the blocks' log-dets (each the CNF's
∫ tr ∂h/∂z dt) and the base density of the latents: a deeper scale's ODE is solved on a quarter
of the pixels and half of the dimensions of the one above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn

from jgen.bijectors import Bijector
from jgen.bijectors.multiscale import multiscale
from jgen.cnf.strategies import make_cnf
from jgen.validation import check_int

__all__ = ["multiscale_cnf"]


def multiscale_cnf(
    image_shape: Sequence[int],
    field: Callable[[tuple[int, int, int]], nn.Module],
    *,
    num_scales: int = 2,
    num_blocks: int = 1,
    **cnf_options,
) -> Bijector:
    """The multi-scale CNF on images of ``image_shape`` (H, W, C); see the module docstring.

    field:       ``field(event_shape) -> vector field`` for one CNF block on that shape.
    num_scales:  scales (H and W divisible by 2^(num_scales − 1)).
    num_blocks:  CNF blocks per stage (before the squeeze, after it, and at the last scale).
    cnf_options: `make_cnf` keywords (solver, tolerances, trace estimator, t1, ...) shared by
                 every block.
    """
    check_int(num_blocks, "num_blocks", minimum=1, owner="multiscale_cnf")
    if not callable(field) or isinstance(field, nn.Module):
        raise TypeError(
            "multiscale_cnf: field must be a function event_shape -> vector field (a fresh "
            f"module per block), got {field!r}"
        )

    def layers(event_shape, stage):
        del stage  # every stage is a stack of CNFs
        return [make_cnf(field(event_shape), event_shape, **cnf_options) for _ in range(num_blocks)]

    return multiscale(image_shape, num_scales, layers, owner="multiscale_cnf")
