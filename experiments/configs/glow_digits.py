"""Glow (Kingma & Dhariwal 2018) on scikit-learn's 8x8 digits (17 grey levels).

Uniform dequantisation and logit pre-processing (alpha = 0.05, as `realnvp_digits`), then 2
levels (squeeze to 4x4x4, 4 steps of ActNorm → 1x1 conv (LU) → affine channel coupling,
factor out 2 channels; squeeze to 2x2x8, 4 steps) with small conv-ResNet conditioners (16
channels, 1 block): 49.3k parameters, fewer than `realnvp_digits`' 55.0k. Reported in
bits/dim (docs/flows.md). Launch: ``jgen train glow_digits``; ``jgen sample`` draws at
temperature 1 (``Flow.sample(..., temperature=T)`` in Python).
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

_base = shared_config_module("realnvp_digits")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = _base.get_config(arg, smoke)
    c.name = "glow_digits"
    c.model = ConfigDict(
        dict(kind="glow", num_levels=2, num_steps=4, channels=16, num_blocks=1, additive=False,
             logit_alpha=0.05)
    )  # fmt: skip
    if smoke:
        c.model.update(num_levels=1, num_steps=1, channels=8)
    return c
