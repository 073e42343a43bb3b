"""GANs on the 2-D mixtures: the VEEGAN/PacGAN ring (ring8) and grid (25gaussians), and
FFJORD's 8 Gaussians.

MLP generator (latent 2, 2x128 ReLU) and discriminator (2x128 leaky ReLU), Adam (lr 1e-3 with
cosine decay, b1 = 0.5), batch 512, 10k steps (5000 updates of each player), one
discriminator step per generator step (``model.d_steps``). Precision needs the length: on
ring8 2000 steps cover all 8 modes but only ~3-4% of the samples lie within 3 std of a mode;
10k steps give 91 ± 1% (non-saturating, 5 seeds). No EMA by default: in 2000-step runs an
EMA of 0.999 (``train.ema_decay``) averaged over too much of the run and lost modes (3 vs 8).
``model.loss`` is 'non_saturating' (default) or 'minimax' (eq. 1.8); ``model.penalty='r1'``
adds R1.
Launch: ``jgen train gan_2d:ring8 model.loss=minimax``. At the end, ``gan_metrics.json`` holds
the PacGAN protocol on 2500 samples (modes covered, high-quality share, reverse KL); the README
table averages 5 seeds (``python -m jgen.gan.study --out runs/gan_table``).
"""

from ml_collections import ConfigDict

from experiments.configs import common

ARGS = ("ring8", "25gaussians", "8gaussians")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    dataset = arg or "ring8"
    c = ConfigDict()
    c.name = f"gan_2d:{dataset}"
    c.family = "gan"
    c.data = ConfigDict(dict(name=dataset, n_train=50_000, n_test=10_000, seed=0))
    c.model = ConfigDict(
        dict(
            kind="mlp", latent_dim=2, g_hidden=(128, 128), d_hidden=(128, 128),
            loss="non_saturating", d_steps=1, penalty="none", penalty_weight=0.1,
            spectral_norm=False, conditional=False, eval_samples=2500, d_input_scale=1.0,
        )
    )  # fmt: skip
    player = dict(learning_rate=1e-3, schedule="cosine", b1=0.5, b2=0.999)
    c.optim = ConfigDict(dict(generator=dict(player), discriminator=dict(player)))
    c.train = ConfigDict(
        dict(
            steps=10_000, batch_size=512, seed=0, log_every=500, eval_every=0,
            eval_batch_size=5000, checkpoint_every=5000, progress=True, ema_decay=0.0,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(g_hidden=(8,), d_hidden=(8,), eval_samples=256)
        common.smoke(c, batch_size=32, eval_batch_size=64, n_train=256, n_test=128)
    return c
