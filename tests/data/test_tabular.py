import importlib.util

import numpy as np
import pytest

from jgen.data import load_bsds300, load_gas, load_hepmass, load_miniboone, load_power
from jgen.data.tabular import preprocess_gas, preprocess_hepmass
from tests.data.fakes import (
    DISCRETE_HEPMASS_FEATURES,
    fake_hepmass_table,
    fake_power,
    write_hepmass_csv,
)


def _check_float32_splits(splits, dim, sizes):
    for split, size in zip(splits, sizes, strict=True):
        assert split.dtype == np.float32 and split.shape == (size, dim)
        assert np.all(np.isfinite(split))


def _maf_sizes(n):
    """MAF's split sizes: test = int(0.1 n), validation = int(0.1 * rest)."""
    n_test = int(0.1 * n)
    n_valid = int(0.1 * (n - n_test))
    return n - n_test - n_valid, n_valid, n_test


# ---------------------------------------------------------------------------------- POWER


@pytest.fixture
def power_root(tmp_path):
    (tmp_path / "power").mkdir()
    raw = fake_power(n=300)
    np.save(tmp_path / "power" / "data.npy", raw)
    return tmp_path, raw


def test_power_shapes_splits_and_standardisation(power_root):
    root, _ = power_root
    splits = load_power(root)
    _check_float32_splits(splits, 6, _maf_sizes(300))
    train_valid = np.vstack([splits.train, splits.valid]).astype(np.float64)
    np.testing.assert_allclose(train_valid.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_valid.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(load_power(root).test, splits.test)  # fixed RandomState(42)


def test_power_rows_are_a_shuffled_partition_with_small_noise(power_root):
    root, raw = power_root
    splits = load_power(root)
    # The time column (last) is never noised and holds the row id: undo the standardisation.
    time = np.concatenate([s[:, -1] for s in splits]).astype(np.float64)
    ids = np.rint((time - time.min()) / (time.max() - time.min()) * 299).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(300))  # disjoint, covering
    assert not np.array_equal(ids, np.arange(300))  # shuffled
    # Kept columns, in order: active power, voltage, sub-metering 1-3, time. Noise < 1 on
    # values spread over 0..999, so each output column tracks its raw column closely.
    output = np.concatenate(splits).astype(np.float64)
    kept = raw[ids][:, [0, 2, 4, 5, 6, 7]]
    for j in range(6):
        assert np.corrcoef(output[:, j], kept[:, j])[0, 1] > 0.999


def test_power_rejects_wrong_columns(tmp_path):
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", np.zeros((20, 7)))
    with pytest.raises(ValueError, match="8 columns"):
        load_power(tmp_path)


# ------------------------------------------------------------------------------ MINIBOONE


