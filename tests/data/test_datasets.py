import re

import numpy as np
import pytest

import jgen.data as data
from jgen.data import DATASETS, SEQUENCE_TASKS, TOY_DATASETS, Dataset, load_dataset, sample_toy
from tests.data.fakes import fake_power, write_fake_cifar, write_fake_mnist

FILE_DATASETS = ("mnist", "fashion_mnist", "cifar10", "power", "gas", "hepmass", "miniboone")


def test_registry_names():
    expected = {*TOY_DATASETS, "digits", "mnist5k", *FILE_DATASETS, "bsds300", *SEQUENCE_TASKS}
    assert set(DATASETS) == expected
    with pytest.raises(ValueError, match=r"known datasets: .*moons.*mnist.*bsds300"):
        load_dataset("imagenet")


def test_public_api_exported():
    for name in ("load_dataset", "DATASETS", "Dataset", "BatchStream", "eval_batches"):
        assert name in data.__all__ and hasattr(data, name)
    for name in ("sample_toy", "TOY_DATASETS", "mixture_modes", "load_digits", "load_mnist"):
        assert name in data.__all__ and hasattr(data, name)


def test_unknown_option_and_bad_seed():
    with pytest.raises(TypeError, match=r"'mnist'.*'n_train'.*accepts \['n_test'\]"):
        load_dataset("mnist", n_train=5)
    with pytest.raises(TypeError, match="n_train"):
        load_dataset("moons", n_samples=5)
    with pytest.raises(ValueError, match="seed"):
        load_dataset("moons", seed=-1)


def test_toy_dataset_sizes_seeds_and_independent_test():
    ds = load_dataset("checkerboard", seed=4, n_train=300, n_test=100)
    assert ds.train.shape == (300, 2) and ds.test.shape == (100, 2)
    assert ds.event_shape == (2,) and ds.num_levels is None and not ds.is_discrete
    assert ds.train_labels is None and ds.valid is None and ds.name == "checkerboard"
    np.testing.assert_array_equal(ds.train, sample_toy("checkerboard", 300, (4, 0)))
    assert not np.allclose(ds.train[:100], ds.test)
    again = load_dataset("CHECKERBOARD", seed=4, n_train=300, n_test=100)
    np.testing.assert_array_equal(again.test, ds.test)
    other = load_dataset("checkerboard", seed=5, n_train=300, n_test=100)
    assert not np.allclose(other.train, ds.train)


def test_digits_dataset():
    ds = load_dataset("digits")
    assert ds.num_levels == 17 and ds.event_shape == (8, 8, 1) and ds.is_discrete
    assert len(ds.train) == 1497 and len(ds.test_labels) == 300
    np.testing.assert_array_equal(load_dataset("digits", seed=9).test, ds.test)  # fixed split
    assert len(load_dataset("digits", n_test=500).test) == 500


def test_image_file_datasets(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    write_fake_mnist(tmp_path / "fashion_mnist")
    write_fake_cifar(tmp_path)
    for name, shape in [
        ("mnist", (28, 28, 1)),
        ("fashion_mnist", (28, 28, 1)),
        ("cifar10", (32, 32, 3)),
    ]:
        ds = load_dataset(name, root=tmp_path)
        assert ds.num_levels == 256 and ds.event_shape == shape and ds.train.dtype == np.uint8
        assert ds.train_labels.shape == (len(ds.train),)


def test_tabular_dataset_has_validation(tmp_path, monkeypatch):
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", fake_power(100))
    monkeypatch.setenv("JGEN_DATA_DIR", str(tmp_path))
    ds = load_dataset("power")
    assert ds.event_shape == (6,) and ds.num_levels is None
    assert ds.valid.shape == (9, 6) and ds.test.shape == (10, 6)


@pytest.mark.parametrize("name", [*FILE_DATASETS, "bsds300"])
def test_missing_files_raise_file_not_found(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        load_dataset(name, root=tmp_path)


def test_dataset_validation():
    with pytest.raises(ValueError, match="event shapes"):
        Dataset("bad", train=np.zeros((4, 2)), test=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="train_labels"):
        Dataset("bad", train=np.zeros((4, 2)), test=np.zeros((4, 2)), train_labels=np.zeros(3))
    with pytest.raises(ValueError, match="num_levels"):
        Dataset("bad", train=np.zeros((4, 2)), test=np.zeros((4, 2)), num_levels=1)
