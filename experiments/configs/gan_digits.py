"""A GAN on scikit-learn's 8x8 digits (17 levels, dequantised to [-1, 1]).

MLP generator (latent 32, 2x256 ReLU, tanh output) and MLP discriminator (2x256 leaky ReLU),
non-saturating loss, batch 64, 3000 steps, cosine decay, Adam b1 = 0.5.

Unconditional (this config): R1 penalty on real data (λ = 1, Mescheder et al. 2018) instead of
spectral normalisation, Adam lr 2e-4 for both players and an EMA of the weights (0.999) for
evaluation. The former recipe (spectral norm, lr 1e-3, EMA 0.99) collapsed to 3 of the 10
classes (Fréchet distance 191); this one covers 9-10 (Fréchet distance 19-23, see
docs/images.md and docs/records/gan_digits_recipe.json). Conditional (``cgan_digits``):
projection discriminator with spectral normalisation, lr 1e-3, EMA 0.99, which already
covers every class (with R1 it did worse: 9 classes, Fréchet distance 33).

``model.kind=conv`` switches to the DCGAN-style networks (``model.channels``), about ten times
the compute per step on a CPU. Launch: ``jgen train gan_digits``. ``gan_metrics.json`` holds the
digit-classifier metrics of `jgen.gan.metrics` on 2500 samples (Fréchet distance to the test
split, classes covered).
"""

from ml_collections import ConfigDict

from experiments.configs import common


def get_config(
    arg: str | None = None, smoke: bool = False, conditional: bool = False
) -> ConfigDict:
    c = ConfigDict()
    c.name = "cgan_digits" if conditional else "gan_digits"
    c.family = "gan"
    c.data = ConfigDict(dict(name="digits", seed=0))
    c.model = ConfigDict(
        dict(
            kind="mlp", latent_dim=32, g_hidden=(256, 256), d_hidden=(256, 256), channels=32,
            loss="non_saturating", d_steps=1,
            penalty="none" if conditional else "r1", penalty_weight=1.0,
            spectral_norm=conditional, conditional=conditional,
            eval_samples=2500, digit_metrics=True,
        )
    )  # fmt: skip
    learning_rate = 1e-3 if conditional else 2e-4
    player = dict(learning_rate=learning_rate, schedule="cosine", b1=0.5, b2=0.999)
    c.optim = ConfigDict(dict(generator=dict(player), discriminator=dict(player)))
    c.train = ConfigDict(
        dict(
            steps=3000, batch_size=64, seed=0, log_every=250, eval_every=0, eval_batch_size=300,
            checkpoint_every=1000, progress=True, ema_decay=0.99 if conditional else 0.999,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(
            g_hidden=(8,), d_hidden=(8,), channels=4, latent_dim=4, eval_samples=100,
            digit_metrics=False,
        )  # fmt: skip
        common.smoke(c, batch_size=16, eval_batch_size=100)
    return c
