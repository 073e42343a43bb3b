"""Shared plumbing for the local-file loaders: the data root, missing-file errors, split tuples.

Nothing is ever downloaded. Every loader takes ``root``; when it is ``None`` the root is the
environment variable ``JGEN_DATA_DIR`` if set (and non-empty), else ``./data`` relative to the
working directory. Expected layout under the root::

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    fashion_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    cifar-10-batches-py/{data_batch_1..5,test_batch}
    power/data.npy
    gas/ethylene_CO.pickle
    hepmass/{1000_train,1000_test}.csv
    miniboone/data.npy
    BSDS300/BSDS300.hdf5

(the five tabular sets are the ``data`` folder of the MAF archive, Papamakarios et al. 2017).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DATA_DIR_ENV",
    "LabelledSplits",
    "TabularSplits",
    "default_data_root",
    "missing_files_error",
    "resolve_root",
]

DATA_DIR_ENV = "JGEN_DATA_DIR"


class LabelledSplits(NamedTuple):
    """Images (or features) with integer labels, split into train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class TabularSplits(NamedTuple):
    """Unlabelled ``float32 (N, D)`` train / validation / test arrays."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def default_data_root() -> Path:
    """``$JGEN_DATA_DIR`` if set and non-empty, else ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The data root to use: ``root`` itself, or :func:`default_data_root` when ``None``."""
    return default_data_root() if root is None else Path(root)


def missing_files_error(
    dataset: str, missing: Sequence[Path | str], source: str
) -> FileNotFoundError:
    """A ``FileNotFoundError`` naming every missing path and where the files come from."""
    listed = "\n".join(f"  {path}" for path in missing)
    return FileNotFoundError(
        f"{dataset}: expected file(s) not found:\n{listed}\n"
        f"Get them from {source} (nothing is downloaded automatically); set the data root with "
        f"root=... or the {DATA_DIR_ENV} environment variable."
    )


def require_file(dataset: str, path: Path, source: str) -> Path:
    """``path`` if it is a file, else raise :func:`missing_files_error`."""
    if not path.is_file():
        raise missing_files_error(dataset, [path], source)
    return path
