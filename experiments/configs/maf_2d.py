"""Masked autoregressive flow (Papamakarios et al. 2017) on the 2-D toy densities.

7 MAF layers (affine transformer, MADE conditioners with 2x128 hidden units, order reversed
between layers): fewer parameters than `realnvp_2d` (122k against 136k). Launch:
``jgen train maf_2d:moons``; results in docs/flows.md.
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

_base = shared_config_module("realnvp_2d")
ARGS = _base.ARGS


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = _base.get_config(arg, smoke)
    c.name = c.name.replace("realnvp_2d", "maf_2d")
    c.model = ConfigDict(
        dict(kind="maf", num_layers=7, hidden_dims=(128, 128), transformer="affine")
    )
    if smoke:
        c.model.update(num_layers=2, hidden_dims=(8,))
    return c
