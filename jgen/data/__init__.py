"""Data for jgen's models: 2-D toys, digits, image and tabular files, sequence-to-sequence tasks
generated from a seed, and batch streams.

Host-side numpy only (no JAX). Nothing is ever downloaded: file-based sets read from ``root``
(default ``$JGEN_DATA_DIR``, else ``./data``) and raise ``FileNotFoundError`` naming the expected
files when they are absent.
"""

from jgen.data.batching import BatchStream, eval_batches
from jgen.data.cifar import load_cifar10
from jgen.data.datasets import DATASETS, Dataset, load_dataset
from jgen.data.digits import DIGITS_NUM_LEVELS, load_digits, stratified_split
from jgen.data.files import (
    LabelledSplits,
    TabularSplits,
)
from jgen.data.mnist import load_fashion_mnist, load_mnist, read_idx
from jgen.data.mnist5k import MNIST5K_NUM_LEVELS, load_mnist5k, mnist5k_path, read_mnist5k_csv
from jgen.data.sequences import (
    BOS,
    EOS,
    PAD,
    SEQUENCE_TASKS,
    SequenceTask,
    Vocabulary,
    make_sequence_splits,
    sequence_task,
)
from jgen.data.tabular import (
    load_bsds300,
    load_gas,
    load_hepmass,
    load_miniboone,
    load_power,
)
from jgen.data.toy2d import TOY_DATASETS, mixture_modes, sample_toy

__all__ = [
    "BOS",
    "DATASETS",
    "DIGITS_NUM_LEVELS",
    "EOS",
    "MNIST5K_NUM_LEVELS",
    "PAD",
    "SEQUENCE_TASKS",
    "TOY_DATASETS",
    "BatchStream",
    "Dataset",
    "LabelledSplits",
    "SequenceTask",
    "TabularSplits",
    "Vocabulary",
    "eval_batches",
    "load_bsds300",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_gas",
    "load_hepmass",
    "load_miniboone",
    "load_mnist",
    "load_mnist5k",
    "load_power",
    "make_sequence_splits",
    "mixture_modes",
    "mnist5k_path",
    "read_idx",
    "read_mnist5k_csv",
    "sample_toy",
    "sequence_task",
    "stratified_split",
]
