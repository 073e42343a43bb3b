"""The generated sequence tasks: correct targets, vocabularies, held-out splits, registry."""

import datetime

import numpy as np
import pytest

from jgen.data import (
    BOS,
    EOS,
    PAD,
    SEQUENCE_TASKS,
    Vocabulary,
    load_dataset,
    make_sequence_splits,
    sequence_task,
)
from jgen.validation import ValidationError, check_dataset

MONTHS = {datetime.date(2000, m, 1).strftime("%B"): m for m in range(1, 13)}
MONTHS.update({name[:3]: m for name, m in list(MONTHS.items())})


def _parse_date(text: str) -> datetime.date:
    """An independent parser of the five input formats."""
    if "/" in text:
        day, month, year = map(int, text.split("/"))
        return datetime.date(year, month, day)
    words = text.replace(",", "").split()
    if words[0] in MONTHS:  # "March 3 1999"
        return datetime.date(int(words[2]), MONTHS[words[0]], int(words[1]))
    if not words[0].isdigit():  # "Wednesday 3 March 1999": check the weekday too
        date = datetime.date(int(words[3]), MONTHS[words[2]], int(words[1]))
        assert date.strftime("%A") == words[0]
        return date
    return datetime.date(int(words[2]), MONTHS[words[1]], int(words[0]))


EXPECTED = {
    "reversal": lambda s: s[::-1],
    "sorting": lambda s: "".join(sorted(s)),
    "addition": lambda s: str(sum(map(int, s.split("+")))),
    "dates": lambda s: _parse_date(s).isoformat(),
}


@pytest.fixture(scope="module")
def datasets():
    return {name: load_dataset(name, n_train=400, n_test=200, seed=3) for name in SEQUENCE_TASKS}


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
def test_targets_are_the_task_applied_to_the_sources(datasets, name):
    ds = datasets[name]
    vocab = ds.vocabulary
    assert ds.num_levels == vocab.size
    for split in (ds.train, ds.test):
        assert split.dtype == np.int32 and split.shape[1] == 2
        for source, target in split:
            assert vocab.decode(target) == EXPECTED[name](vocab.decode(source))


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
def test_test_sources_are_distinct_and_never_in_train(datasets, name):
    ds = datasets[name]
    test_sources = {tuple(s) for s in ds.test[:, 0]}
    assert len(test_sources) == len(ds.test)
    assert not test_sources & {tuple(s) for s in ds.train[:, 0]}


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
def test_layout_padding_and_dataset_check(datasets, name):
    ds = datasets[name]
    check_dataset(ds, batch_size=16)  # what fit runs first
    x = np.concatenate([ds.train, ds.test])
    assert not np.isin(x, [BOS, EOS]).any()
    lengths = (x != PAD).sum(-1)
    first_pad = np.where((x == PAD).any(-1), np.argmax(x == PAD, -1), x.shape[-1])
    np.testing.assert_array_equal(lengths, first_pad)  # padding only at the end
    assert ds.arrays("train").keys() == {"x"}


def test_variable_lengths_and_options():
    ds = load_dataset("reversal", n_train=500, n_test=50, min_length=2, max_length=5, seed=0)
    lengths = (ds.train[:, 0] != PAD).sum(-1)
    assert ds.train.shape[-1] == 5 and set(lengths) == {2, 3, 4, 5}
    ds = load_dataset("addition", n_train=200, n_test=20, max_length=5, seed=0)
    assert ds.train.shape[-1] == 11  # "12345+12345"
    formats = {_format_of(ds_text) for ds_text in _sources(load_dataset("dates", n_train=300))}
    assert len(formats) == 5


def _sources(ds):
    return [ds.vocabulary.decode(s) for s in ds.train[:, 0]]


def _format_of(text: str) -> str:
    if "/" in text:
        return "numeric"
    words = text.replace(",", " ").split()
    if "," in text:
        return "month first"
    if not words[0].isdigit():
        return "weekday"
    return "short month" if len(words[1]) == 3 and words[1] != "May" else "long month"


def test_seeds_reproduce_and_differ():
    a = load_dataset("sorting", n_train=100, n_test=20, seed=1)
    b = load_dataset("sorting", n_train=100, n_test=20, seed=1)
    c = load_dataset("sorting", n_train=100, n_test=20, seed=2)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train, c.train)


def test_vocabulary_round_trip_and_errors():
    vocab = Vocabulary("abc")
    assert vocab.size == 6
    ids = vocab.encode("cab", length=5)
    np.testing.assert_array_equal(ids, [5, 3, 4, PAD, PAD])
    assert vocab.decode(ids) == "cab"
    assert vocab.decode([BOS, 4, EOS, 5]) == "b"
    with pytest.raises(ValidationError, match="expected characters of the vocabulary"):
        vocab.encode("abz")
    with pytest.raises(ValidationError, match="at most 2 characters"):
        vocab.encode("abc", length=2)
    with pytest.raises(ValueError, match="repeated"):
        Vocabulary("aa")


def test_too_small_a_task_is_an_error_not_a_hang():
    task = sequence_task("sorting", min_length=1, max_length=1)  # 10 distinct sources
    with pytest.raises(ValueError, match="distinct test sources"):
        make_sequence_splits(task, n_train=10, n_test=11, seed=0)
    with pytest.raises(ValueError, match="nearly every source"):
        make_sequence_splits(task, n_train=10, n_test=10, seed=0)


def test_registry_rejects_unknown_options():
    with pytest.raises(TypeError, match="unknown option"):
        load_dataset("dates", max_length=3)
    with pytest.raises(ValueError, match="min_length"):
        load_dataset("reversal", min_length=4, max_length=3)
