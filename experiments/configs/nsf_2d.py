"""Neural spline flow (Durkan et al. 2019) on the 2-D toy densities.

6 rational-quadratic spline couplings (8 bins on [-4, 4], identity tails) with alternating
masks and 2x128 MLP conditioners: fewer parameters than `realnvp_2d`'s 8 affine couplings
(118k against 136k). Launch: ``jgen train nsf_2d:moons``; results in docs/flows.md.
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

_base = shared_config_module("realnvp_2d")
ARGS = _base.ARGS


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = _base.get_config(arg, smoke)
    c.name = c.name.replace("realnvp_2d", "nsf_2d")
    c.model = ConfigDict(
        dict(kind="nsf", num_layers=6, hidden_dims=(128, 128), num_bins=8, bound=4.0)
    )
    if smoke:
        c.model.update(num_layers=2, hidden_dims=(8,), num_bins=3)
    return c
