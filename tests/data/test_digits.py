import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_load_digits

from jgen.data import DIGITS_NUM_LEVELS, load_digits, stratified_split


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def sklearn_labels():
    return sklearn_load_digits().target


def test_sizes_dtypes_levels(digits):
    assert digits.x_train.shape == (1497, 8, 8, 1) and digits.x_test.shape == (300, 8, 8, 1)
    assert digits.y_train.shape == (1497,) and digits.y_test.shape == (300,)
    assert digits.x_train.dtype == np.uint8 and digits.y_train.dtype == np.int32
    assert DIGITS_NUM_LEVELS == 17
    values = np.unique(np.concatenate([digits.x_train.ravel(), digits.x_test.ravel()]))
    np.testing.assert_array_equal(values, np.arange(17))
    assert set(np.unique(digits.y_test)) == set(range(10))


def test_split_is_a_disjoint_partition_matching_sklearn(digits, sklearn_labels):
    train, test = stratified_split(sklearn_labels, 300, 0)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    images = sklearn_load_digits().images.astype(np.uint8)[..., None]
    np.testing.assert_array_equal(digits.x_test, images[test])
    np.testing.assert_array_equal(digits.y_train, sklearn_labels[train])


def test_split_is_stratified(digits, sklearn_labels):
    expected = 300 * np.bincount(sklearn_labels) / len(sklearn_labels)
    assert np.all(np.abs(np.bincount(digits.y_test) - expected) < 1)


def test_split_is_fixed(digits, sklearn_labels):
    # Regression guard: the documented split must never change.
    _, test = stratified_split(sklearn_labels, 300, 0)
    assert test[:8].tolist() == [1, 4, 11, 13, 14, 21, 29, 40]
    assert int(test.sum()) == 277855
    again = load_digits()
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    other = load_digits(split_seed=1)
    assert not np.array_equal(other.y_test, digits.y_test) or not np.array_equal(
        other.x_test, digits.x_test
    )


def test_stratified_split_edge_cases():
    labels = np.array([0] * 7 + [1] * 3)
    train, test = stratified_split(labels, 4, seed=0)
    assert len(test) == 4 and np.bincount(labels[test]).tolist() == [3, 1]
    assert len(train) == 6
    for bad in (0, 10):
        with pytest.raises(ValueError, match="n_test"):
            stratified_split(labels, bad, seed=0)
