"""Glow (Kingma & Dhariwal 2018) on MNIST-5k (28x28, 256 levels), in bits/dim.

The data, dequantisation, logit pre-processing (α = 0.05) and optimiser of `realnvp_mnist5k`;
the flow is `jgen.bijectors.glow`: 2 levels (28 = 7 · 2², so two squeezes: 14x14x4, factor out
half, 7x7x8), 8 steps per level of ActNorm → invertible 1x1 convolution (LU) → affine channel
coupling with a conv-ResNet conditioner (32 channels, 1 block). Launch: ``jgen train
glow_mnist5k``; ``jgen sample`` draws at temperature 1. Published full-MNIST context (not the
same data, a far larger model): Glow 1.05 bits/dim.
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

realnvp = shared_config_module("realnvp_mnist5k")


def get_config(arg: str | None = None, smoke: bool = False):
    c = realnvp.get_config(arg, smoke)
    c.name = "glow_mnist5k"
    c.model = ConfigDict(
        dict(kind="glow", num_levels=2, num_steps=8, channels=32, num_blocks=1, additive=False,
             logit_alpha=0.05)
    )  # fmt: skip
    if smoke:
        c.model.update(num_levels=1, num_steps=1, channels=4)
    return c
