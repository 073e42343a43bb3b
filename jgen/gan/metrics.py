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

Images: the classifier metrics (Fréchet distance, classes covered, intended-class accuracy)
live in `jgen.image_metrics`, shared by every family; they are re-exported here.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jgen.image_metrics import (
    DigitsClassifier,
    digits_classifier,
    digits_sample_metrics,
    frechet_distance,
    kl_to_uniform,
)

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
        "reverse_kl": kl_to_uniform(counts),
    }
