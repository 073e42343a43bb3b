"""Masked autoregressive flow (Papamakarios et al. 2017) on 8x8 digits (17 grey levels).

Uniform dequantisation and logit pre-processing (alpha = 0.05, as `realnvp_digits`), then the
64 pixels as one vector through 4 MAF layers (affine transformer, MADE conditioners with one
hidden layer of 64 units, order reversed between layers): 50.2k parameters, fewer than
`realnvp_digits`' 55.0k. Reported in bits/dim (docs/flows.md).
Launch: ``jgen train maf_digits``.
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

_base = shared_config_module("realnvp_digits")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = _base.get_config(arg, smoke)
    c.name = "maf_digits"
    c.model = ConfigDict(
        dict(kind="maf", num_layers=4, hidden_dims=(64,), transformer="affine",
             logit_alpha=0.05)
    )  # fmt: skip
    if smoke:
        c.model.update(num_layers=2, hidden_dims=(8,))
    return c
