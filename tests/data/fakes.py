"""Writers of small fake data files in the official formats, for the loader tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic 0 0 code ndim, big-endian uint32 dims, values."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype.name], array.ndim)
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_fake_mnist(directory: Path, n_train=5, n_test=3, seed=0, gz_train=False, gz_test=True):
    """Fake MNIST-format files; returns ``(x_train, y_train, x_test, y_test)`` as written."""
    rng = np.random.default_rng(seed)
    written = []
    for split, n, gz in (("train", n_train, gz_train), ("test", n_test, gz_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        image_name, label_name = MNIST_FILES[split]
        write_idx(directory / image_name, images, gz)
        write_idx(directory / label_name, labels, gz)
        written += [images, labels]
    return tuple(written)


def write_cifar_batch(path: Path, data: np.ndarray, labels, *, str_keys: bool = False) -> None:
    keys = ("data", "labels") if str_keys else (b"data", b"labels")
    batch = {keys[0]: data, keys[1]: list(labels), b"batch_label": b"fake"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        pickle.dump(batch, file, protocol=2)


def write_fake_cifar(root: Path, per_batch=3, n_test=2, seed=0):
    """Fake CIFAR-10 python batches; returns the raw ``(train_data, train_labels, test_data,
    test_labels)`` with data in the file's (N, 3072) CHW layout."""
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    train_data, train_labels = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch)
        write_cifar_batch(directory / f"data_batch_{i}", data, labels)
        train_data.append(data)
        train_labels.append(labels)
    test_data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, n_test)
    write_cifar_batch(directory / "test_batch", test_data, test_labels, str_keys=True)
    return np.concatenate(train_data), np.concatenate(train_labels), test_data, test_labels


def fake_power(n=300, seed=0) -> np.ndarray:
    """8 columns; column 7 (time, never noised) holds the row id 0..n-1."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1000, (n, 8)).astype(np.float64)
    data[:, 1] = 1e6  # dropped columns: huge constants would wreck the standardisation
    data[:, 3] = -1e6
    data[:, 7] = np.arange(n)
    return data


def write_hepmass_csv(path: Path, table: np.ndarray) -> None:
    header = "# label," + ",".join(f"f{i}" for i in range(27)) + ",mass"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%.6f")


DISCRETE_HEPMASS_FEATURES = (3, 7, 11, 15, 19, 23)  # 0-based among the 27 features


def fake_hepmass_table(n: int, seed: int) -> np.ndarray:
    """29 columns: label (about 3/4 signal), 27 features (6 discrete), mass (1000 on signal)."""
    rng = np.random.default_rng(seed)
    table = np.empty((n, 29))
    table[:, 0] = (rng.uniform(size=n) < 0.75).astype(float)
    table[:, 1:28] = rng.normal(size=(n, 27)).round(6)
    for feature in DISCRETE_HEPMASS_FEATURES:
        table[:, 1 + feature] = rng.choice([-1.5, 0.25, 2.0], size=n)
    table[:, 28] = np.where(table[:, 0] == 1, 1000.0, rng.choice([500.0, 1500.0], size=n))
    return table
