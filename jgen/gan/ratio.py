"""Density-ratio estimation by classification (the notes' eq. 1.6-1.7).

Label samples of p with y = 1 and samples of q with y = 0 and train a probabilistic classifier
D(x) = σ(l(x)) by logistic regression. Its optimum is the class posterior

    D*(x) = n_p p(x) / (n_p p(x) + n_q q(x)),   so   l*(x) = log p(x)/q(x) + log(n_p/n_q),

and the ratio follows from the logit with the class-prior correction for unequal sample sizes:

    log r(x) = log p(x)/q(x) = l(x) + log(n_q / n_p).

`DensityRatioEstimator` is an ordinary single-player objective of `jgen.train`, trained with
`fit` on the labelled data set that `ratio_dataset` builds; `log_ratio` then evaluates log r.
A GAN's discriminator is the same classifier with q the generator's distribution (n_p = n_q).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.data import Dataset
from jgen.typing import Array, PRNGKey
from jgen.validation import check_int

__all__ = ["DensityRatioEstimator", "ratio_dataset"]


def ratio_dataset(
    x_p: np.ndarray, x_q: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """Samples of p (label 1) and q (label 0), shuffled, as a `Dataset` with a held-out test
    split (the same share of each class in both splits)."""
    x_p, x_q = np.asarray(x_p, np.float32), np.asarray(x_q, np.float32)
    if x_p.shape[1:] != x_q.shape[1:] or len(x_p) < 2 or len(x_q) < 2:
        raise ValueError(
            f"x_p and x_q need the same event shape and >= 2 samples each, got {x_p.shape} and "
            f"{x_q.shape}"
        )
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    parts = []
    for x, label in ((x_p, 1), (x_q, 0)):
        x = rng.permutation(x)
        n_test = max(1, round(test_fraction * len(x)))
        parts.append((x[n_test:], x[:n_test], label))
    train = np.concatenate([p[0] for p in parts])
    test = np.concatenate([p[1] for p in parts])
    train_labels = np.concatenate([np.full(len(p[0]), p[2], np.int32) for p in parts])
    test_labels = np.concatenate([np.full(len(p[1]), p[2], np.int32) for p in parts])
    order, test_order = rng.permutation(len(train)), rng.permutation(len(test))
    return Dataset(
        name="density_ratio",
        train=train[order],
        test=test[test_order],
        train_labels=train_labels[order],
        test_labels=test_labels[test_order],
    )


@dataclasses.dataclass(frozen=True)
class DensityRatioEstimator:
    """log r(x) = log p(x)/q(x) from a classifier of p-samples (label 1) vs q-samples (label 0).

    network: a Flax module mapping a batch of x to one logit per example (shape (B,) or (B, 1)).
    num_p, num_q: how many samples of p and q the classifier is trained on (their ratio is the
        class prior: log r = l + log(num_q / num_p)).

    As an objective: batches are ``{'x': x, 'label': y}``; the loss is the mean binary
    cross-entropy; `evaluate` reports per-example cross-entropy and accuracy.
    """

    network: nn.Module
    num_p: int
    num_q: int

    def __post_init__(self):
        check_int(self.num_p, "num_p", minimum=1, owner="DensityRatioEstimator")
        check_int(self.num_q, "num_q", minimum=1, owner="DensityRatioEstimator")

    @property
    def prior_correction(self) -> float:
        """log(num_q / num_p)."""
        return math.log(self.num_q / self.num_p)

    def init(self, key: PRNGKey, batch) -> tuple[dict, dict]:
        variables = dict(self.network.init(key, jnp.asarray(batch["x"], jnp.float32)))
        return variables.pop("params"), variables

    def logit(self, params, x: Array, model_state=None) -> Array:
        """The classifier's logit l(x) = log D(x)/(1 − D(x)), one per example."""
        out = self.network.apply({"params": params, **(model_state or {})}, x)
        return out.reshape(x.shape[0])

    def log_ratio(self, params, x: Array, model_state=None) -> Array:
        """log p(x)/q(x) = l(x) + log(num_q / num_p)."""
        return self.logit(params, x, model_state) + self.prior_correction

    def _cross_entropy(self, params, model_state, batch) -> tuple[Array, Array]:
        logits = self.logit(params, batch["x"], model_state)
        y = batch["label"].astype(logits.dtype)
        # −[y log σ(l) + (1 − y) log σ(−l)]
        ce = -(y * jax.nn.log_sigmoid(logits) + (1 - y) * jax.nn.log_sigmoid(-logits))
        return ce, logits

    def loss(self, params, model_state, batch, key):
        del key
        ce, logits = self._cross_entropy(params, model_state, batch)
        accuracy = jnp.mean((logits > 0) == (batch["label"] == 1))
        return jnp.mean(ce), ({"accuracy": accuracy}, model_state)

    def evaluate(self, params, model_state, batch, key):
        del key
        ce, logits = self._cross_entropy(params, model_state, batch)
        correct = ((logits > 0) == (batch["label"] == 1)).astype(ce.dtype)
        return {"cross_entropy": ce, "accuracy": correct}
