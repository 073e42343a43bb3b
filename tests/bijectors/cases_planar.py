"""Registry cases for the planar and radial flows (`jgen.bijectors.planar`).

Shared parameters are drawn with ``init_scale=1`` (the default 0.1 makes each map close to the
identity, which would make the Jacobian checks weak); amortized cases read their parameters
from the registry's random N(0, 1) context, a different flow for every event.
"""

from jgen import bijectors as jb
from tests.bijectors.registry import Case, normal_sampler

CASES = [
    Case("planar_random_init", lambda: jb.Planar(3, init_scale=1.0), (3,), normal_sampler(2.0)),
    Case(
        "planar_amortized",
        lambda: jb.Planar(3, amortized=True),
        (3,),
        normal_sampler(2.0),
        context_dim=jb.Planar.num_context_params(3),
    ),
    Case("radial_random_init", lambda: jb.Radial(3, init_scale=1.0), (3,), normal_sampler(2.0)),
    Case(
        "radial_amortized",
        lambda: jb.Radial(4, amortized=True),
        (4,),
        normal_sampler(2.0),
        context_dim=jb.Radial.num_context_params(4),
    ),
]
