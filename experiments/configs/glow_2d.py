"""Glow's step on the 2-D toy densities (Kingma & Dhariwal 2018, on vectors).

8 steps of ActNorm → invertible linear map (LU, `LULinear`) → affine coupling with 2x128 MLP
conditioners (`jgen.bijectors.glow_vector`): `realnvp_2d` with a learned mixing of the two
coordinates before every coupling (136,344 parameters against its 136,216). Launch:
``jgen train glow_2d:moons``; results in docs/flows.md.
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

_base = shared_config_module("realnvp_2d")
ARGS = _base.ARGS


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = _base.get_config(arg, smoke)
    c.name = c.name.replace("realnvp_2d", "glow_2d")
    c.model = ConfigDict(dict(kind="glow", num_steps=8, hidden_dims=(128, 128)))
    if smoke:
        c.model.update(num_steps=2, hidden_dims=(8,))
    return c
