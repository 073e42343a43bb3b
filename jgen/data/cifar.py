"""CIFAR-10 from the official "python version" batches (``cifar-10-python.tar.gz``, extracted).

Each batch file is a pickled dict with ``b"data"``: ``uint8 (N, 3072)``, every row a 32x32 image
in channel-major (CHW) order (1024 red, then 1024 green, then 1024 blue values, each plane in
row-major order), and ``b"labels"``: N ints in 0..9. We return NHWC ``uint8 (N, 32, 32, 3)``.

The batches are pickles: only load files from a source you trust.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from jgen.data.files import LabelledSplits, missing_files_error, resolve_root

__all__ = ["CIFAR10_DIRNAME", "CIFAR10_SOURCE", "load_cifar10"]

CIFAR10_DIRNAME = "cifar-10-batches-py"
CIFAR10_SOURCE = (
    "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz, extract it into the "
    "data root)"
)
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCHES = ("test_batch",)


def _entry(batch: dict, key: str, path: Path):
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise ValueError(f"{path}: batch dict has no {key!r} entry (keys: {sorted(map(str, batch))})")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as file:
        try:
            batch = pickle.load(file, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise ValueError(f"{path}: not a readable CIFAR-10 pickle ({err})") from err
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    data = np.asarray(_entry(batch, "data", path))
    labels = np.asarray(_entry(batch, "labels", path))
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise ValueError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels out of range 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


def _read_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*(_read_batch(path) for path in paths), strict=True)
    return np.concatenate(images), np.concatenate(labels)


def load_cifar10(root: str | os.PathLike[str] | None = None) -> LabelledSplits:
    """CIFAR-10 from ``<root>/cifar-10-batches-py/``: ``uint8 (N, 32, 32, 3)``, ``int32`` labels.

    Train is ``data_batch_1`` .. ``data_batch_5`` concatenated in order (50000 images), test is
    ``test_batch`` (10000).
    """
    directory = resolve_root(root) / CIFAR10_DIRNAME
    train_paths = [directory / name for name in _TRAIN_BATCHES]
    test_paths = [directory / name for name in _TEST_BATCHES]
    missing = [path for path in train_paths + test_paths if not path.is_file()]
    if missing:
        raise missing_files_error("CIFAR-10", missing, CIFAR10_SOURCE)
    x_train, y_train = _read_batches(train_paths)
    x_test, y_test = _read_batches(test_paths)
    return LabelledSplits(x_train, y_train, x_test, y_test)
