"""Benchmark hygiene shared by every script in ``benchmarks/``.

**Thread settings.** Importing this module sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set)
before any torch import: torch's OpenMP workers then sleep between parallel regions instead of
spin-waiting, which on an oversubscribed machine inflates torch's times by up to ~10x.
`configure_torch` pins torch's intra-op threads to the cores this process may use
(``os.sched_getaffinity``) once per process; XLA's CPU client sizes its own thread pool to the
machine. The settings actually used are recorded with every result (`thread_settings`), and each
timed row reports its CPU time / wall time: the number of cores that library really kept busy.

**Timing.** A `Workload` owns a jitted step ``step(carry) -> (carry, loss)`` and its carry (the
train state). Timing N steps runs them back to back (JAX dispatches asynchronously) and blocks on
the final carry and loss. `interleaved_step_times` times several workloads round-robin (repeat
r starts one workload later than repeat r-1) so that a slow phase of the machine hits every
workload alike; `calibrate_steps` sizes N so that a window lasts ``target_seconds`` for the
slowest workload. `spread` summarises the repeats: median, quartiles, IQR, min.

**Load and the publishable flag.** `LoadMonitor` samples the 1-minute load average and the
machine's busy CPU time (``/proc/stat``) every ``interval`` seconds while a benchmark runs, and
subtracts this process's own CPU time to get the CPU time other processes took. A run is
*publishable* only if all of

- the 1-minute load average before the run was at most ``QUIET_LOAD_PER_CORE`` x cores,
- the 1-minute load average sampled during the run never exceeded cores + ``LOAD_MARGIN``
  (this process may keep every core busy; anything above means others competed),
- other processes used at most ``MAX_OTHER_CPU_SHARE`` of the machine's CPU time over the run.

Otherwise the record says ``"publishable": false`` with the reasons. `write_record` writes a JSON
run record: command, config, commit, date, hardware, load, versions, thread settings, metrics.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the first torch import

__all__ = [
    "LOAD_MARGIN",
    "MAX_OTHER_CPU_SHARE",
    "QUIET_LOAD_PER_CORE",
    "LoadMonitor",
    "Workload",
    "calibrate_steps",
    "configure_torch",
    "cpu_cores",
    "environment",
    "interleaved_step_times",
    "median",
    "spread",
    "thread_settings",
    "time_first_call",
    "wait_for_quiet",
    "write_record",
]

QUIET_LOAD_PER_CORE = 0.5
LOAD_MARGIN = 0.5
MAX_OTHER_CPU_SHARE = 0.10
REPO = Path(__file__).resolve().parents[1]


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


# Threads -------------------------------------------------------------------------------------


_torch_settings: dict[str, Any] = {}


def configure_torch() -> dict[str, Any]:
    """Pin torch's intra-op threads to this process's cores (once); returns the settings."""
    import torch

    if not _torch_settings:
        torch.set_num_threads(cpu_cores())
        _torch_settings.update(
            torch_num_threads=torch.get_num_threads(),
            torch_num_interop_threads=torch.get_num_interop_threads(),
        )
    return dict(_torch_settings)


def thread_settings() -> dict[str, Any]:
    """The thread-related settings of this process (torch's only once `configure_torch` ran)."""
    env = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
    return {
        "cores": cpu_cores(),
        **{name: os.environ.get(name) for name in env},
        **_torch_settings,
    }


# Timing --------------------------------------------------------------------------------------


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

        The process CPU time of the same interval (all threads) is kept in ``last_cpu_seconds``.
        """
        import jax

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


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """Median, quartiles, inter-quartile range and min of ``values`` (times ``scale``)."""
    v = sorted(scale * x for x in values)
    q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else (v[0],) * 3
    return {"median": statistics.median(v), "q1": q1, "q3": q3, "iqr": q3 - q1, "min": v[0]}


def timed_row(name: str, wall: Sequence[float], cpu: Sequence[float]) -> dict[str, Any]:
    """The timing columns of one workload's row: ms per step (spread), CPU ms, cores used."""
    wall_ms, cpu_ms = spread(wall, 1e3), spread(cpu, 1e3)
    return {
        "model": name,
        "median_ms_per_step": wall_ms["median"],
        "ms_per_step": wall_ms,
        "repeat_ms_per_step": [1e3 * v for v in wall],
        "median_cpu_ms_per_step": cpu_ms["median"],
        "cpu_ms_per_step": cpu_ms,
        "cores_used": cpu_ms["median"] / wall_ms["median"],
    }


# Load ----------------------------------------------------------------------------------------


def _busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (``/proc/stat``), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


_clock = time.perf_counter  # the load monitor's clock (a test fakes it)


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_quiet(
    max_wait_s: float = 180.0, log: Callable[[str], None] = print, poll_s: float = 5.0
) -> float:
    """Wait (up to ``max_wait_s``) until the 1-minute load is quiet; returns the last value."""
    limit = QUIET_LOAD_PER_CORE * cpu_cores()
    deadline = time.monotonic() + max_wait_s
    load = _load1()
    while load > limit and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: 1-min load {load} > {limit}")
        time.sleep(poll_s)
        load = _load1()
    return load


class LoadMonitor:
    """Samples the load while a benchmark runs (a daemon thread); see the module docstring.

    ``with LoadMonitor() as monitor: ...`` then ``monitor.summary()``.
    """

    def __init__(self, interval: float = 2.0, max_load: float | None = None):
        self.interval = interval
        self.max_load = cpu_cores() + LOAD_MARGIN if max_load is None else max_load
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((round(_clock() - self._start, 1), _load1()))

    def __enter__(self) -> LoadMonitor:
        self.load_before = [round(v, 2) for v in os.getloadavg()]
        self._start = _clock()
        self._busy_start, self._own_start = _busy_cpu_seconds(), _own_cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = _clock() - self._start
        self.load_after = [round(v, 2) for v in os.getloadavg()]
        busy = _busy_cpu_seconds()
        own = _own_cpu_seconds() - self._own_start
        self.other_cpu_share = (
            None
            if busy is None or self._busy_start is None
            else max(0.0, (busy - self._busy_start) - own) / (self.wall_s * os.cpu_count())
        )

    def summary(self) -> dict[str, Any]:
        """Load before/after/max, other processes' CPU share, and the publishable verdict."""
        cores = cpu_cores()
        peak = max([load for _, load in self.samples] + [self.load_after[0]])
        reasons = []
        if self.load_before[0] > QUIET_LOAD_PER_CORE * cores:
            reasons.append(
                f"1-min load before the run {self.load_before[0]} > "
                f"{QUIET_LOAD_PER_CORE} x {cores} cores"
            )
        if peak > self.max_load:
            reasons.append(f"1-min load reached {peak} during the run (> {self.max_load})")
        share = self.other_cpu_share
        if share is not None and share > MAX_OTHER_CPU_SHARE:
            reasons.append(
                f"other processes used {share:.0%} of the machine's CPU time "
                f"(> {MAX_OTHER_CPU_SHARE:.0%})"
            )
        return {
            "before": self.load_before,
            "after": self.load_after,
            "max_load1_during": peak,
            "load1_samples": self.samples,
            "other_cpu_share": None if share is None else round(share, 4),
            "wall_s": round(self.wall_s, 1),
            "thresholds": {
                "quiet_load_before": QUIET_LOAD_PER_CORE * cores,
                "max_load1_during": self.max_load,
                "max_other_cpu_share": MAX_OTHER_CPU_SHARE,
            },
            "publishable": not reasons,
            "not_publishable_because": reasons,
        }


# Environment and records ---------------------------------------------------------------------

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "diffrax", "equinox", "distrax", "flowjax")
_PACKAGES += ("numpy", "torch", "torchdiffeq", "zuko", "nflows")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def hardware() -> dict[str, Any]:
    import jax

    device = jax.devices()[0]
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_available": cpu_cores(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "num_devices": jax.device_count(),
    }


