"""Registry cases for the core combinators and the distrax adapter."""

import distrax
import jax.numpy as jnp

from jgen import bijectors as jb
from tests.bijectors.registry import UNIT_INTERVAL, Case, Interval

CASES = [
    Case("identity", lambda: jb.Identity(event_ndims=1), (3,)),
    Case(
        "from_distrax_scalar_affine",
        lambda: jb.FromDistrax(distrax.ScalarAffine(0.5, 1.5), event_ndims=1),
        (3,),
    ),
    Case(
        "chain_with_distrax_members",
        lambda: jb.Chain(
            [distrax.Tanh(), jb.Inverse(jb.FromDistrax(distrax.ScalarAffine(0.1, 2.0)))]
        ),
        (2,),
        codomain=Interval(-1.0, 1.0),
    ),
    Case(
        "inverse_of_distrax_block",
        lambda: jb.Inverse(
            jb.FromDistrax(distrax.Block(distrax.ScalarAffine(-0.2, jnp.array(0.7)), 1))
        ),
        (4,),
    ),
]

# A member acting on fewer axes than the chain (elementwise, event_ndims=0) has its log-det
# summed up to the chain's event axes.
CASES.append(
    Case(
        "chain_mixed_event_ndims",
        lambda: jb.Chain([jb.Sigmoid(event_ndims=0), jb.ScalarAffine(0.3, 2.0, event_ndims=1)]),
        (3,),
        codomain=UNIT_INTERVAL,
    )
)
