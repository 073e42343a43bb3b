"""Seeded, exactly resumable minibatch streams over in-memory numpy arrays.

``BatchStream.batch(step)`` is a pure function of ``(seed, step)`` (and the stream's settings):
with ``S = steps_per_epoch``, step ``t`` lies in epoch ``e = t // S`` and takes positions
``[(t % S) * B, (t % S + 1) * B)`` of the permutation ``np.random.default_rng([seed, e])
.permutation(n)``. Resuming a run at step ``t`` therefore only needs ``t``: no iterator state has
to be checkpointed, and every epoch visits each example exactly once (except the ``n % B`` left
over when ``drop_remainder=True``, which differ from epoch to epoch).

For data-parallel training over ``P`` processes, every process builds the same stream with its
own ``process_index`` and gets the contiguous slice ``[i * B / P, (i + 1) * B / P)`` of each global
batch of size ``B``; the ``P`` slices partition the global batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["BatchStream", "eval_batches"]

Arrays = Any  # an array, or a dict / tuple / list / NamedTuple of arrays sharing the first dim


def _flatten(arrays: Arrays) -> tuple[list[np.ndarray], Callable[[list[np.ndarray]], Arrays]]:
    """Leaves of the structure and a function rebuilding the structure from new leaves."""
    if isinstance(arrays, Mapping):
        keys = list(arrays)
        return [np.asarray(arrays[k]) for k in keys], lambda leaves: dict(
            zip(keys, leaves, strict=True)
        )
    if isinstance(arrays, tuple) and hasattr(arrays, "_fields"):  # NamedTuple
        return [np.asarray(a) for a in arrays], lambda leaves: type(arrays)(*leaves)
    if isinstance(arrays, tuple | list):
        kind = type(arrays)
        return [np.asarray(a) for a in arrays], lambda leaves: kind(leaves)
    return [np.asarray(arrays)], lambda leaves: leaves[0]


def _num_examples(leaves: list[np.ndarray]) -> int:
    if not leaves:
        raise ValueError("arrays is empty: pass an array or a non-empty dict/tuple of arrays")
    shapes = [leaf.shape for leaf in leaves]
    if any(len(shape) == 0 for shape in shapes):
        raise ValueError(f"every array needs a leading example axis; got shapes {shapes}")
    sizes = {shape[0] for shape in shapes}
    if len(sizes) != 1:
        raise ValueError(f"all arrays must have the same first dimension; got shapes {shapes}")
    return sizes.pop()


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class BatchStream:
    """An endless, shuffled, seeded batch stream whose ``batch(step)`` depends only on ``step``.

    Args:
      arrays: an array, or a dict / tuple / list / NamedTuple of arrays with the same first
        dimension ``n``; batches have the same structure (a dict for any mapping).
      batch_size: the global batch size ``B`` (summed over processes), ``> 0``.
      seed: a non-negative int; epoch ``e`` uses ``default_rng([seed, e]).permutation(n)``.
      drop_remainder: if True (default) each epoch has ``n // B`` full batches (``B <= n``
        required); if False it has ``ceil(n / B)`` and the last one is smaller when ``B`` does
        not divide ``n``.
      process_index, process_count: this process's share of every global batch, the rows
        ``[process_index * B / P, (process_index + 1) * B / P)``; ``B`` must be divisible by
        ``P = process_count`` and ``P > 1`` needs ``drop_remainder=True``.
    """

    def __init__(
        self,
        arrays: Arrays,
        batch_size: int,
        seed: int,
        drop_remainder: bool = True,
        *,
        process_index: int = 0,
        process_count: int = 1,
    ):
        self._leaves, self._rebuild = _flatten(arrays)
        self.num_examples = _num_examples(self._leaves)
        if self.num_examples == 0:
            raise ValueError("cannot batch zero examples")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.seed = _check_int("seed", seed, 0)
        self.drop_remainder = bool(drop_remainder)
        self.process_count = _check_int("process_count", process_count, 1)
        self.process_index = _check_int("process_index", process_index, 0)
        if self.drop_remainder and self.batch_size > self.num_examples:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds the {self.num_examples} examples with "
                "drop_remainder=True (no full batch exists); lower it or set drop_remainder=False"
            )
        if self.process_index >= self.process_count:
            raise ValueError(
                f"process_index must be in 0..{self.process_count - 1}, got {self.process_index}"
            )
        if self.batch_size % self.process_count:
            raise ValueError(
                f"global batch_size {self.batch_size} is not divisible by process_count "
                f"{self.process_count}"
            )
        if self.process_count > 1 and not self.drop_remainder:
            raise ValueError(
                "process_count > 1 needs drop_remainder=True (a partial last batch cannot be "
                "split evenly across processes)"
            )
        self.local_batch_size = self.batch_size // self.process_count
        if self.drop_remainder:
            self.steps_per_epoch = self.num_examples // self.batch_size
        else:
            self.steps_per_epoch = -(-self.num_examples // self.batch_size)
        self._cached_epoch: int | None = None
        self._cached_permutation: np.ndarray | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` visits the examples (a read-only array)."""
        epoch = _check_int("epoch", epoch, 0)
        if epoch != self._cached_epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._cached_permutation = rng.permutation(self.num_examples)
            self._cached_permutation.flags.writeable = False
            self._cached_epoch = epoch
        return self._cached_permutation

    def batch_indices(self, step: int) -> np.ndarray:
        """Indices (into the arrays) of this process's part of global batch ``step``."""
        step = _check_int("step", step, 0)
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size + self.process_index * self.local_batch_size
        stop = start + self.local_batch_size
        return self.permutation(epoch)[start:stop]

    def batch(self, step: int) -> Arrays:
        """Batch number ``step`` (0-based, counted over all epochs), same structure as arrays."""
        indices = self.batch_indices(step)
        return self._rebuild([leaf[indices] for leaf in self._leaves])

    def iterate(self, start_step: int = 0) -> Iterator[Arrays]:
        """Endless iterator over ``batch(start_step)``, ``batch(start_step + 1)``, ..."""
        step = _check_int("start_step", start_step, 0)
        while True:
            yield self.batch(step)
            step += 1

    def __iter__(self) -> Iterator[Arrays]:
        return self.iterate(0)

    def __repr__(self) -> str:
        return (
            f"BatchStream(num_examples={self.num_examples}, batch_size={self.batch_size}, "
            f"seed={self.seed}, drop_remainder={self.drop_remainder}, "
            f"steps_per_epoch={self.steps_per_epoch}, process_index={self.process_index}, "
            f"process_count={self.process_count})"
        )


