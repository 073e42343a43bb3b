"""Registry cases for residual flows (`jgen.bijectors.ResidualBlock`, `residual_flow`).

The property suite compares the log-det with slogdet of the autodiff Jacobian, so these cases
use the exact log-det (`ExactLogDet`, the default); the stochastic estimators have their own
statistical tests in `tests/bijectors/test_residual.py`. The kernels start from N(0, 1) entries,
so spectral normalisation is active (every layer's norm is ``coeff``) and g is far from zero:
the fixed-point forward needs tens of iterations and the log-det is not small.
"""

import flax.linen as nn

from jgen import bijectors as jb
from tests.bijectors.registry import Case

_STRONG = nn.initializers.normal(1.0)

CASES = [
    Case(
        "residual_block_mlp_lipswish",
        lambda: jb.ResidualBlock((3,), hidden_dims=(8, 8), coeff=0.9, kernel_init=_STRONG),
        (3,),
    ),
    Case(
        "residual_block_conv_elu",
        lambda: jb.ResidualBlock(
            (2, 2, 2), hidden_dims=(4,), activation="elu", coeff=0.9, kernel_init=_STRONG
        ),
        (2, 2, 2),
    ),
]
