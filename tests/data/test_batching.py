from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jgen.data import BatchStream, eval_batches


def _data(n):
    return {"x": np.arange(n, dtype=np.float32)[:, None] * np.ones(3), "y": np.arange(n)}


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 40),
    drop_remainder=st.booleans(),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 3),
)
def test_each_epoch_visits_every_example_once(n, batch_size, drop_remainder, seed, epoch):
    if drop_remainder and batch_size > n:
        return
    stream = BatchStream(np.arange(n), batch_size, seed, drop_remainder)
    steps = range(epoch * stream.steps_per_epoch, (epoch + 1) * stream.steps_per_epoch)
    seen = np.concatenate([stream.batch(step) for step in steps])
    assert len(np.unique(seen)) == len(seen)
    if drop_remainder:
        assert stream.steps_per_epoch == n // batch_size
        assert len(seen) == (n // batch_size) * batch_size
    else:
        assert stream.steps_per_epoch == -(-n // batch_size)
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_epoch_permutation_spec():
    stream = BatchStream(np.arange(10) * 10, 3, seed=7, drop_remainder=True)
    for epoch in range(3):
        permutation = np.random.default_rng([7, epoch]).permutation(10)
        for position in range(3):
            step = epoch * 3 + position
            expected = permutation[position * 3 : position * 3 + 3]
            np.testing.assert_array_equal(stream.batch_indices(step), expected)
            np.testing.assert_array_equal(stream.batch(step), expected * 10)


def test_batch_of_step_equals_iterator_and_resumes():
    stream = BatchStream(_data(11), 4, seed=3, drop_remainder=False)
    iterator = iter(stream)
    from_iterator = [next(iterator) for _ in range(10)]  # spans 4 epochs of 3 steps
    for step, batch in enumerate(from_iterator):
        direct = BatchStream(_data(11), 4, seed=3, drop_remainder=False).batch(step)
        np.testing.assert_array_equal(batch["y"], direct["y"])
    resumed = stream.iterate(start_step=6)
    for step in range(6, 10):
        np.testing.assert_array_equal(next(resumed)["x"], from_iterator[step]["x"])
    assert len(from_iterator[2]["y"]) == 3  # the partial last batch of each epoch


def test_reproducible_and_seed_dependent():
    first = [BatchStream(np.arange(50), 10, seed=1).batch(s) for s in range(6)]
    again = [BatchStream(np.arange(50), 10, seed=1).batch(s) for s in range(6)]
    other = [BatchStream(np.arange(50), 10, seed=2).batch(s) for s in range(6)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))
    assert not np.array_equal(first[0], first[5])  # epochs 0 and 1 differ


class Pair(NamedTuple):
    x: np.ndarray
    y: np.ndarray


@pytest.mark.parametrize("structure", ["array", "dict", "tuple", "list", "namedtuple"])
def test_structure_preserved_and_rows_aligned(structure):
    x, y = np.arange(12) * 2, np.arange(12)
    arrays = {
        "array": y,
        "dict": {"x": x, "y": y},
        "tuple": (x, y),
        "list": [x, y],
        "namedtuple": Pair(x, y),
    }[structure]
    batch = BatchStream(arrays, 5, seed=0).batch(1)
    if structure == "array":
        assert isinstance(batch, np.ndarray) and batch.shape == (5,)
        return
    if structure == "dict":
        assert isinstance(batch, dict) and list(batch) == ["x", "y"]
        bx, by = batch["x"], batch["y"]
    else:
        assert type(batch) is type(arrays)
        bx, by = batch
    np.testing.assert_array_equal(bx, 2 * by)


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_slices_partition_the_global_batch(process_count):
    data = _data(37)
    global_stream = BatchStream(data, 8, seed=5)
    local_streams = [
        BatchStream(data, 8, seed=5, process_index=i, process_count=process_count)
        for i in range(process_count)
    ]
    assert all(s.local_batch_size == 8 // process_count for s in local_streams)
    for step in range(10):
        parts = [s.batch(step)["y"] for s in local_streams]
        assert all(len(p) == 8 // process_count for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), global_stream.batch(step)["y"])
        assert len(np.unique(np.concatenate(parts))) == 8


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an int"),
        ({"batch_size": 11}, ValueError, "exceeds the 10 examples"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"batch_size": 6, "process_count": 4}, ValueError, "not divisible by process_count"),
        ({"process_index": 2, "process_count": 2}, ValueError, "process_index must be in 0..1"),
        ({"process_count": 2, "drop_remainder": False}, ValueError, "drop_remainder=True"),
        ({"process_count": 0}, ValueError, "process_count must be >= 1"),
    ],
)
def test_invalid_arguments(kwargs, error, message):
    arguments = {"batch_size": 4, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        BatchStream(np.arange(10), **arguments)


def test_invalid_arrays_and_steps():
    with pytest.raises(ValueError, match="same first dimension"):
        BatchStream({"x": np.zeros(5), "y": np.zeros(6)}, 2, 0)
    with pytest.raises(ValueError, match="leading example axis"):
        BatchStream(np.float32(1.0), 1, 0)
    with pytest.raises(ValueError, match="zero examples"):
        BatchStream(np.zeros((0, 3)), 1, 0, drop_remainder=False)
    assert BatchStream(np.arange(3), 5, 0, drop_remainder=False).steps_per_epoch == 1
    stream = BatchStream(np.arange(10), 2, 0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        stream.batch(-1)
    with pytest.raises(ValueError):
        stream.permutation(0)[0] = 3  # read-only: a caller cannot corrupt later batches


def test_eval_batches_in_order_with_partial_last_batch():
    data = _data(10)
    batches = list(eval_batches(data, 4))
    assert [len(b["y"]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in batches]), data["y"])
    # Size-weighted batch means give the dataset mean.
    weighted = sum(b["x"].mean() * len(b["y"]) for b in batches) / 10
    assert weighted == pytest.approx(data["x"].mean())


def test_eval_batches_padded():
    data = _data(10)
    items = list(eval_batches(data, 4, pad=True))
    assert all(batch["x"].shape == (4, 3) for batch, _ in items)
    masks = np.concatenate([mask for _, mask in items])
    assert masks.sum() == 10 and masks.tolist() == [True] * 10 + [False] * 2
    last, _ = items[-1]
    np.testing.assert_array_equal(last["y"], [8, 9, 9, 9])
    weighted = sum((batch["x"].mean(axis=1) * mask).sum() for batch, mask in items) / 10
    assert weighted == pytest.approx(data["x"].mean())


def test_eval_batches_validates_eagerly():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        eval_batches(np.arange(3), 0)
    with pytest.raises(ValueError, match="same first dimension"):
        eval_batches((np.zeros(3), np.zeros(4)), 2)
