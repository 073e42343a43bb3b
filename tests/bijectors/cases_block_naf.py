"""Registry case for the block neural autoregressive flow (B-NAF): one tiny conditional layer
(its forward is a bisection per coordinate, the costliest part of the property suite)."""

from jgen import bijectors as jb
from tests.bijectors.registry import Case

CASES = [
    Case(
        "block_naf_with_context",
        lambda: jb.BlockNeuralAutoregressive(3, block_dim=2, context_dim=2),
        (3,),
        context_dim=2,
    ),
]
