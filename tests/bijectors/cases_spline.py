"""Registry cases for rational-quadratic splines, spline couplings and neural spline flows.

Parameters are random (a zero-initialised spline is the identity and the Jacobian checks could
not fail); inputs are drawn on both sides of the interval's edges (N(0, 2²) against B = 2).
"""

import flax.linen as nn

from jgen import bijectors as jb
from tests.bijectors.registry import Case, normal_sampler

RANDOM = nn.initializers.normal(0.5)
SPLINE = dict(num_bins=4, bound=2.0, hidden_dims=(8,), zero_init_last=False)
SPLINE_CONV = dict(num_bins=3, bound=2.0, channels=4, num_blocks=0, zero_init_last=False)

CASES = [
    Case(
        "spline_elementwise",
        lambda: jb.RationalQuadraticSpline((3,), num_bins=5, bound=2.0, params_init=RANDOM),
        (3,),
        normal_sampler(2.0),
    ),
    Case(
        "spline_shared_over_image_with_context",
        lambda: jb.RationalQuadraticSpline(
            (2,), event_ndims=3, num_bins=3, bound=2.0, params_init=RANDOM, context_dim=2
        ),
        (2, 2, 2),
        normal_sampler(2.0),
        context_dim=2,
    ),
    Case(
        "spline_circular",
        lambda: jb.RationalQuadraticSpline((3,), num_bins=4, circular=True, params_init=RANDOM),
        (3,),
        normal_sampler(3.0),
    ),
    Case(
        "spline_coupling_checkerboard",
        lambda: jb.SplineCoupling((4, 4, 2), "checkerboard", 1, **SPLINE_CONV),
        (4, 4, 2),
        normal_sampler(2.0),
    ),
    Case(
        "spline_coupling_channel_with_context",
        lambda: jb.SplineCoupling((2, 2, 3), "channel", 0, context_dim=2, **SPLINE_CONV),
        (2, 2, 3),
        normal_sampler(2.0),
        context_dim=2,
    ),
    Case(
        "neural_spline_flow_half_with_context",
        lambda: jb.neural_spline_flow(4, num_layers=2, mask="half", context_dim=2, **SPLINE),
        (4,),
        normal_sampler(2.0),
        context_dim=2,
    ),
]
