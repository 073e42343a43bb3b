"""Multi-scale RealNVP (Dinh et al. 2017) on MNIST-5k (28x28, 256 levels), in bits/dim.

Uniform dequantisation, logit pre-processing (α = 0.05, its log-det counted), three scales
(28x28x1 → 14x14x2 → 7x7x4 after the factor-outs): checkerboard couplings, squeeze, channel
couplings, factor-out, with conv-ResNet conditioners (32 channels, 2 blocks) and ActNorm.
Launch: ``jgen train realnvp_mnist5k`` (``data.name=mnist`` for full MNIST from local files).
Published full-MNIST context (not the same data): RealNVP 1.06 bits/dim.
"""

from jgen.config import shared_config_module

shared = shared_config_module("_mnist5k")


def get_config(arg: str | None = None, smoke: bool = False):
    c = shared.ConfigDict()
    c.name, c.family, c.data = "realnvp_mnist5k", "flow", shared.data(smoke)
    c.model = shared.ConfigDict(
        dict(
            kind="multiscale_realnvp", num_scales=3, channels=32, num_blocks=2, actnorm=True,
            logit_alpha=0.05,
        )
    )  # fmt: skip
    c.optim = shared.optim(smoke, learning_rate=1e-3, clip_norm=10.0, optimizer="adamw",
                           weight_decay=1e-4)  # fmt: skip
    c.train = shared.train(steps=20_000, batch_size=64, eval_every=5000, smoke=smoke)
    if smoke:
        c.model.update(num_scales=2, channels=4, num_blocks=1)
    return c
