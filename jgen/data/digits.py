"""scikit-learn's 8x8 handwritten digits (bundled with scikit-learn: nothing is downloaded).

1797 greyscale images of the digits 0..9 (UCI "optical recognition of handwritten digits" test
set): each pixel is a count 0..16 of set pixels in a 4x4 block of a 32x32 bitmap, so the data are
discrete with 17 levels. We return images as ``uint8 (N, 8, 8, 1)`` and labels as ``int32 (N,)``.

The train/test split is fixed and stratified by label (``stratified_split``): with the defaults
(``n_test=300``, ``split_seed=0``) there are 1497 training and 300 test images, 29-31 test images
per digit, and the split never changes between runs, machines or scikit-learn versions (it uses
only numpy's ``default_rng``, not scikit-learn's splitters).
"""

from __future__ import annotations

import numpy as np

from jgen.data.files import LabelledSplits

__all__ = ["DIGITS_NUM_LEVELS", "load_digits", "stratified_split"]

DIGITS_NUM_LEVELS = 17


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train_indices, test_indices)`` with ``n_test`` test items stratified by label.

    Each class ``k`` (the k-th distinct label in sorted order) with ``c_k`` of the ``N`` items
    gets ``floor(n_test * c_k / N)`` test items, and the remaining ``n_test - sum`` slots go to
    the classes with the largest fractional parts (ties to the smaller label). Within class ``k``
    the test items are the first of
    ``np.random.default_rng([seed, k]).permutation`` of that class's indices (in index order).
    """
    labels = np.asarray(labels)
    num_items = len(labels)
    if not 0 < n_test < num_items:
        raise ValueError(f"n_test must be in 1..{num_items - 1}, got {n_test}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = n_test * counts / num_items
    quotas = np.floor(exact).astype(np.int64)
    by_fraction = np.argsort(-(exact - quotas), kind="stable")
    quotas[by_fraction[: n_test - quotas.sum()]] += 1
    test = []
    for position, (label, quota) in enumerate(zip(classes, quotas, strict=True)):
        members = np.flatnonzero(labels == label)
        rng = np.random.default_rng([seed, position])
        test.append(rng.permutation(members)[:quota])
    test_indices = np.sort(np.concatenate(test))
    train_indices = np.setdiff1d(np.arange(num_items), test_indices)
    return train_indices, test_indices


def load_digits(n_test: int = 300, split_seed: int = 0) -> LabelledSplits:
    """The digits as ``uint8 (N, 8, 8, 1)`` images (levels 0..16) and ``int32`` labels.

    Defaults give the documented fixed split: 1497 train / 300 test, stratified, seed 0.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = bunch.images.astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int32)
    if not np.array_equal(images[..., 0], bunch.images):
        raise ValueError("scikit-learn digits are expected to be integers 0..16")
    train, test = stratified_split(labels, n_test, split_seed)
    return LabelledSplits(images[train], labels[train], images[test], labels[test])
