"""Multi-scale RealNVP (Dinh et al. 2017) on scikit-learn's 8x8 digits (17 grey levels).

Uniform dequantisation, logit pre-processing (alpha = 0.05) with its log-det counted, then
checkerboard and channel couplings with small conv-ResNet conditioners, squeeze and factor-out.
Reported in bits/dim on the fixed test split (README results table). With only 1497 training
images, wider conditioners (32-64 channels, 2 blocks) overfit within ~500 steps (test bits/dim
rising while train bits/dim falls); this small setting keeps improving to 2000 steps.
Launch: ``jgen train realnvp_digits``; the baseline is ``jgen train gaussian_digits``.
"""

from ml_collections import ConfigDict

from experiments.configs import common


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = ConfigDict()
    c.name = "realnvp_digits"
    c.family = "flow"
    c.data = ConfigDict(dict(name="digits", seed=0))
    c.model = ConfigDict(
        dict(
            kind="multiscale_realnvp", num_scales=2, channels=16, num_blocks=1, actnorm=True,
            logit_alpha=0.05,
        )
    )  # fmt: skip
    c.optim = ConfigDict(
        dict(learning_rate=1e-3, schedule="cosine", warmup_steps=200, clip_norm=10.0,
             optimizer="adamw", weight_decay=1e-4)
    )  # fmt: skip
    c.train = ConfigDict(
        dict(
            steps=2000, batch_size=64, seed=0, log_every=250, eval_every=500,
            eval_batch_size=300, checkpoint_every=1000, progress=True,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(num_scales=1, channels=8, num_blocks=1)
        common.smoke(c, batch_size=16, eval_batch_size=100)
    return c
