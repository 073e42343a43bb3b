"""Neural spline flow (Durkan et al. 2019) on scikit-learn's 8x8 digits (17 grey levels).

Uniform dequantisation and logit pre-processing (alpha = 0.05, as `realnvp_digits`), then the
64 pixels as one vector through 4 spline couplings ('half' masks: first/second 32 pixels;
4 bins on [-6, 6]) with 1x32 MLP conditioners: 50.5k parameters, fewer than
`realnvp_digits`' 55.0k. Reported in bits/dim (docs/flows.md).
Launch: ``jgen train nsf_digits``.
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

_base = shared_config_module("realnvp_digits")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = _base.get_config(arg, smoke)
    c.name = "nsf_digits"
    c.model = ConfigDict(
        dict(kind="nsf", num_layers=4, hidden_dims=(32,), mask="half", num_bins=4, bound=6.0,
             logit_alpha=0.05)
    )  # fmt: skip
    if smoke:
        c.model.update(num_layers=2, hidden_dims=(8,), num_bins=3)
    return c