def environment() -> dict[str, Any]:
    """Hardware, package versions and thread settings of this process."""
    return {"hardware": hardware(), "versions": versions(), "threads": thread_settings()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None


def write_record(
    path: Path,
    *,
    config: dict[str, Any],
    metrics: dict[str, Any],
    load: dict[str, Any],
    command: str | None = None,
) -> dict[str, Any]:
    """Write a JSON run record (and return it): command, config, commit, date, hardware, load,
    versions, thread settings, metrics, and the publishable flag from ``load``."""
    env = environment()
    record = {
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "config": config,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": env["hardware"],
        "load_average": load,
        "publishable": load["publishable"],
        "versions": env["versions"],
        "threads": env["threads"],
        "metrics": metrics,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    return record


def load_line(load: dict[str, Any]) -> str:
    """One markdown line on the load and the verdict, for the tables."""
    verdict = (
        "publishable"
        if load["publishable"]
        else "NOT PUBLISHABLE: " + "; ".join(load["not_publishable_because"])
    )
    share = load["other_cpu_share"]
    other = "" if share is None else f", other processes {share:.0%} of the CPU"
    return (
        f"Load (1-min) {load['before'][0]} before, max {load['max_load1_during']} during, "
        f"{load['after'][0]} after{other}: {verdict}."
    )