def test_miniboone_split_in_file_order_and_standardised(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(3.0, 2.0, size=(250, 43))
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    splits = load_miniboone(tmp_path)
    n_train, n_valid, n_test = _maf_sizes(250)
    _check_float32_splits(splits, 43, (n_train, n_valid, n_test))
    reference = raw[: n_train + n_valid]
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    restored = np.concatenate(splits).astype(np.float64) * std + mean
    np.testing.assert_allclose(restored, raw, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------- HEPMASS


@pytest.fixture
def hepmass_tables(tmp_path):
    train, test = fake_hepmass_table(400, seed=0), fake_hepmass_table(120, seed=1)
    write_hepmass_csv(tmp_path / "hepmass" / "1000_train.csv", train)
    write_hepmass_csv(tmp_path / "hepmass" / "1000_test.csv", test)
    return tmp_path, train, test


def test_hepmass_signal_only_discrete_features_dropped(hepmass_tables):
    root, train_table, test_table = hepmass_tables
    splits = load_hepmass(root)
    signal_train = train_table[train_table[:, 0] == 1]
    signal_test = test_table[test_table[:, 0] == 1]
    n_valid = int(0.1 * len(signal_train))
    continuous = [f for f in range(27) if f not in DISCRETE_HEPMASS_FEATURES]
    _check_float32_splits(splits, 21, (len(signal_train) - n_valid, n_valid, len(signal_test)))
    features = signal_train[:, 1:28][:, continuous]
    mean, std = features.mean(axis=0), features.std(axis=0, ddof=1)
    np.testing.assert_allclose(
        np.vstack([splits.train, splits.valid]) * std + mean, features, atol=1e-4
    )
    np.testing.assert_allclose(
        splits.test * std + mean, signal_test[:, 1:28][:, continuous], atol=1e-4
    )


def test_hepmass_without_header_and_arrays_agree(hepmass_tables):
    root, train_table, test_table = hepmass_tables
    np.savetxt(root / "hepmass" / "1000_test.csv", test_table, delimiter=",", fmt="%.6f")
    from_files = load_hepmass(root)
    from_arrays = preprocess_hepmass(train_table, test_table)
    for a, b in zip(from_files, from_arrays, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_hepmass_missing_test_file_named(hepmass_tables):
    root, *_ = hepmass_tables
    (root / "hepmass" / "1000_test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="zenodo") as info:
        load_hepmass(root)
    assert str(root / "hepmass" / "1000_test.csv") in str(info.value)


# ------------------------------------------------------------------------------------ GAS


def test_gas_preprocessing_drops_correlated_columns():
    rng = np.random.default_rng(0)
    n = 200
    base = rng.normal(size=(n, 3))
    columns = ["Time", "Meth", "Eth", "A", "A2", "B", "B2", "C", "negA"]
    table = np.column_stack(
        [
            np.arange(n),  # Time
            rng.normal(size=n),  # Meth
            rng.normal(size=n),  # Eth
            base[:, 0],  # A
            2 * base[:, 0] + 0.001 * rng.normal(size=n),  # A2 ~ A
            base[:, 1],  # B
            base[:, 1] - 5,  # B2 = B - 5
            base[:, 2],  # C
            -base[:, 0],  # negA: anti-correlated, kept (only correlation > 0.98 counts)
        ]
    )
    splits = preprocess_gas(table, columns)
    # The first column of each correlated pair goes (A, then B), leaving A2, B2, C, negA.
    n_train, n_valid, n_test = _maf_sizes(n)
    _check_float32_splits(splits, 4, (n_train, n_valid, n_test))
    kept = table[:, [4, 6, 7, 8]]
    restored = np.concatenate(splits) * kept.std(axis=0, ddof=1) + kept.mean(axis=0)
    np.testing.assert_allclose(restored, kept, atol=1e-4)
    with pytest.raises(ValueError, match="Meth"):
        preprocess_gas(table[:, 3:], columns[3:])


def test_gas_missing_file_and_pandas(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ethylene_CO\.pickle"):
        load_gas(tmp_path)
    path = tmp_path / "gas" / "ethylene_CO.pickle"
    path.parent.mkdir()
    if importlib.util.find_spec("pandas") is None:
        path.write_bytes(b"fake")
        with pytest.raises(ImportError, match="pip install pandas"):
            load_gas(tmp_path)
    else:
        import pandas as pd

        rng = np.random.default_rng(0)
        columns = ["Time", "Meth", "Eth", "S1", "S2", "S3"]
        table = rng.normal(size=(50, 6))
        pd.DataFrame(table, columns=columns).to_pickle(path)
        for a, b in zip(load_gas(tmp_path), preprocess_gas(table, columns), strict=True):
            np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------------- BSDS300


def test_bsds300_missing_file_and_h5py(tmp_path):
    path = tmp_path / "BSDS300" / "BSDS300.hdf5"
    with pytest.raises(FileNotFoundError) as info:
        load_bsds300(tmp_path)
    assert str(path) in str(info.value)
    path.parent.mkdir()
    if importlib.util.find_spec("h5py") is None:
        path.write_bytes(b"fake")
        with pytest.raises(ImportError, match="pip install h5py"):
            load_bsds300(tmp_path)
    else:
        import h5py

        rng = np.random.default_rng(0)
        arrays = {k: rng.normal(size=(n, 63)) for k, n in [("train", 9), ("validation", 4)]}
        arrays["test"] = rng.normal(size=(5, 63))
        with h5py.File(path, "w") as file:
            for key, value in arrays.items():
                file[key] = value
        splits = load_bsds300(tmp_path)
        np.testing.assert_allclose(splits.valid, arrays["validation"].astype(np.float32))
