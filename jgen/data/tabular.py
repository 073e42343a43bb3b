"""The MAF / FFJORD tabular density-estimation sets with the MAF preprocessing.

Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation" (2017),
Appendix D, and their released preprocessing. Files are the ``data`` folder of the MAF archive
(``https://zenodo.org/record/1161203``, ``data.tar.gz``), placed under the data root::

    power/data.npy  gas/ethylene_CO.pickle  hepmass/1000_{train,test}.csv
    miniboone/data.npy  BSDS300/BSDS300.hdf5

Resulting dimensions: POWER 6, GAS 8, HEPMASS 21, MINIBOONE 43, BSDS300 63. All splits are
returned as ``float32 (N, D)`` (computed in float64). "Last 10%" below means the last
``int(0.1 * N)`` rows, in file order (after POWER's shuffle). Per data set:

POWER (UCI household electric power consumption; ``data.npy`` has 8 columns: global active
power, global reactive power, voltage, global intensity, sub-metering 1-3, time of day)
    1. shuffle the rows with ``np.random.RandomState(42)``;
    2. drop global intensity (column 3) and global reactive power (column 1), leaving
       ``[active power, voltage, sub-metering 1, 2, 3, time]``;
    3. add uniform noise from the same generator, drawn in this order: voltage ``U(0, 0.01)``,
       active power ``U(0, 0.001)``, the three sub-meterings ``U(0, 1)``; time gets none
       (the noise breaks ties of the discretised readings);
    4. test = last 10%, validation = last 10% of the rest, train = the remainder;
    5. standardise every split with the mean and (ddof=0) std of train + validation.

GAS (UCI gas sensor array under dynamic gas mixtures, ethylene-CO; needs ``pandas``)
    1. drop the columns ``Meth``, ``Eth`` and ``Time``;
    2. while some column has a Pearson correlation > 0.98 with another column, drop the first
       such column (in column order) and recompute the correlations;
    3. standardise with the mean and (ddof=1) std of the whole table;
    4. test = last 10%, validation = last 10% of the rest, train = the remainder.

HEPMASS (UCI, the ``1000_*`` files: signal mass 1000; columns: label, 27 features, mass)
    1. keep the signal rows (label == 1) and drop the label column;
    2. drop the mass column (it is the constant 1000 on these rows; MAF drops it from the test
       file by position and it falls to the discreteness rule of step 3 on train);
    3. drop every feature whose smallest training value occurs more than 5 times (MAF's
       "too many re-occurring values" rule: the count it checks is that of the smallest value);
       this removes the discrete features;
    4. standardise train and test with the mean and (ddof=1) std of all training signal rows
       (before the validation split);
    5. validation = last 10% of the training rows, train = the rest; test = the test file.

MINIBOONE (UCI MiniBooNE particle identification; ``data.npy`` is already cleaned by MAF: outliers
with a first feature < -100 removed, and the features with too many repeated values dropped)
    1. test = last 10%, validation = last 10% of the rest, train = the remainder;
    2. standardise with the mean and (ddof=0) std of train + validation.

BSDS300 (8x8 patches of natural images, monochrome, with the last pixel dropped; needs ``h5py``)
    The file holds the ``train``, ``validation`` and ``test`` splits already preprocessed; loaded
    as is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jgen.data.files import TabularSplits, require_file, resolve_root

__all__ = [
    "MAF_SOURCE",
    "load_bsds300",
    "load_gas",
    "load_hepmass",
    "load_miniboone",
    "load_power",
    "preprocess_gas",
    "preprocess_hepmass",
    "preprocess_miniboone",
    "preprocess_power",
]

MAF_SOURCE = (
    "https://zenodo.org/record/1161203 (data.tar.gz of the MAF paper, Papamakarios et al. 2017; "
    "extract its data/ folder into the data root)"
)

Root = str | os.PathLike[str] | None


def _split_tail(data: np.ndarray, fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``(head, tail)`` where ``tail`` is the last ``int(fraction * len(data))`` rows."""
    num_tail = int(fraction * len(data))
    cut = len(data) - num_tail
    return data[:cut], data[cut:]


