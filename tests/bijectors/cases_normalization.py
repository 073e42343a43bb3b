"""Registry cases for `ActNorm` and `BatchNorm` (`jgen.bijectors.normalization`)."""

import flax.linen as nn
import jax

from jgen import bijectors as jb
from tests.bijectors.registry import Case


def _shifted_normal(loc: float, scale: float):
    """Inputs away from zero mean / unit variance, so data-dependent init is not the identity."""

    def sample(key, shape, dtype):
        return loc + scale * jax.random.normal(key, shape, dtype)

    return sample


_GAUSSIAN = nn.initializers.normal(1.0)

CASES = [
    Case("actnorm_forward_init", lambda: jb.ActNorm(), (3,), _shifted_normal(1.0, 0.2)),
    Case(
        "actnorm_image_forward_init",
        lambda: jb.ActNorm(event_ndims=3),
        (4, 4, 3),
        _shifted_normal(-0.5, 0.4),
    ),
    # Initialised through the inverse on data. An ActNorm alone would be initialised on the
    # output of its own forward init, which is already standardised (so it would be the
    # identity); behind a randomly initialised linear map its statistics are not trivial.
    # In the data -> noise direction these apply the linear map first, then the ActNorm.
    Case(
        "actnorm_init_inverse_after_lu_linear",
        lambda: jb.Chain([jb.LULinear(3, weight_init=_GAUSSIAN), jb.ActNorm()]),
        (3,),
        init_inverse=True,
    ),
    Case(
        "actnorm_image_init_inverse_glow_step",
        lambda: jb.Chain([jb.Conv1x1(3, weight_init=_GAUSSIAN), jb.ActNorm(event_ndims=3)]),
        (4, 4, 3),
        init_inverse=True,
    ),
    # BatchNorm runs in eval mode here; initialising through the inverse (train mode) on
    # shifted, scaled data moves the running statistics away from (0, 1).
    Case(
        "batchnorm",
        lambda: jb.BatchNorm(momentum=0.5),
        (3,),
        _shifted_normal(2.0, 3.0),
        init_inverse=True,
    ),
    Case(
        "batchnorm_image",
        lambda: jb.BatchNorm(event_ndims=3),
        (4, 4, 3),
        _shifted_normal(-1.0, 0.3),
        init_inverse=True,
    ),
]
