"""Registry cases for Glow, the additive coupling it may use, and Reshape.

Conditioners are random (``zero_init_last=False``); ActNorm is initialised on data
(``init_inverse``), as in training.
"""

from jgen import bijectors as jb
from tests.bijectors.registry import Case

TINY_CONV = dict(channels=4, num_blocks=0, zero_init_last=False)

CASES = [
    Case("reshape_image_to_vector", lambda: jb.Reshape((2, 2, 3), (12,)), (2, 2, 3)),
    Case(
        "coupling_additive_channel",
        lambda: jb.AffineCoupling((2, 2, 4), "channel", 1, additive=True, **TINY_CONV),
        (2, 2, 4),
    ),
    Case(
        "glow_two_levels",
        lambda: jb.glow((4, 4, 1), num_levels=2, num_steps=1, **TINY_CONV),
        (4, 4, 1),
        init_inverse=True,
    ),
]
