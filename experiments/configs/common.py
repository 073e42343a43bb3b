"""What the config modules share, written once: the smoke variant's settings.

``smoke(c, batch_size=..., eval_batch_size=..., n_train=..., n_test=...)`` gives a config the
smoke loop (`SMOKE_TRAIN`: 3 steps, metrics every step, an evaluation and a checkpoint at step
2, no warm-up); a config shrinks its own model on top. ``tests/test_experiments.py`` runs every
smoke variant. (The implementation is `jgen.config.smoke_variant`, so that family helpers
inside jgen, e.g. `jgen.vae.experiment.latent_variable_config`, use the same settings.)
"""

from jgen.config import SMOKE_TRAIN
from jgen.config import smoke_variant as smoke

__all__ = ["SMOKE_TRAIN", "smoke"]
