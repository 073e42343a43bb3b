"""Timing helpers shared by the benchmarks: first-call (compile) time and interleaved step times.

A `Workload` owns a jitted step ``step(carry) -> (carry, loss)`` and its current carry (the
train state). Timing N steps runs them back to back (JAX dispatches asynchronously) and blocks
on the final carry and loss, so the time covers the device work of all N steps.

`interleaved_step_times` measures several workloads round-robin: repeat r times workload 1, then
2, ..., then the next repeat (starting one workload later each time), so slow phases of a busy
machine hit every workload alike. Each workload's result is the median over the repeats.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax

__all__ = [
    "Workload",
    "calibrate_steps",
    "interleaved_step_times",
    "median",
    "time_first_call",
]


@dataclass
class Workload:
    """A train step and its state: ``step(carry) -> (carry, loss)``; ``info`` is free metadata."""

    name: str
    step: Callable[[Any], tuple[Any, Any]]
    carry: Any
    info: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    last_cpu_seconds: float = 0.0

    def advance(self, num_steps: int) -> float:
        """Run ``num_steps`` steps, wait for the results; returns the wall time in seconds.

        The process CPU time of the same interval (all threads) is kept in ``last_cpu_seconds``:
        on a shared CPU machine it is less disturbed by other processes than the wall time.
        """
        carry, loss = self.carry, None
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(num_steps):
            carry, loss = self.step(carry)
        jax.block_until_ready((carry, loss))
        elapsed = time.perf_counter() - start
        self.last_cpu_seconds = time.process_time() - cpu_start
        self.carry = carry
        self.losses.append(float(loss))
        return elapsed


def time_first_call(workload: Workload) -> float:
    """Seconds of the first step: tracing, compilation and one execution."""
    return workload.advance(1)


def calibrate_steps(
    workloads: Sequence[Workload],
    *,
    target_seconds: float,
    probe_steps: int = 5,
    min_steps: int = 10,
    max_steps: int = 2000,
) -> int:
    """A step count N such that N steps of the slowest workload take about ``target_seconds``.

    Runs ``probe_steps`` steps of each workload (they double as warm-up).
    """
    slowest = max(w.advance(probe_steps) / probe_steps for w in workloads)
    return int(min(max(math.ceil(target_seconds / max(slowest, 1e-9)), min_steps), max_steps))


def interleaved_step_times(
    workloads: Sequence[Workload], *, num_steps: int, repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds per step of every workload in every repeat.

    Returns ``(wall, cpu)``, each ``{name: [seconds per step, one per repeat]}``.
    """
    wall: dict[str, list[float]] = {w.name: [] for w in workloads}
    cpu: dict[str, list[float]] = {w.name: [] for w in workloads}
    for r in range(repeats):
        offset = r % len(workloads)
        for w in (*workloads[offset:], *workloads[:offset]):
            wall[w.name].append(w.advance(num_steps) / num_steps)
            cpu[w.name].append(w.last_cpu_seconds / num_steps)
    return wall, cpu


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
