"""The GAN as a two-player objective of the shared trainer (`jgen.train`).

Players ``('discriminator', 'generator')``; the schedule is ``d_steps`` discriminator steps,
then one generator step (``schedule = ('discriminator',) * d_steps + ('generator',)``), so a
trainer step updates exactly one of them (see `jgen.train.step`). Losses are those of
`jgen.gan.losses`. ``params`` and ``model_state`` are dicts keyed by player; ``model_state``
holds each network's other Flax collections (spectral normalisation's power-iteration vectors).

Data: continuous data are used as they are. Discrete data with K levels (images) are
dequantised, y = (x + u)/K with u ~ U[0, 1), and mapped to [−1, 1) by 2y − 1, the range of a
tanh generator; `to_levels` maps samples back to the K levels.

Conditional GANs (``num_classes``): both networks take the label; fake examples of a train step
use the labels of the real batch, so both sides see the same class mix.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.distributions import uniform_dequantize
from jgen.gan import losses
from jgen.typing import Array, PRNGKey
from jgen.validation import check_int

__all__ = ["GAN", "to_levels"]

DISCRIMINATOR, GENERATOR = "discriminator", "generator"


def to_levels(x: Array, num_levels: int) -> Array:
    """Map samples in [−1, 1] to the integer levels 0..K−1 of the data (as floats)."""
    return jnp.clip(jnp.floor((x + 1.0) / 2.0 * num_levels), 0, num_levels - 1)


@functools.lru_cache(maxsize=8)
def _compiled_init(gan: GAN):
    return jax.jit(gan._init)


@dataclasses.dataclass(frozen=True)
class GAN:
    """A (conditional) GAN objective with minimax, non-saturating or Wasserstein losses.

    generator:      Flax module ``(z, label) -> x`` (see `jgen.gan.nets`).
    discriminator:  Flax module ``(x, label, update_stats=...) -> logit (B,)``.
    latent_dim:     size of z ~ N(0, I).
    loss:           'minimax' (eq. 1.8), 'non_saturating' or 'wasserstein'.
    d_steps:        discriminator steps per generator step (k).
    penalty:        'none', 'r1' (λ/2 E‖∇D(x)‖² on real data) or 'wgan_gp'.
    penalty_weight: λ.
    num_classes:    classes of a conditional GAN (labels in ``batch['label']``), or None.
    num_levels:     K for discrete data (dequantised to [−1, 1)), or None for continuous data.
    sample_metrics: optional ``(samples, labels) -> {name: (B,) array}`` added to `evaluate`
                    (samples in data space: levels for discrete data), e.g. the share of
                    high-quality samples on the 2-D mixtures or the intended-class accuracy.
    """

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    loss_kind: str = "non_saturating"
    d_steps: int = 1
    penalty: str = "none"
    penalty_weight: float = 10.0
    num_classes: int | None = None
    num_levels: int | None = None
    sample_metrics: Callable[[Array, Array | None], dict[str, Array]] | None = None

    players = (DISCRIMINATOR, GENERATOR)

    def __post_init__(self):
        check_int(self.latent_dim, "latent_dim", minimum=1, owner="GAN")
        check_int(self.d_steps, "d_steps", minimum=1, owner="GAN")
        if self.loss_kind not in losses.GAN_LOSSES:
            raise ValueError(
                f"GAN: loss must be one of {losses.GAN_LOSSES}, got {self.loss_kind!r}"
            )
        if self.penalty not in losses.PENALTIES:
            raise ValueError(
                f"GAN: penalty must be one of {losses.PENALTIES}, got {self.penalty!r}"
            )
        if self.penalty_weight < 0:
            raise ValueError(f"GAN: penalty_weight must be >= 0, got {self.penalty_weight}")

    @property
    def schedule(self) -> tuple[str, ...]:
        return (DISCRIMINATOR,) * self.d_steps + (GENERATOR,)

    # -- pieces ---------------------------------------------------------------------------------

    def _real(self, batch, key: PRNGKey) -> Array:
        x = batch["x"]
        if self.num_levels is None:
            return x.astype(jnp.result_type(float))
        return 2.0 * uniform_dequantize(key, x, self.num_levels) - 1.0

    def _labels(self, batch) -> Array | None:
        return None if self.num_classes is None else batch["label"]

    def generate(self, params, model_state, z: Array, labels: Array | None = None) -> Array:
        """G(z, y) in model space ([−1, 1] for discrete data)."""
        variables = {"params": params[GENERATOR], **model_state[GENERATOR]}
        return self.generator.apply(variables, z, labels)

    def discriminate(self, params, model_state, x, labels=None, *, update_stats=False):
        """Logits l(x, y) and the discriminator's model state (advanced if ``update_stats``)."""
        variables = {"params": params[DISCRIMINATOR], **model_state[DISCRIMINATOR]}
        if update_stats and model_state[DISCRIMINATOR]:
            logits, updates = self.discriminator.apply(
                variables, x, labels, update_stats=True, mutable=list(model_state[DISCRIMINATOR])
            )
            return logits, {**model_state, DISCRIMINATOR: {**model_state[DISCRIMINATOR], **updates}}
        return self.discriminator.apply(variables, x, labels), model_state

    def sample(self, params, model_state, key: PRNGKey, num: int, labels=None) -> Array:
        """``num`` samples in data space (integer levels as floats for discrete data)."""
        z = jax.random.normal(key, (num, self.latent_dim))
        x = self.generate(params, model_state, z, labels)
        return x if self.num_levels is None else to_levels(x, self.num_levels)

    # -- the objective --------------------------------------------------------------------------

    def init(self, key: PRNGKey, batch):
        # One compiled initialisation: eager Flax init dispatches (and compiles) op by op, which
        # is slow for spectral normalisation's power iteration.
        return _compiled_init(self)(key, batch["x"], self._labels(batch))

    def _init(self, key: PRNGKey, x: Array, labels: Array | None):
        x = self._real({"x": x}, key)
        g_key, d_key = jax.random.split(key)
        z = jnp.zeros((x.shape[0], self.latent_dim), x.dtype)
        g_vars = dict(self.generator.init(g_key, z, labels))
        d_vars = dict(self.discriminator.init(d_key, x, labels))
        params = {GENERATOR: g_vars.pop("params"), DISCRIMINATOR: d_vars.pop("params")}
        return params, {GENERATOR: g_vars, DISCRIMINATOR: d_vars}

    def _penalty(self, params, model_state, real, fake, labels, key) -> Array:
        if self.penalty == "none":
            return jnp.zeros((), real.dtype)

        def logit_fn(x):
            return self.discriminate(params, model_state, x, labels)[0]

        if self.penalty == "r1":
            return losses.r1_penalty(logit_fn, real)
        return losses.gradient_penalty(logit_fn, real, fake, key)

    def loss(self, params, model_state, batch, key, player: str):
        data_key, z_key, penalty_key = jax.random.split(key, 3)
        real = self._real(batch, data_key)
        labels = self._labels(batch)
        z = jax.random.normal(z_key, (real.shape[0], self.latent_dim), real.dtype)
        fake = self.generate(params, model_state, z, labels)
        if player == GENERATOR:
            fake_logits, _ = self.discriminate(params, model_state, fake, labels)
            value = losses.generator_loss(fake_logits, self.loss_kind)
            return value, ({"fake_prob": jnp.mean(jax.nn.sigmoid(fake_logits))}, model_state)
        if player != DISCRIMINATOR:
            raise ValueError(f"GAN has players {self.players}, got {player!r}")
        fake = jax.lax.stop_gradient(fake)
        both = jnp.concatenate([real, fake])
        both_labels = None if labels is None else jnp.concatenate([labels, labels])
        logits, new_state = self.discriminate(
            params, model_state, both, both_labels, update_stats=True
        )
        real_logits, fake_logits = jnp.split(logits, 2)
        penalty = self._penalty(params, model_state, real, fake, labels, penalty_key)
        value = losses.discriminator_loss(real_logits, fake_logits, self.loss_kind)
        metrics = {
            "value": losses.minimax_value(real_logits, fake_logits),
            "real_prob": jnp.mean(jax.nn.sigmoid(real_logits)),
            "fake_prob": jnp.mean(jax.nn.sigmoid(fake_logits)),
            "penalty": penalty,
        }
        return value + self.penalty_weight * penalty, (metrics, new_state)

    def evaluate(self, params, model_state, batch, key):
        """Per example of the test batch, with one generated sample per example (of the same
        class for a conditional GAN): the value terms log σ(l(x_i)) + log σ(−l(x̃_i)) (their mean
        estimates eq. 1.8's V), D's probabilities, and ``sample_metrics``."""
        data_key, z_key = jax.random.split(key)
        real = self._real(batch, data_key)
        labels = self._labels(batch)
        z = jax.random.normal(z_key, (real.shape[0], self.latent_dim), real.dtype)
        fake = self.generate(params, model_state, z, labels)
        real_logits, _ = self.discriminate(params, model_state, real, labels)
        fake_logits, _ = self.discriminate(params, model_state, fake, labels)
        metrics = {
            "value": jax.nn.log_sigmoid(real_logits) + jax.nn.log_sigmoid(-fake_logits),
            "real_prob": jax.nn.sigmoid(real_logits),
            "fake_prob": jax.nn.sigmoid(fake_logits),
        }
        if self.sample_metrics is not None:
            samples = fake if self.num_levels is None else to_levels(fake, self.num_levels)
            metrics.update(self.sample_metrics(samples, labels))
        return metrics
