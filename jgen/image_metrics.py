"""Sample quality of image models from a small classifier: Fréchet distance and class coverage.

Used by every family's image samples (GANs, flows, CNFs, flow matching, VAEs, MADE). For a data
set with a classifier (`CLASSIFIERS`: the 8x8 ``digits``; ``mnist5k``, also used for full
``mnist`` samples, which have the same 28x28 0..255 format), `image_classifier` trains an MLP
once per process on the data set's training split (full-batch AdamW from a fixed key:
deterministic, so every run and every family is measured by the same classifier) and
`image_sample_metrics` reports, on a set of samples in the data's levels:

* ``frechet_distance``: ‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2 (C₁^½ C₂ C₁^½)^½) between Gaussian fits of
  the classifier's penultimate features of the samples and of the test split (as FID, with a
  small in-domain network instead of Inception);
* ``classes_covered``: classes predicted for at least half their fair share (1/20) of the samples;
* ``class_reverse_kl``: KL of the predicted-class histogram to uniform;
* ``intended_class_accuracy``: with labels (conditional models), the share classified as the
  intended class.

Any family's samples: ``jgen sample --workdir RUN --num 2500`` writes ``RUN/samples.npy`` in the
data's levels, and ``python -m jgen.image_metrics RUN/samples.npy --dataset mnist5k`` prints
these metrics as one JSON line.

Training cost (measured on this project's 2-core CPU, under load: see docs/images.md): digits
(MLP 64 → 128 → 32 → 10, 300 steps on 1497 images) about a second; mnist5k (MLP 784 → 128 → 64
→ 10, 200 full-batch steps on 4000 images) a few seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgen.data import load_dataset
from jgen.nets import MLP

__all__ = [
    "CLASSIFIERS",
    "ClassifierSpec",
    "DigitsClassifier",
    "ImageClassifier",
    "digits_classifier",
    "digits_sample_metrics",
    "frechet_distance",
    "has_image_classifier",
    "image_classifier",
    "image_sample_metrics",
    "kl_to_uniform",
]


def kl_to_uniform(counts: np.ndarray) -> float:
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


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """The classifier of one data set: ReLU MLP ``hidden`` → ``features`` (the Fréchet
    features) → 10 logits on levels / (num_levels − 1), trained ``steps`` full-batch steps."""

    dataset: str
    num_levels: int
    hidden: tuple[int, ...]
    features: int
    steps: int


CLASSIFIERS = {
    "digits": ClassifierSpec("digits", 17, (128,), 32, 300),
    "mnist5k": ClassifierSpec("mnist5k", 256, (128,), 64, 200),
}
# Data sets measured with another one's classifier (same image format).
_CLASSIFIER_OF = {"digits": "digits", "mnist5k": "mnist5k", "mnist": "mnist5k"}


@dataclasses.dataclass(frozen=True)
class ImageClassifier:
    """A trained classifier: ``features(images)`` (B, F), ``logits``, ``predict(images)`` (B,).

    Images are the data's levels, shape (B, H, W, C). ``test_accuracy`` is measured on the
    data set's fixed test split.
    """

    spec: ClassifierSpec
    feature_params: dict
    head_params: dict
    test_accuracy: float

    def features(self, images):
        x = jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1)
        x = x / (self.spec.num_levels - 1)
        return jax.nn.relu(_feature_net(self.spec).apply({"params": self.feature_params}, x))

    def logits(self, images):
        return _HEAD.apply({"params": self.head_params}, self.features(images))

    def predict(self, images):
        return jnp.argmax(self.logits(images), axis=-1)


DigitsClassifier = ImageClassifier  # the name of the 8x8 digits' classifier before mnist5k
_HEAD = MLP((), 10)


def _feature_net(spec: ClassifierSpec) -> MLP:
    return MLP(spec.hidden, spec.features, activation=jax.nn.relu)


def _spec_of(dataset: str) -> ClassifierSpec:
    if dataset not in _CLASSIFIER_OF:
        raise ValueError(
            f"no image classifier for dataset {dataset!r}; known: {sorted(_CLASSIFIER_OF)}"
        )
    return CLASSIFIERS[_CLASSIFIER_OF[dataset]]


def image_classifier(dataset: str = "digits") -> ImageClassifier:
    """The classifier for ``dataset``'s images, trained once per process (deterministic)."""
    return _trained_classifier(_spec_of(dataset))


