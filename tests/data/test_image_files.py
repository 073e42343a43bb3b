import gzip

import numpy as np
import pytest

from jgen.data import load_cifar10, load_fashion_mnist, load_mnist, read_idx
from tests.data.fakes import (
    MNIST_FILES,
    idx_bytes,
    write_cifar_batch,
    write_fake_cifar,
    write_fake_mnist,
    write_idx,
)

# ----------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([[-300, 7], [12345, -1]], dtype=np.int16),
        np.array([1.5, -2.25, 3e8], dtype=np.float32),
        np.array([-5, 2**30], dtype=np.int32),
    ],
    ids=["uint8", "int16", "float32", "int32"],
)
def test_read_idx_round_trip(tmp_path, array, gz):
    path = write_idx(tmp_path / "x-idx", array, gz=gz)
    result = read_idx(path)
    assert result.dtype == array.dtype and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def _write(tmp_path, data: bytes, gz=False):
    path = tmp_path / ("bad.gz" if gz else "bad")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


GOOD = idx_bytes(np.zeros((3, 4), dtype=np.uint8))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "data, message",
    [
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
        (b"\x01" + GOOD[1:], "bad IDX magic"),
        (GOOD[:2] + b"\x42" + GOOD[3:], "unknown IDX dtype code"),
        (GOOD[:6], "truncated IDX header"),
        (GOOD[:3], "too short"),
        (GOOD[:3] + b"\x00", "0 dimensions"),
    ],
    ids=["truncated", "trailing", "magic", "dtype", "header", "short", "ndim0"],
)
def test_read_idx_rejects_malformed(tmp_path, data, message, gz):
    path = _write(tmp_path, data, gz)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_corrupt_gzip(tmp_path):
    path = _write(tmp_path, gzip.compress(GOOD)[:-8])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


# --------------------------------------------------------------------------------- MNIST


def test_load_mnist_round_trip_plain_and_gz(tmp_path):
    x_train, y_train, x_test, y_test = write_fake_mnist(tmp_path / "mnist")
    splits = load_mnist(tmp_path)
    assert splits.x_train.shape == (5, 28, 28, 1) and splits.x_train.dtype == np.uint8
    assert splits.x_test.shape == (3, 28, 28, 1)
    assert splits.y_train.dtype == np.int32
    np.testing.assert_array_equal(splits.x_train[..., 0], x_train)
    np.testing.assert_array_equal(splits.y_train, y_train)
    np.testing.assert_array_equal(splits.x_test[..., 0], x_test)
    np.testing.assert_array_equal(splits.y_test, y_test)


def test_fashion_mnist_directory_and_env_root(tmp_path, monkeypatch):
    x_train, *_ = write_fake_mnist(tmp_path / "fashion_mnist", gz_train=True, seed=3)
    monkeypatch.setenv("JGEN_DATA_DIR", str(tmp_path))
    np.testing.assert_array_equal(load_fashion_mnist().x_train[..., 0], x_train)
    with pytest.raises(FileNotFoundError, match="mnist"):
        load_mnist()


def test_missing_mnist_files_named(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    missing = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    missing.with_name(missing.name + ".gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(missing) in message and "yann.lecun.com" in message
    assert "train-images" not in message  # only the missing file is listed


def test_mnist_swapped_files_bad_magic(tmp_path):
    directory = tmp_path / "mnist"
    write_fake_mnist(directory, gz_test=False)
    images, labels = (directory / name for name in MNIST_FILES["train"])
    images_bytes = images.read_bytes()
    images.write_bytes(labels.read_bytes())
    labels.write_bytes(images_bytes)
    with pytest.raises(ValueError, match=r"magic number 2049.*expected 2051"):
        load_mnist(tmp_path)


def test_mnist_count_mismatch(tmp_path):
    directory = tmp_path / "mnist"
    write_fake_mnist(directory, gz_train=False)
    write_idx(directory / MNIST_FILES["train"][1], np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"5 images but .* 4 labels"):
        load_mnist(tmp_path)


def test_mnist_truncated_file(tmp_path):
    directory = tmp_path / "mnist"
    write_fake_mnist(directory, gz_train=False)
    images = directory / MNIST_FILES["train"][0]
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path)


# ------------------------------------------------------------------------------- CIFAR-10


def test_load_cifar10_chw_to_nhwc(tmp_path):
    train_data, train_labels, test_data, test_labels = write_fake_cifar(tmp_path)
    splits = load_cifar10(tmp_path)
    assert splits.x_train.shape == (15, 32, 32, 3) and splits.x_train.dtype == np.uint8
    assert splits.x_test.shape == (2, 32, 32, 3) and splits.y_test.dtype == np.int32
    np.testing.assert_array_equal(splits.y_train, train_labels)  # batches 1..5 in order
    np.testing.assert_array_equal(splits.y_test, test_labels)
    # Pixel (h, w) of channel c is entry c * 1024 + h * 32 + w of the CHW row.
    for i, h, w, c in [(0, 0, 0, 0), (4, 5, 31, 2), (14, 31, 7, 1)]:
        assert splits.x_train[i, h, w, c] == train_data[i, c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(
        splits.x_test, test_data.reshape(2, 3, 32, 32).transpose(0, 2, 3, 1)
    )


def test_cifar10_missing_batch_named(tmp_path):
    write_fake_cifar(tmp_path)
    missing = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=r"cifar-10-python\.tar\.gz") as info:
        load_cifar10(tmp_path)
    assert str(missing) in str(info.value)


def test_cifar10_malformed_batch(tmp_path):
    write_fake_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    write_cifar_batch(bad, np.zeros((2, 3000), dtype=np.uint8), [0, 1])
    with pytest.raises(ValueError, match=r"data_batch_2.*3072"):
        load_cifar10(tmp_path)
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_2"):
        load_cifar10(tmp_path)
