"""A short text summary of a `jax.profiler` trace of a few train steps.

`jax.profiler.trace(dir)` writes ``plugins/profile/<run>/<host>.trace.json.gz`` (Chrome trace
format: complete events ``ph='X'`` with a process id whose ``process_name`` metadata names the
host (``/host:CPU``) or a device (``/device:GPU:0``), microsecond timestamps and durations).
The steps are marked on the host by `jax.profiler.StepTraceAnnotation` (events named after the
annotation, e.g. ``train``). `summarize_trace` reads the newest such file and reports, per
profiled step:

* device events (kernels and copies on ``/device:*`` processes): how many, their total time,
  and the device's busy fraction of the steps' wall time (low: the device waits on the host:
  launches, host syncs, while-loop predicates);
* device-to-host and host-to-device copies (names with ``DtoH`` / ``HtoD``): on a GPU a
  ``lax.while_loop`` whose trip count XLA cannot bound reads its predicate back to the host
  every iteration, so the D→H copies per step count those round trips;
* host-side synchronisation (events named ``*Synchronize*``, ``BlockUntilReady`` or ``wait
  for completion``): the host blocked on the device;
* kernels whose HLO op or name mentions a while loop's condition (``cond``/``compare``/
  ``while``): an estimate of the time in loop predicates;
* the most expensive event names.

On a CPU backend there are no device processes: XLA's thunks run on host threads, and the
summary lists the busiest host event names instead. Nothing here needs a GPU to run.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path
from typing import Any

__all__ = ["find_trace", "format_summary", "summarize_trace"]

_DTOH = re.compile(r"dtoh|devicetohost|d2h", re.IGNORECASE)
_HTOD = re.compile(r"htod|hosttodevice|h2d", re.IGNORECASE)
_SYNC = re.compile(r"synchroni[sz]e|blockuntilready|block_until_ready|wait for completion", re.I)
_PREDICATE = re.compile(r"\bcond|compare|while", re.IGNORECASE)


def find_trace(log_dir: str | Path) -> Path:
    """The newest ``*.trace.json.gz`` under ``log_dir`` (as `jax.profiler.trace` writes)."""
    found = sorted(Path(log_dir).rglob("*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no *.trace.json.gz under {log_dir}")
    return found[-1]


def _events(path: Path) -> tuple[dict[int, str], list[dict[str, Any]]]:
    with gzip.open(path, "rt") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {
        e["pid"]: e.get("args", {}).get("name", "")
        for e in events
        if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
    return names, complete


def summarize_trace(log_dir: str | Path, *, step_name: str = "train", top: int = 12) -> dict:
    """Per-step counts and times of the trace under ``log_dir`` (module docstring)."""
    path = find_trace(log_dir)
    process_names, events = _events(path)
    steps = [e for e in events if e.get("name") == step_name]
    if not steps:
        raise ValueError(f"{path}: no step annotations named {step_name!r}")
    num_steps = len(steps)
    # Dispatch is asynchronous: device work (and XLA's CPU thunks) of the annotated steps runs
    # after their host annotations, up to the block at the end of the trace. The window is
    # everything from the first step's start on, Python-tracer events (``$...``) left out.
    start = min(e["ts"] for e in steps)
    window = [e for e in events if e["ts"] >= start and not e["name"].startswith("$")]
    wall_us = max(e["ts"] + e["dur"] for e in window) - start

    def on_device(e):
        return process_names.get(e["pid"], "").startswith("/device:")

    device = [e for e in window if on_device(e)]
    host = [e for e in window if not on_device(e)]
    copies_dtoh = [e for e in device if _DTOH.search(e["name"])]
    copies_htod = [e for e in device if _HTOD.search(e["name"])]
    kernels = [e for e in device if e not in copies_dtoh and e not in copies_htod]

    def op_text(e):
        args = e.get("args", {})
        return " ".join(str(args.get(k, "")) for k in ("hlo_op", "long_name")) + " " + e["name"]

    predicate = [e for e in kernels if _PREDICATE.search(op_text(e))]
    syncs = [e for e in host if _SYNC.search(e["name"])]
    busy_us = _union_length([(e["ts"], e["ts"] + e["dur"]) for e in kernels + copies_dtoh])

    by_name: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for e in device or host:
        if e.get("name") == step_name:
            continue
        by_name[e["name"]][0] += 1
        by_name[e["name"]][1] += e["dur"]
    busiest = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]

    def per_step(items):
        return dict(count=len(items) / num_steps, ms=sum(e["dur"] for e in items) / 1e3 / num_steps)

    return dict(
        trace=str(path),
        steps=num_steps,
        wall_ms_per_step=wall_us / 1e3 / num_steps,
        device_processes=sorted({process_names.get(e["pid"], "?") for e in device}),
        kernels=per_step(kernels),
        device_busy_fraction=(busy_us / wall_us) if device and wall_us > 0 else None,
        copies_device_to_host=per_step(copies_dtoh),
        copies_host_to_device=per_step(copies_htod),
        predicate_kernels=per_step(predicate),
        host_syncs=per_step(syncs),
        busiest=[
            dict(name=n, count=c / num_steps, ms=t / 1e3 / num_steps) for n, (c, t) in busiest
        ],
    )


def _union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals (several streams)."""
    total, current_end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi <= current_end:
            continue
        total += hi - max(lo, current_end)
        current_end = hi
    return total


def format_summary(summary: dict) -> str:
    """The summary as a few lines of text (what the GPU session reads)."""

    def pair(d):
        return f"{d['count']:.1f} per step, {d['ms']:.3f} ms per step"

    busy = summary["device_busy_fraction"]
    lines = [
        f"trace: {summary['trace']}",
        f"steps profiled: {summary['steps']}, wall {summary['wall_ms_per_step']:.3f} ms per step",
        f"device processes: {', '.join(summary['device_processes']) or 'none (CPU backend)'}",
        f"kernels: {pair(summary['kernels'])}",
        "device busy: " + ("n/a" if busy is None else f"{100 * busy:.1f}% of the step's wall time"),
        f"device-to-host copies (while-loop predicates, host reads): "
        f"{pair(summary['copies_device_to_host'])}",
        f"host-to-device copies: {pair(summary['copies_host_to_device'])}",
        f"kernels of loop conditions (cond/compare/while in the op name): "
        f"{pair(summary['predicate_kernels'])}",
        f"host waits on the device (synchronize/wait events): {pair(summary['host_syncs'])}",
        "busiest events (per step):",
    ]
    lines += [
        f"  {b['ms']:9.3f} ms  x{b['count']:7.1f}  {b['name'][:90]}" for b in summary["busiest"]
    ]
    return "\n".join(lines) + "\n"
