"""MNIST and Fashion-MNIST from local IDX files (plain or gzipped), with our own IDX parser.

IDX format (LeCun et al.): a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the values in C order, big-endian. Dtype codes: 0x08
uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. MNIST image files have magic
2051 (uint8, 3 dims: N, 28, 28), label files magic 2049 (uint8, 1 dim: N).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from jgen.data.files import LabelledSplits, missing_files_error, resolve_root

__all__ = [
    "FASHION_MNIST_SOURCE",
    "MNIST_SOURCE",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
]

MNIST_SOURCE = "http://yann.lecun.com/exdb/mnist/ (or any mirror of the four official files)"
FASHION_MNIST_SOURCE = "https://github.com/zalandoresearch/fashion-mnist (folder data/fashion)"

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dims
_LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dim
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: corrupt gzip stream ({err})") from err


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or not, detected from its first bytes).

    Returns an array in native byte order with the file's dtype and shape. Raises ``ValueError``
    naming the file when the magic number, dtype code or size is wrong (e.g. a truncated file).
    """
    path = Path(path)
    return _parse_idx(path, _read_bytes(path))


def _parse_idx(path: Path, raw: bytes, expected_magic: int | None = None) -> np.ndarray:
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes, need >= 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (the first two bytes must be zero)"
        )
    if expected_magic is not None and int.from_bytes(raw[:4], "big") != expected_magic:
        found = int.from_bytes(raw[:4], "big")
        raise ValueError(
            f"{path}: magic number {found} (0x{found:08x}), expected {expected_magic} "
            f"(0x{expected_magic:08x})"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: unknown IDX dtype code 0x{code:02x}; expected one of "
            f"{[f'0x{c:02x}' for c in _IDX_DTYPES]}"
        )
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dims need {header_size})"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX data {problem}: shape {shape} of {dtype.name} needs {expected} bytes "
            f"after the header, found {found}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = _parse_idx(images_path, _read_bytes(images_path), _IMAGES_MAGIC)
    labels = _parse_idx(labels_path, _read_bytes(labels_path), _LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: images have shape {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: label {labels.max()} out of range 0..9")
    return images[..., None], labels.astype(np.int32)


def _load_idx_dataset(dataset: str, directory: Path, source: str) -> LabelledSplits:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for split_files in _SPLIT_FILES.values():
        for name in split_files:
            path = _find_idx(directory, name)
            if path is None:
                missing.append(f"{directory / name} (or {name}.gz)")
            else:
                found[name] = path
    if missing:
        raise missing_files_error(dataset, missing, source)
    x_train, y_train = _load_split(*(found[name] for name in _SPLIT_FILES["train"]))
    x_test, y_test = _load_split(*(found[name] for name in _SPLIT_FILES["test"]))
    return LabelledSplits(x_train, y_train, x_test, y_test)


def load_mnist(root: str | os.PathLike[str] | None = None) -> LabelledSplits:
    """MNIST from ``<root>/mnist/``: images ``uint8 (N, 28, 28, 1)``, labels ``int32 (N,)``.

    The official split: 60000 train / 10000 test (file sizes are not enforced).
    """
    return _load_idx_dataset("MNIST", resolve_root(root) / "mnist", MNIST_SOURCE)


def load_fashion_mnist(root: str | os.PathLike[str] | None = None) -> LabelledSplits:
    """Fashion-MNIST from ``<root>/fashion_mnist/`` (same file names and format as MNIST)."""
    return _load_idx_dataset(
        "Fashion-MNIST", resolve_root(root) / "fashion_mnist", FASHION_MNIST_SOURCE
    )
