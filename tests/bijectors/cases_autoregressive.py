"""Registry cases for masked autoregressive flows (MAF and IAF layers, affine and spline).

``zero_init_last=False``: with a zero output layer every layer would be the identity.
"""

from jgen import bijectors as jb
from tests.bijectors.registry import Case, normal_sampler

TINY = dict(hidden_dims=(8,), zero_init_last=False)
SPLINE = dict(transformer="spline", num_bins=3, bound=2.0, **TINY)

CASES = [
    Case("maf_affine", lambda: jb.MaskedAutoregressive(4, **TINY), (4,)),
    Case(
        "maf_spline_with_context",
        lambda: jb.MaskedAutoregressive(3, context_dim=2, **SPLINE),
        (3,),
        normal_sampler(2.0),
        context_dim=2,
    ),
    Case(
        "iaf_affine_with_context",
        lambda: jb.InverseAutoregressive(3, context_dim=2, **TINY),
        (3,),
        context_dim=2,
    ),
]
