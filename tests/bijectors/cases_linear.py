"""Registry cases for the permutations and the LU-parameterised linear maps."""

import flax.linen as nn

from jgen import bijectors as jb
from tests.bijectors.registry import Case

# The default init is a random orthogonal matrix, whose log-det is 0: a Gaussian start matrix
# makes the log-det check able to fail.
_GAUSSIAN = nn.initializers.normal(1.0)

CASES = [
    Case("reverse", lambda: jb.Reverse(), (4,)),
    Case("permute", lambda: jb.Permute((2, 0, 3, 1)), (4,)),
    Case("random_permutation", lambda: jb.random_permutation(0, 5), (5,)),
    Case("permute_image_channels", lambda: jb.Permute((2, 0, 1), event_ndims=3), (4, 4, 3)),
    Case("lu_linear", lambda: jb.LULinear(4), (4,)),
    Case(
        "lu_linear_gaussian_init_permuted_no_bias",
        lambda: jb.LULinear(3, use_bias=False, permutation=(1, 2, 0), weight_init=_GAUSSIAN),
        (3,),
    ),
    Case("conv1x1", lambda: jb.Conv1x1(3), (4, 4, 3)),
    Case(
        "conv1x1_gaussian_init_permuted",
        lambda: jb.Conv1x1(3, permutation=(2, 0, 1), weight_init=_GAUSSIAN),
        (4, 4, 3),
    ),
]