@functools.cache
def _trained_classifier(spec: ClassifierSpec) -> ImageClassifier:
    data = load_dataset(spec.dataset)
    x = jnp.asarray(data.train.reshape(len(data.train), -1), jnp.float32) / (spec.num_levels - 1)
    y = jnp.asarray(data.train_labels)
    net = _feature_net(spec)
    key_f, key_h = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "features": net.init(key_f, x[:1])["params"],
        "head": _HEAD.init(key_h, jnp.zeros((1, spec.features)))["params"],
    }
    tx = optax.adamw(3e-3, weight_decay=1e-3)

    def loss(p):
        h = jax.nn.relu(net.apply({"params": p["features"]}, x))
        logits = _HEAD.apply({"params": p["head"]}, h)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def step(carry, _):
        p, opt_state = carry
        grads = jax.grad(loss)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=spec.steps))(
        (params, tx.init(params))
    )
    params = jax.device_get(params)
    classifier = ImageClassifier(spec, params["features"], params["head"], float("nan"))
    accuracy = float(np.mean(np.asarray(classifier.predict(data.test)) == data.test_labels))
    return dataclasses.replace(classifier, test_accuracy=accuracy)


def digits_classifier() -> ImageClassifier:
    """The 8x8 digits' classifier (`image_classifier('digits')`)."""
    return image_classifier("digits")


def has_image_classifier(dataset: str) -> bool:
    """Whether `image_sample_metrics` can measure samples of ``dataset``."""
    return dataset in _CLASSIFIER_OF


def image_sample_metrics(
    samples: np.ndarray,
    dataset: str = "digits",
    labels: np.ndarray | None = None,
    *,
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """The metrics of the module docstring for ``samples`` (levels, shape (B, H, W, C)) against
    ``reference`` (default: the test split of ``dataset``)."""
    classifier = image_classifier(dataset)
    if reference is None:
        reference = load_dataset(dataset).test
    samples = np.asarray(samples)
    predicted = np.asarray(classifier.predict(samples))
    counts = np.bincount(predicted, minlength=10)
    share = counts / len(predicted)
    metrics = {
        "frechet_distance": frechet_distance(
            np.asarray(classifier.features(samples)), np.asarray(classifier.features(reference))
        ),
        "classes_covered": int(np.sum(share >= 0.05)),
        "class_reverse_kl": kl_to_uniform(counts),
    }
    if labels is not None:
        metrics["intended_class_accuracy"] = float(np.mean(predicted == np.asarray(labels)))
    return metrics


def digits_sample_metrics(
    samples: np.ndarray, labels: np.ndarray | None = None, *, reference: np.ndarray | None = None
) -> dict[str, float]:
    """`image_sample_metrics` on the 8x8 digits."""
    return image_sample_metrics(samples, "digits", labels, reference=reference)


def main(argv: list[str] | None = None) -> int:
    """``python -m jgen.image_metrics SAMPLES.npy --dataset NAME``: the metrics as JSON."""
    parser = argparse.ArgumentParser(prog="python -m jgen.image_metrics", description=main.__doc__)
    parser.add_argument("samples", help=".npy file of samples in the data's levels (N, H, W, C)")
    parser.add_argument("--dataset", default="mnist5k", choices=sorted(_CLASSIFIER_OF))
    args = parser.parse_args(argv)
    samples = np.load(args.samples)
    expected = load_dataset(_spec_of(args.dataset).dataset).event_shape
    if samples.ndim != 4 or samples.shape[1:] != expected:
        parser.error(f"samples must have shape (N, *{expected}), got {samples.shape}")
    metrics = image_sample_metrics(samples, args.dataset)
    metrics["num_samples"] = len(samples)
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