def eval_batches(arrays: Arrays, batch_size: int, *, pad: bool = False) -> Iterator[Any]:
    """One deterministic pass over the data in order, in batches of ``batch_size``.

    The last batch is included even when partial (it holds ``n - (k - 1) * batch_size`` examples
    for ``k = ceil(n / batch_size)`` batches). To get the dataset mean of a per-example quantity,
    weight each batch's mean by its number of examples: ``sum(mean_b * size_b) / n``; a plain
    average of batch means over-weights a short last batch.

    With ``pad=True`` every item is ``(batch, mask)`` with exactly ``batch_size`` rows (fixed
    shapes, so a jitted function compiles once): the last batch is padded with copies of the final
    example, and ``mask`` (bool, ``(batch_size,)``) is True on the real rows; weight by ``mask``.
    """
    leaves, rebuild = _flatten(arrays)
    num_examples = _num_examples(leaves)
    batch_size = _check_int("batch_size", batch_size, 1)

    def batches() -> Iterator[Any]:
        for start in range(0, num_examples, batch_size):
            stop = min(start + batch_size, num_examples)
            if not pad:
                yield rebuild([leaf[start:stop] for leaf in leaves])
                continue
            indices = np.minimum(np.arange(start, start + batch_size), num_examples - 1)
            mask = np.arange(start, start + batch_size) < num_examples
            yield rebuild([leaf[indices] for leaf in leaves]), mask

    return batches()
