"""Registry cases for the elementwise bijectors (`jgen.bijectors.elementwise`)."""

import flax.linen as nn

from jgen import bijectors as jb
from tests.bijectors.registry import (
    UNIT_INTERVAL,
    Case,
    Interval,
    normal_sampler,
    uniform_sampler,
)

# Non-zero initial parameters: with the default zeros init Affine is the identity and its
# log-det check could not fail.
_RANDOM_INIT = dict(
    shift_init=nn.initializers.normal(1.0), log_scale_init=nn.initializers.normal(0.5)
)

CASES = [
    Case("affine_random_init", lambda: jb.Affine((4,), **_RANDOM_INIT), (4,)),
    Case(
        "affine_per_channel_image",
        lambda: jb.Affine((3,), event_ndims=3, **_RANDOM_INIT),
        (2, 2, 3),
    ),
    Case("scalar_affine_negative_scale", lambda: jb.ScalarAffine(0.5, -2.5), (3,)),
    Case("sigmoid", lambda: jb.Sigmoid(), (3,), normal_sampler(3.0), codomain=UNIT_INTERVAL),
    Case(
        "sigmoid_matrix_events",
        lambda: jb.Sigmoid(event_ndims=2),
        (2, 3),
        normal_sampler(2.0),
        codomain=UNIT_INTERVAL,
    ),
    Case("logit", lambda: jb.Logit(), (3,), uniform_sampler(0.02, 0.98), domain=UNIT_INTERVAL),
    Case("tanh", lambda: jb.Tanh(), (3,), normal_sampler(1.5), codomain=Interval(-1.0, 1.0)),
]
