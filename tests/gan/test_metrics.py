"""Mode statistics, the Fréchet distance and the digit classifier."""

import numpy as np
import pytest

from jgen.data import load_dataset, mixture_modes
from jgen.gan import digits_classifier, digits_sample_metrics, frechet_distance, mode_statistics


def test_mode_statistics_on_known_samples():
    centres, std = mixture_modes("ring8")
    rng = np.random.default_rng(0)
    # 3 modes hit exactly (100, 100, 200 samples), plus 100 far-off samples.
    good = np.concatenate(
        [np.repeat(centres[i : i + 1], n, 0) for i, n in ((0, 100), (1, 100), (2, 200))]
    )
    good = good + 0.5 * std * rng.standard_normal(good.shape)
    far = np.full((100, 2), 10.0)
    stats = mode_statistics(np.concatenate([good, far]), centres, std)
    assert stats["modes"] == 3
    assert stats["high_quality"] == pytest.approx(0.8)
    q = np.array([0.25, 0.25, 0.5])
    assert stats["reverse_kl"] == pytest.approx(np.sum(q * np.log(8 * q)))
    assert mode_statistics(np.concatenate([good, far]), centres, std, min_count=150)["modes"] == 1
    data = load_dataset("ring8", n_train=16, n_test=2500).test
    perfect = mode_statistics(data, centres, std)
    assert perfect["modes"] == 8 and perfect["high_quality"] > 0.98 and perfect["reverse_kl"] < 0.01


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20_000, 3))
    b = 2.0 * rng.standard_normal((20_000, 3)) + np.array([1.0, 0.0, 0.0])
    # ‖Δμ‖² + Σ (1 + 4 − 2·2) = 1 + 3.
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_digit_classifier_and_its_metrics():
    classifier = digits_classifier()
    assert classifier is digits_classifier()  # trained once per process
    assert classifier.test_accuracy > 0.9
    data = load_dataset("digits")
    real = digits_sample_metrics(data.train[:500], data.train_labels[:500])
    assert real["classes_covered"] == 10 and real["intended_class_accuracy"] > 0.9
    ones = data.train[data.train_labels == 1]
    collapsed = digits_sample_metrics(ones, np.zeros(len(ones), int))
    assert collapsed["classes_covered"] == 1 and collapsed["intended_class_accuracy"] < 0.1
    assert collapsed["frechet_distance"] > 3 * real["frechet_distance"]
