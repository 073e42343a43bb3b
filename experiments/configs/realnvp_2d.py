"""RealNVP (Dinh et al. 2017) on the 2-D toy densities.

8 affine couplings with alternating masks and 2x128 MLP conditioners, Adam with cosine decay.
Launch: ``jgen train realnvp_2d:moons`` (any name of ARGS after the colon).
Test NLL (nats) after the default 10k steps is in the README's results table; the learning
test in tests/test_experiments.py asserts a threshold on a shorter run.
"""

from ml_collections import ConfigDict

from experiments.configs import common
from jgen.data import TOY_DATASETS

ARGS = tuple(TOY_DATASETS)


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    dataset = arg or "moons"
    c = ConfigDict()
    c.name = f"realnvp_2d:{dataset}"
    c.family = "flow"
    c.data = ConfigDict(dict(name=dataset, n_train=50_000, n_test=10_000, seed=0))
    c.model = ConfigDict(
        dict(
            kind="realnvp", num_layers=8, hidden_dims=(128, 128), mask="alternating", actnorm=False
        )
    )
    c.optim = ConfigDict(
        dict(learning_rate=1e-3, schedule="cosine", warmup_steps=200, clip_norm=10.0)
    )
    c.train = ConfigDict(
        dict(
            steps=10_000, batch_size=512, seed=0, log_every=250, eval_every=2500,
            eval_batch_size=5000, checkpoint_every=2500, progress=True,
        )
    )  # fmt: skip
    if smoke:
        c.model.update(num_layers=2, hidden_dims=(8,))
        common.smoke(c, batch_size=32, eval_batch_size=64, n_train=256, n_test=128)
    return c
