"""Evaluation on a whole split: exact means of an objective's per-example metrics over every
example (the last batch is padded and masked), on one device, data-parallel over a mesh (each
process loads its rows), or for every vmapped member of a stacked state."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jgen.data import eval_batches
from jgen.parallel.mesh import local_rows, shard_batch
from jgen.train.step import TrainState, make_eval_step

__all__ = ["Evaluator", "evaluate_dataset", "member_summary"]


def evaluate_dataset(
    eval_step: Callable,
    state: TrainState,
    arrays: dict[str, np.ndarray],
    *,
    batch_size: int,
    key: jax.Array,
    mesh=None,
) -> dict[str, float]:
    """Exact means over every example of ``arrays`` of the per-example metrics of ``eval_step``."""
    means = metric_means(eval_step, state, arrays, batch_size=batch_size, key=key, mesh=mesh)
    return {name: float(value) for name, value in means.items()}


def metric_means(eval_step, state, arrays, *, batch_size, key, mesh, members=None):
    """Per-metric means over the examples: scalars, or (K,) arrays with ``members = K`` (a
    stacked state, ``eval_step`` of ``make_eval_step(..., members=True)``, one key per member)."""
    n = len(next(iter(arrays.values())))
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    if mesh is not None:
        batch_size = math.ceil(batch_size / mesh.size) * mesh.size
    batch_size = min(batch_size, n if mesh is None else math.ceil(n / mesh.size) * mesh.size)
    expected = (batch_size,) if members is None else (members, batch_size)
    fold = jax.random.fold_in if members is None else jax.vmap(jax.random.fold_in, (0, None))
    # This process's rows of every batch only; the metrics come back replicated, for every row.
    rows = None if mesh is None else local_rows(batch_size, mesh)
    sums: dict[str, np.ndarray] = {}
    for i, (batch, mask) in enumerate(eval_batches(arrays, batch_size, pad=True)):
        weight = mask.astype(np.float64)
        if mesh is not None:
            batch = shard_batch(jax.tree.map(lambda x, rows=rows: x[rows], batch), mesh)
        per_example = jax.device_get(eval_step(state, batch, fold(key, i)))
        for name, values in per_example.items():
            values = np.asarray(values, np.float64)
            if values.shape != expected:
                raise ValueError(
                    f"evaluate must return per-example metrics of shape {expected}; "
                    f"{name!r} has shape {values.shape}"
                )
            sums[name] = sums.get(name, 0.0) + np.sum(values * weight, axis=-1)
    return {name: total / n for name, total in sums.items()}


def member_summary(member_metrics: list[dict[str, float]]) -> dict[str, float]:
    """Mean and spread over members: ``name`` (mean) and ``name/std`` (sample std, ddof=1)."""
    summary = {}
    for name in member_metrics[0]:
        values = np.asarray([m[name] for m in member_metrics])
        summary[name] = float(np.mean(values))
        summary[f"{name}/std"] = float(np.std(values, ddof=1))
    return summary


class Evaluator:
    """The loop's evaluation: ``evaluator(state, step)`` returns the test record of step
    ``step`` (``{'step', 'split': 'test', metrics..., 'members': [...] with members}``) and
    keeps the latest summary metrics (`metrics`) and, with vmapped members, each member's
    (`member_metrics`)."""

    def __init__(self, evaluate, arrays, *, key, batch_size: int, mesh=None, members=False):
        self.arrays, self.key, self.mesh, self.members = arrays, key, mesh, members
        self.batch_size = batch_size
        self.step = make_eval_step(evaluate, mesh=mesh, members=members)
        self.metrics: dict[str, float] = {}
        self.member_metrics: list[dict[str, float]] | None = None

    def __call__(self, state: TrainState, step: int) -> dict[str, Any]:
        common = dict(batch_size=self.batch_size, key=self.key, mesh=self.mesh)
        if not self.members:
            self.metrics = evaluate_dataset(self.step, state, self.arrays, **common)
            return {"step": step, "split": "test", **self.metrics}
        count = len(self.key)
        means = metric_means(self.step, state, self.arrays, members=count, **common)
        self.member_metrics = [
            {name: float(v[k]) for name, v in means.items()} for k in range(count)
        ]
        self.metrics = member_summary(self.member_metrics)
        return {"step": step, "split": "test", **self.metrics, "members": self.member_metrics}
