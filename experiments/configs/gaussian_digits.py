"""Baseline for the digits flows: a diagonal Gaussian in the same logit space.

Same data pipeline as ``realnvp_digits`` (uniform dequantisation, logit pre-processing with its
log-det counted), so its bits/dim are directly comparable. Launch: ``jgen train gaussian_digits``.
"""

from ml_collections import ConfigDict

from experiments.configs import common


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    c = ConfigDict()
    c.name = "gaussian_digits"
    c.family = "flow"
    c.data = ConfigDict(dict(name="digits", seed=0))
    c.model = ConfigDict(dict(kind="diagonal_gaussian", logit_alpha=0.05))
    c.optim = ConfigDict(dict(learning_rate=1e-2, schedule="cosine", warmup_steps=0))
    c.train = ConfigDict(
        dict(
            steps=3000, batch_size=256, seed=0, log_every=200, eval_every=1000,
            eval_batch_size=300, checkpoint_every=1000, progress=True,
        )
    )  # fmt: skip
    if smoke:
        common.smoke(c, batch_size=16, eval_batch_size=100)
    return c
