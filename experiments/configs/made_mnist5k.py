"""MADE (Germain et al. 2015) on MNIST-5k (28x28, 256 levels): exact discrete bits/dim.

784 categoricals over 256 levels in raster order, scalar inputs x / 255, one hidden layer of 128
units, no direct connection (at 256 levels it would be 784 x 784 x 256 = 157M weights). The
256-way output head alone is 128 x 784 x 256 = 25.7M weights: wider networks (the digits
config's 1024) would need 205M, so this is a small baseline, not MADE's MNIST setting
(binarised pixels). Sampling computes only the current pixel's 256 logits per pass
(`MADE.pixel_logits`). Launch: ``jgen train made_mnist5k``.
"""

from jgen.config import shared_config_module

shared = shared_config_module("_mnist5k")


def get_config(arg: str | None = None, smoke: bool = False):
    c = shared.ConfigDict()
    c.name, c.family, c.data = "made_mnist5k", "autoregressive", shared.data(smoke)
    c.model = shared.ConfigDict(dict(kind="made", hidden_dims=(128,), one_hot=False, direct=False))
    c.optim = shared.optim(smoke, learning_rate=1e-3, clip_norm=10.0, optimizer="adamw",
                           weight_decay=0.1)  # fmt: skip
    c.train = shared.train(steps=10_000, batch_size=64, eval_every=2500, smoke=smoke)
    if smoke:
        c.model.hidden_dims = (4,)
    return c