def _split_test_valid_train(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rest, test = _split_tail(data)
    train, valid = _split_tail(rest)
    return train, valid, test


def _standardise(splits: Sequence[np.ndarray], reference: np.ndarray, ddof: int) -> TabularSplits:
    mean = reference.mean(axis=0)
    std = reference.std(axis=0, ddof=ddof)
    return TabularSplits(*(((split - mean) / std).astype(np.float32) for split in splits))


def _as_table(data, name: str, num_columns: int | None = None) -> np.ndarray:
    table = np.asarray(data, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D table, got shape {table.shape}")
    if num_columns is not None and table.shape[1] != num_columns:
        raise ValueError(f"{name}: expected {num_columns} columns, got {table.shape[1]}")
    return table


# ----------------------------------------------------------------------------------- POWER


def preprocess_power(raw: np.ndarray) -> TabularSplits:
    """MAF preprocessing of POWER's ``data.npy`` (8 columns); see the module docstring."""
    data = _as_table(raw, "POWER data.npy", num_columns=8).copy()
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    data = np.delete(data, [1, 3], axis=1)
    num_rows = len(data)
    voltage_noise = 0.01 * rng.rand(num_rows, 1)
    active_power_noise = 0.001 * rng.rand(num_rows, 1)
    sub_metering_noise = rng.rand(num_rows, 3)
    time_noise = np.zeros((num_rows, 1))
    data += np.hstack([active_power_noise, voltage_noise, sub_metering_noise, time_noise])
    train, valid, test = _split_test_valid_train(data)
    return _standardise((train, valid, test), np.vstack([train, valid]), ddof=0)


def load_power(root: Root = None) -> TabularSplits:
    """POWER (D=6) from ``<root>/power/data.npy``."""
    path = require_file("POWER", resolve_root(root) / "power" / "data.npy", MAF_SOURCE)
    return preprocess_power(np.load(path))


# ------------------------------------------------------------------------------------- GAS

_GAS_DROPPED_COLUMNS = ("Meth", "Eth", "Time")


def preprocess_gas(values: np.ndarray, columns: Sequence[str]) -> TabularSplits:
    """MAF preprocessing of the GAS table (``values`` with column names ``columns``)."""
    table = _as_table(values, "GAS table")
    columns = [str(c) for c in columns]
    if len(columns) != table.shape[1]:
        raise ValueError(f"GAS: {len(columns)} column names for {table.shape[1]} columns")
    absent = [c for c in _GAS_DROPPED_COLUMNS if c not in columns]
    if absent:
        raise ValueError(f"GAS: expected columns {absent} in the table, got {columns}")
    keep = [i for i, c in enumerate(columns) if c not in _GAS_DROPPED_COLUMNS]
    table = table[:, keep]
    while True:
        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = np.corrcoef(table, rowvar=False)
        num_high = np.sum(correlation > 0.98, axis=1)  # the diagonal counts once
        over = np.flatnonzero(num_high > 1)
        if over.size == 0:
            break
        table = np.delete(table, over[0], axis=1)
    train, valid, test = _split_test_valid_train(table)
    return _standardise((train, valid, test), table, ddof=1)


def load_gas(root: Root = None) -> TabularSplits:
    """GAS (D=8) from ``<root>/gas/ethylene_CO.pickle`` (a pickled pandas DataFrame).

    Reading the pickle needs ``pandas`` (not a jgen dependency); without it this raises an
    ``ImportError`` saying so. Only load pickles from a source you trust.
    """
    path = require_file("GAS", resolve_root(root) / "gas" / "ethylene_CO.pickle", MAF_SOURCE)
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError(
            f"GAS: reading {path} needs pandas (a pickled DataFrame), which is not installed; "
            "install it with `pip install pandas`"
        ) from err
    frame = pd.read_pickle(path)
    return preprocess_gas(frame.to_numpy(dtype=np.float64), list(frame.columns))


# --------------------------------------------------------------------------------- HEPMASS

_HEPMASS_NUM_COLUMNS = 29  # label, 27 features, mass


def _discrete_features(train: np.ndarray, max_repeats: int = 5) -> np.ndarray:
    """Boolean mask of features whose smallest value occurs more than ``max_repeats`` times."""
    return np.sum(train == train.min(axis=0), axis=0) > max_repeats


def preprocess_hepmass(train_table: np.ndarray, test_table: np.ndarray) -> TabularSplits:
    """MAF preprocessing of HEPMASS's ``1000_train`` / ``1000_test`` tables (29 columns each)."""
    splits = []
    for name, table in (("1000_train", train_table), ("1000_test", test_table)):
        table = _as_table(table, f"HEPMASS {name}", num_columns=_HEPMASS_NUM_COLUMNS)
        signal = table[table[:, 0] == 1]
        splits.append(signal[:, 1:-1])  # drop label and mass
    train, test = splits
    if len(train) == 0:
        raise ValueError("HEPMASS: the training table has no signal rows (label == 1)")
    keep = ~_discrete_features(train)
    train, test = train[:, keep], test[:, keep]
    mean, std = train.mean(axis=0), train.std(axis=0, ddof=1)
    train, valid = _split_tail(train)
    return TabularSplits(*(((s - mean) / std).astype(np.float32) for s in (train, valid, test)))


def _read_csv(path: Path, num_columns: int) -> np.ndarray:
    with path.open() as file:
        first_line = file.readline()
    try:
        [float(field) for field in first_line.strip().split(",") if field.strip()]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    try:
        return np.loadtxt(
            path, delimiter=",", skiprows=skip, usecols=range(num_columns), ndmin=2, comments=None
        )
    except ValueError as err:
        raise ValueError(f"{path}: cannot read {num_columns} numeric columns ({err})") from err


def load_hepmass(root: Root = None) -> TabularSplits:
    """HEPMASS (D=21) from ``<root>/hepmass/1000_train.csv`` and ``1000_test.csv``.

    Parsed with numpy only (``np.loadtxt``; the full training file takes a while).
    """
    directory = resolve_root(root) / "hepmass"
    paths = [
        require_file("HEPMASS", directory / f"1000_{split}.csv", MAF_SOURCE)
        for split in ("train", "test")
    ]
    train_table, test_table = (_read_csv(p, _HEPMASS_NUM_COLUMNS) for p in paths)
    return preprocess_hepmass(train_table, test_table)


# ------------------------------------------------------------------------------- MINIBOONE


def preprocess_miniboone(raw: np.ndarray) -> TabularSplits:
    """MAF split and standardisation of MINIBOONE's cleaned ``data.npy``."""
    data = _as_table(raw, "MINIBOONE data.npy")
    train, valid, test = _split_test_valid_train(data)
    return _standardise((train, valid, test), np.vstack([train, valid]), ddof=0)


def load_miniboone(root: Root = None) -> TabularSplits:
    """MINIBOONE (D=43) from ``<root>/miniboone/data.npy``."""
    path = require_file("MINIBOONE", resolve_root(root) / "miniboone" / "data.npy", MAF_SOURCE)
    return preprocess_miniboone(np.load(path))


# --------------------------------------------------------------------------------- BSDS300


def load_bsds300(root: Root = None) -> TabularSplits:
    """BSDS300 (D=63) from ``<root>/BSDS300/BSDS300.hdf5`` (needs ``h5py``, not a dependency)."""
    path = require_file("BSDS300", resolve_root(root) / "BSDS300" / "BSDS300.hdf5", MAF_SOURCE)
    try:
        import h5py
    except ImportError as err:
        raise ImportError(
            f"BSDS300: reading {path} needs h5py (an HDF5 file), which is not installed; "
            "install it with `pip install h5py`"
        ) from err
    keys = ("train", "validation", "test")
    with h5py.File(path, "r") as file:
        absent = [key for key in keys if key not in file]
        if absent:
            raise ValueError(f"{path}: missing HDF5 dataset(s) {absent}")
        return TabularSplits(*(np.asarray(file[key][:], dtype=np.float32) for key in keys))
