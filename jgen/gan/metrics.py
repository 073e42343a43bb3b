"""Sample-quality metrics: mode coverage on the 2-D mixtures, digit classifier statistics.

Mixtures (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018), on a set of samples
(2500 in those papers):

* a sample is **high quality** if it lies within 3 standard deviations (Euclidean distance
  3σ) of its nearest mode centre;
* a mode is **covered** if at least ``min_count`` high-quality samples have it as their nearest
  centre (VEEGAN: at least one);
* **reverse KL**: KL(q̂ ‖ u) = Σ_k q̂_k log(K q̂_k), with q̂ the histogram of the high-quality
  samples over the K modes and u the data's uniform mode distribution (inf if there is no
  high-quality sample).

Digits: `digits_classifier` is a tiny MLP trained once (deterministically) on the training
split of the 8x8 digits; its penultimate features give the Fréchet distance
‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2 (C₁^½ C₂ C₁^½)^½) between Gaussian fits of generated and test
images, its predictions give the class coverage and the accuracy on the intended class.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgen.data import load_dataset
from jgen.nets import MLP

__all__ = [
    "DigitsClassifier",
    "digits_classifier",
    "digits_sample_metrics",
    "frechet_distance",
    "high_quality",
    "mode_statistics",
]


def _nearest(samples, centres):
    d2 = jnp.sum((samples[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
    return jnp.argmin(d2, axis=1), jnp.sqrt(jnp.min(d2, axis=1))


def high_quality(samples, centres, std: float):
    """Per sample: 1.0 if within 3σ of its nearest centre, else 0.0 (works under jit)."""
    _, distance = _nearest(samples, jnp.asarray(centres, samples.dtype))
    return (distance <= 3.0 * std).astype(samples.dtype)


def mode_statistics(
    samples: np.ndarray, centres: np.ndarray, std: float, *, min_count: int = 1
) -> dict[str, float]:
    """``modes`` covered, ``high_quality`` share and ``reverse_kl`` (see the module docstring)."""
    samples = np.asarray(samples, np.float64)
    centres = np.asarray(centres, np.float64)
    d2 = np.sum((samples[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
    nearest, distance = np.argmin(d2, axis=1), np.sqrt(np.min(d2, axis=1))
    good = distance <= 3.0 * std
    counts = np.bincount(nearest[good], minlength=len(centres))
    return {
        "modes": int(np.sum(counts >= min_count)),
        "high_quality": float(np.mean(good)),
        "reverse_kl": _kl_to_uniform(counts),
    }


def _kl_to_uniform(counts: np.ndarray) -> float:
    """KL(q ‖ uniform) of the histogram ``counts`` (q = counts / total; inf for no counts)."""
    if counts.sum() == 0:
        return float("inf")
    q = counts / counts.sum()
    nonzero = q > 0
    return float(np.sum(q[nonzero] * np.log(len(counts) * q[nonzero])))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (rows are examples)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(
        np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    )


_FEATURES = 32
_NUM_LEVELS = 17


@dataclasses.dataclass(frozen=True)
class DigitsClassifier:
    """A trained digit classifier: ``features(images)`` (B, 32), ``predict(images)`` (B,).

    Images are the data's levels 0..16, shape (B, 8, 8, 1). ``test_accuracy`` is measured on
    the fixed test split.
    """

    feature_params: dict
    head_params: dict
    test_accuracy: float

    def features(self, images):
        x = jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1) / (_NUM_LEVELS - 1)
        return jax.nn.relu(_FEATURE_NET.apply({"params": self.feature_params}, x))

    def logits(self, images):
        return _HEAD.apply({"params": self.head_params}, self.features(images))

    def predict(self, images):
        return jnp.argmax(self.logits(images), axis=-1)


# Features: ReLU(MLP 64 → 128 → 32) of levels / 16; head: a linear 10-way layer.
_FEATURE_NET = MLP((128,), _FEATURES, activation=jax.nn.relu)
_HEAD = MLP((), 10)


@functools.cache
def digits_classifier(steps: int = 300) -> DigitsClassifier:
    """Train the classifier once per process (full-batch Adam, fixed key: deterministic)."""
    data = load_dataset("digits")
    x = jnp.asarray(data.train.reshape(len(data.train), -1), jnp.float32) / (_NUM_LEVELS - 1)
    y = jnp.asarray(data.train_labels)
    key_f, key_h = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "features": _FEATURE_NET.init(key_f, x[:1])["params"],
        "head": _HEAD.init(key_h, jnp.zeros((1, _FEATURES)))["params"],
    }
    tx = optax.adamw(3e-3, weight_decay=1e-3)

    def loss(p):
        h = jax.nn.relu(_FEATURE_NET.apply({"params": p["features"]}, x))
        logits = _HEAD.apply({"params": p["head"]}, h)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def step(carry, _):
        p, opt_state = carry
        grads = jax.grad(loss)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))(
        (params, tx.init(params))
    )
    params = jax.device_get(params)
    classifier = DigitsClassifier(params["features"], params["head"], float("nan"))
    accuracy = float(np.mean(np.asarray(classifier.predict(data.test)) == data.test_labels))
    return dataclasses.replace(classifier, test_accuracy=accuracy)


def digits_sample_metrics(
    samples: np.ndarray, labels: np.ndarray | None = None, *, reference: np.ndarray | None = None
) -> dict[str, float]:
    """Fréchet distance to the test split (or ``reference``) in the classifier's feature space,
    classes covered (predicted for at least half their fair share, 1/20, of the samples), the
    reverse KL of the predicted-class histogram to uniform and, with ``labels``, the accuracy
    of the samples on their intended class."""
    classifier = digits_classifier()
    if reference is None:
        reference = load_dataset("digits").test
    predicted = np.asarray(classifier.predict(samples))
    counts = np.bincount(predicted, minlength=10)
    share = counts / len(predicted)
    metrics = {
        "frechet_distance": frechet_distance(
            np.asarray(classifier.features(samples)), np.asarray(classifier.features(reference))
        ),
        "classes_covered": int(np.sum(share >= 0.05)),
        "class_reverse_kl": _kl_to_uniform(counts),
    }
    if labels is not None:
        metrics["intended_class_accuracy"] = float(np.mean(predicted == np.asarray(labels)))
    return metrics
