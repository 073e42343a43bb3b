"""Every model family's train step on whatever backend JAX finds (GPU, TPU or CPU).

For each family's shipped config (the `FAMILIES` table; NSF/Glow configs are added when
``experiments/configs`` has them) the script builds the experiment exactly as ``jgen train``
does (`jgen.experiment.build_experiment`, the trainer's step `jgen.train.loop.run_train_step` on
a one-device mesh) and measures, at the config's batch size B and at 4B and 16B:

* ``trace_s`` / ``compile_s``: tracing + lowering, and XLA compilation (ahead of time);
* ``steps_per_s``: steady state, the median over repeats of N back-to-back steps on
  device-resident batches (two batches drawn with replacement from the train split,
  alternated), timed by `benchmarks/harness.py`;
* memory: ``peak_mib`` (``device.memory_stats()['peak_bytes_in_use']`` after the step's runs,
  where the backend reports it: a process-wide peak, so the rows of one family, run in one
  process with growing batches, each show the peak up to that batch) and XLA's ``temp_mib``
  (the compiled step's working memory) from ``compiled.memory_analysis()``;
* the compiled step's structure: ``while_loops`` (``while`` ops in the optimised HLO: on a GPU
  each iteration of a loop with an unknown trip count reads its predicate back to the host) and
  ``host_callbacks`` (Python callbacks: a host round trip per call);
* for the CNFs, NFE per example of the training solve and its accepted/rejected steps (the
  trainer's metrics, last timed step).

Peers on the same device (`--peers`): the CNF step of ``benchmarks/cnf_step.py`` (jgen's
trainer, jgen per-event and the hand-written diffrax step: FFJORD 2-D, batch 512) and the RealNVP
steps of ``benchmarks/flows.py`` (jgen, distrax, flowjax, the MLP floor; D = 2 and 64, batch
512). Their builders are reused, not copied.

Each family runs in its own process by default (a crash or an out-of-memory error costs one
family, and the memory peaks are per family), with a share of ``--budget`` seconds weighted by
its expected cost; a family skips its larger batches when its share runs out (rows marked
``skipped``; ``--in-process`` runs everything in this process). ``--smoke`` runs the smoke
configs with two tiny batches and two timed steps, on any backend, in seconds (CI).
``--profile DIR`` also writes a `jax.profiler` trace of the FFJORD 2-D step (batch 512; another
family with ``--profile-family``) and its text summary (`benchmarks/profile_summary.py`).
Output: ``accelerator-<backend>.json`` (rows, hardware, versions, load averages, command) and
``accelerator-<backend>.md`` in ``--out``; ``--render A.json B.json`` writes the table of several
runs side by side (e.g. a GPU run next to a CPU run) without measuring anything.

    python benchmarks/accelerator.py [--budget 420] [--families ...] [--peers cnf flows]
                                     [--profile DIR] [--smoke] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness
from benchmarks.harness import Workload

__all__ = ["FAMILIES", "RunSettings", "bench_family", "main", "render_markdown"]

# label -> experiment name (``module`` or ``module:arg``), in the order they run: the
# must-show families first. Weights: a family's share of the budget (CNF solves compile slowly).
FAMILIES = {
    "realnvp_digits": "realnvp_digits",
    "flow_matching_digits": "flow_matching_digits",
    "ffjord_2d": "ffjord_2d:8gaussians",
    "made": "made_digits",
    "gan_2d": "gan_2d:ring8",
    "cgan_digits": "cgan_digits",
    "vae_digits": "vae_digits:planar16",
    "seq2seq": "seq2seq_tasks:reversal",
    "flow_matching_2d": "flow_matching_2d:8gaussians",
    "residual_digits": "residual_digits",
    "ffjord_digits": "ffjord_digits",
}
OPTIONAL_PREFIXES = ("nsf", "glow")  # config modules added when they exist
WEIGHTS = {"ffjord_2d": 3.0, "ffjord_digits": 3.0, "residual_digits": 2.0, "peers:cnf": 3.0}
PEERS = ("cnf", "flows")
MULTIPLIERS = (1, 4, 16)
PROFILE_BATCH = 512
RESULT_STEM = "accelerator"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How much to measure: batch multipliers, seconds per repeat, repeats; smoke configs;
    ``key=value`` config overrides applied to every family (e.g. ``model.solve_jointly=True``)."""

    multipliers: tuple[int, ...] = MULTIPLIERS
    target_seconds: float = 0.5
    repeats: int = 3
    max_steps: int = 2000
    smoke: bool = False
    overrides: tuple[str, ...] = ()  # config overrides for every family (A/B runs)

    @classmethod
    def for_smoke(cls) -> RunSettings:
        return cls(multipliers=(1, 2), target_seconds=0.0, repeats=1, max_steps=2, smoke=True)


# One family ----------------------------------------------------------------------------------


def _experiment(name: str, smoke: bool, overrides: Sequence[str] = ()):
    from jgen.config import load_experiment_config
    from jgen.experiment import build_experiment

    # One device (the benchmark measures one chip), no progress bar.
    overrides = ["train.num_devices=1", "train.progress=False", *overrides]
    return build_experiment(load_experiment_config(name, overrides, smoke=smoke))


def _count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text))


def _hlo_structure(compiled) -> dict[str, int]:
    """``while`` and ``conditional`` ops and Python host callbacks in a compiled step's
    optimised HLO (on a GPU, XLA reads a conditional's predicate back to the host, as it does a
    while loop's)."""
    try:
        text = compiled.as_text()
    except Exception:  # a backend without HLO text
        return {}
    return {
        "while_loops": _count(r"\swhile\(", text),
        "conditionals": _count(r"\sconditional\(", text),
        "host_callbacks": _count(r"python_\w*callback", text),
    }


def _memory(compiled) -> dict[str, float | None]:
    out: dict[str, float | None] = {"temp_mib": None, "argument_mib": None, "peak_mib": None}
    try:
        analysis = compiled.memory_analysis()
        out["temp_mib"] = analysis.temp_size_in_bytes / 2**20
        out["argument_mib"] = analysis.argument_size_in_bytes / 2**20
    except Exception:  # not every backend implements it
        pass
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["peak_mib"] = stats["peak_bytes_in_use"] / 2**20
    return out


def _sample_batches(arrays: dict[str, np.ndarray], batch_size: int, count: int = 2) -> list:
    """``count`` batches of ``batch_size`` rows, drawn with replacement (16B rows may be more
    than the split has)."""
    rng = np.random.default_rng(0)
    n = len(next(iter(arrays.values())))
    return [
        {k: v[idx] for k, v in arrays.items()}
        for idx in (rng.integers(0, n, batch_size) for _ in range(count))
    ]


def _scalar_loss(metrics: dict[str, Any]):
    """The step's loss (``loss``, or the first ``<player>/loss`` of a multi-player step)."""
    if "loss" in metrics:
        return metrics["loss"]
    return next(v for k, v in sorted(metrics.items()) if k.endswith("/loss"))


class _StepRunner:
    """A compiled trainer step as a `Workload`: alternates the device-resident batches and
    keeps the last metrics (NFE of the CNFs)."""

    def __init__(self, compiled, batches):
        self.compiled, self.batches, self.calls, self.metrics = compiled, batches, 0, None

    def __call__(self, state):
        state, metrics = self.compiled(state, self.batches[self.calls % len(self.batches)])
        self.calls += 1
        self.metrics = metrics
        return state, _scalar_loss(metrics)


@dataclasses.dataclass
class _Trainer:
    """What `fit` would run for an experiment: its mesh (one device), train arrays, the
    initial state and the trainer's jitted step."""

    exp: Any
    mesh: Any
    arrays: dict[str, np.ndarray]
    state: Any
    step: Callable

    @classmethod
    def of(cls, exp) -> _Trainer:
        from jgen.parallel.mesh import replicated_sharding
        from jgen.train.loop import initial_run_state, run_train_step, training_mesh

        mesh = training_mesh(exp.train)
        arrays = exp.dataset.arrays("train")
        state, _ = initial_run_state(exp.objective, arrays, exp.tx, exp.train)
        if mesh is not None:
            state = jax.device_put(state, replicated_sharding(mesh))
        return cls(exp, mesh, arrays, state, run_train_step(exp.objective, exp.train, mesh))

    def compile(self, batch_size: int):
        """(compiled step, a fresh copy of the initial state, placed batches, trace seconds,
        compile seconds) at ``batch_size``."""
        from jgen.parallel.mesh import shard_batch

        state = jax.tree.map(jnp.copy, self.state)  # the step donates its state
        batches = [
            jax.device_put(b) if self.mesh is None else shard_batch(b, self.mesh)
            for b in _sample_batches(self.arrays, batch_size)
        ]
        start = time.perf_counter()
        lowered = self.step.lower(state, batches[0])
        trace_s = time.perf_counter() - start
        start = time.perf_counter()
        compiled = lowered.compile()
        return compiled, state, batches, trace_s, time.perf_counter() - start


def _num_params(state) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(state.params)))


def _measure(workload: Workload, settings: RunSettings) -> dict[str, Any]:
    """First call, then steady-state seconds per step (median over repeats)."""
    first_s = harness.time_first_call(workload)
    if settings.smoke:
        steps = settings.max_steps
        workload.advance(1)
    else:
        steps = harness.calibrate_steps(
            [workload], target_seconds=settings.target_seconds, probe_steps=3, min_steps=3,
            max_steps=settings.max_steps,
        )  # fmt: skip
    wall, cpu = harness.interleaved_step_times(
        [workload], num_steps=steps, repeats=settings.repeats
    )
    timed = harness.timed_row(workload.name, wall[workload.name], cpu[workload.name])
    del timed["model"]
    return dict(
        **timed, first_step_s=first_s, steps_per_repeat=steps,
        steps_per_s=1e3 / timed["median_ms_per_step"],
        first_loss=workload.losses[0], last_loss=workload.losses[-1],
    )  # fmt: skip


def _solver_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    """NFE and steps per example of the CNF's training solve, from the trainer's metrics."""
    if not metrics:
        return {}
    host = jax.device_get({k: v for k, v in metrics.items() if k in _SOLVER_KEYS})
    return {k: float(np.mean(v)) for k, v in host.items()}


_SOLVER_KEYS = ("nfe", "accepted_steps", "rejected_steps")


def bench_family(
    label: str,
    experiment: str,
    settings: RunSettings,
    *,
    deadline: float = float("inf"),
    emit: Callable[[dict[str, Any]], None] = lambda row: None,
) -> list[dict[str, Any]]:
    """Rows of one family, one per batch multiplier (module docstring). A multiplier is skipped
    when the time left before ``deadline`` (``time.time()``) is under 1.5x what the previous
    one took. ``emit`` receives each row as soon as it is measured."""
    rows: list[dict[str, Any]] = []
    trainer = None
    previous_s = 0.0
    for multiplier in settings.multipliers:
        row: dict[str, Any] = dict(
            family=label, experiment=experiment, model="jgen (trainer)", multiplier=multiplier
        )
        left = deadline - time.time()
        if left > 0 and trainer is None:
            started = time.perf_counter()
            trainer = _Trainer.of(_experiment(experiment, settings.smoke, settings.overrides))
            previous_s = time.perf_counter() - started
        if trainer is not None:
            row["batch"] = trainer.exp.train.batch_size * multiplier
        if left <= 0 or left < 1.5 * previous_s:
            row["status"] = (
                f"skipped (budget: {left:.0f} s left, previous batch took {previous_s:.0f} s)"
            )
        else:
            started = time.perf_counter()
            try:
                row.update(_bench_batch(trainer, row["batch"], settings))
                row["status"] = "ok"
            except Exception as e:  # an OOM or a failure: report, go on
                row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
                traceback.print_exc()
            previous_s = time.perf_counter() - started
        rows.append(row)
        emit(row)
    return rows


def _bench_batch(trainer: _Trainer, batch_size: int, settings: RunSettings) -> dict[str, Any]:
    compiled, state, batches, trace_s, compile_s = trainer.compile(batch_size)
    runner = _StepRunner(compiled, batches)
    workload = Workload("step", runner, state)
    measured = _measure(workload, settings)
    return dict(
        trace_s=trace_s, compile_s=compile_s, num_params=_num_params(state),
        examples_per_s=batch_size * measured["steps_per_s"], **measured,
        **_memory(compiled), **_hlo_structure(compiled), **_solver_metrics(runner.metrics),
    )  # fmt: skip


# Peers ---------------------------------------------------------------------------------------


def bench_peers(
    group: str, settings: RunSettings, models: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The peer steps of ``benchmarks/cnf_step.py`` (``group='cnf'``) or
    ``benchmarks/flows.py`` (``'flows'``; ``models``: a subset of its `MODELS`), timed like
    the families."""
    if group == "cnf":
        workloads, meta = _cnf_peers(settings)
    elif group == "flows":
        workloads, meta = _flow_peers(settings, models)
    else:
        raise ValueError(f"unknown peer group {group!r}; expected one of {PEERS}")
    rows = []
    for w, info in zip(workloads, meta, strict=True):
        row = dict(family=f"peers:{group}", model=w.name, status="ok", **info)
        try:
            row.update(_measure(w, settings))
            row["examples_per_s"] = row["batch"] * row["steps_per_s"]
            row.update({k: v for k, v in w.info.items() if k != "num_params"})
        except Exception as e:
            row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        rows.append(row)
    return rows


def _cnf_peers(settings: RunSettings):
    from benchmarks import cnf_step

    cfg = cnf_step.CNFBenchConfig(batch=PROFILE_BATCH, torch=False)
    if settings.smoke:
        cfg = cnf_step.CNFBenchConfig(batch=16, hidden_dims=(8,), rtol=1e-3, atol=1e-3, torch=False)
    x = cnf_step._data(cfg)
    workloads = cnf_step._workloads(cfg, x, cnf_step._initial_params(cfg, x))
    setting = f"FFJORD 2-D, MLP {cfg.hidden_dims}, dopri5 {cfg.rtol:g}, {cfg.trace} trace"
    return workloads, [dict(batch=cfg.batch, experiment=setting)] * len(workloads)


def _flow_peers(settings: RunSettings, models: Sequence[str] | None = None):
    from benchmarks import flows

    models = flows.MODELS if models is None else models
    cfg = flows.BenchConfig(torch=False, warm_up=False)
    dims = (2, 64)
    if settings.smoke:
        cfg = flows.BenchConfig(batch=16, num_layers=2, hidden_dims=(8, 8), torch=False)
        dims = (3,)
    workloads, meta = [], []
    for dim in dims:
        data = jax.random.normal(jax.random.PRNGKey(cfg.seed + 1), (cfg.batch, dim), jnp.float32)
        for name in models:
            w = flows.BUILDERS[name](dim, data, cfg)
            w.name = f"{name} D={dim}"
            workloads.append(w)
            meta.append(dict(batch=cfg.batch, num_params=w.info["num_params"],
                             experiment=f"RealNVP {cfg.num_layers} layers, D={dim}"))  # fmt: skip
    return workloads, meta


# Profile -------------------------------------------------------------------------------------


def profile_step(
    log_dir: Path, settings: RunSettings, *, family: str = "ffjord_2d", steps: int = 5
) -> str:
    """A `jax.profiler` trace of ``steps`` train steps of ``family`` (FFJORD 2-D by default) at
    batch 512 (the smoke config at its own batch with ``--smoke``) in ``log_dir``, and its text
    summary (also written to ``log_dir/summary.txt``)."""
    from benchmarks.profile_summary import format_summary, summarize_trace

    overrides = [*settings.overrides] + (
        [] if settings.smoke else [f"train.batch_size={PROFILE_BATCH}"]
    )
    exp = _experiment(available_families()[family], settings.smoke, overrides)
    compiled, state, batches, _, _ = _Trainer.of(exp).compile(exp.train.batch_size)
    runner = _StepRunner(compiled, batches)
    for _ in range(3):  # warm-up
        state, loss = runner(state)
    jax.block_until_ready(state)
    log_dir.mkdir(parents=True, exist_ok=True)
    with jax.profiler.trace(str(log_dir)):
        for i in range(steps):
            with jax.profiler.StepTraceAnnotation("train", step_num=i):
                state, loss = runner(state)
        jax.block_until_ready((state, loss))
    text = f"{family} train step, batch {exp.train.batch_size}, {_device_name()}\n"
    text += format_summary(summarize_trace(log_dir))
    (log_dir / "summary.txt").write_text(text)
    return text


# Orchestration -------------------------------------------------------------------------------


def available_families() -> dict[str, str]:
    """`FAMILIES` plus the first experiment of each NSF / Glow config module that exists."""
    from jgen.config import list_experiments

    families = dict(FAMILIES)
    for name in list_experiments():
        stem = name.partition(":")[0]
        if stem.startswith(OPTIONAL_PREFIXES) and stem not in families:
            families[stem] = name
    return families


def _device_name() -> str:
    device = jax.devices()[0]
    return f"{jax.default_backend()} ({getattr(device, 'device_kind', str(device))})"


def _accelerator_versions() -> dict[str, str]:
    """The harness's package versions, the accelerator runtime's version (e.g. CUDA) and
    the jax plugins installed."""
    out = harness.versions()
    for name in ("jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin", "libtpu"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        out["platform_version"] = jax.devices()[0].client.platform_version
    except Exception:  # a backend without it
        pass
    return out


def _run_worker_process(task: str, settings: RunSettings, deadline: float, timeout: float):
    """Run one task (a family label or ``peers:<group>``) in a fresh Python process; returns
    its rows (those written before a timeout or a crash included)."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.jsonl"
        command = [
            sys.executable, str(Path(__file__).resolve()), "--worker", task,
            "--deadline", repr(deadline), "--rows", str(rows_path),
            "--multipliers", *map(str, settings.multipliers),
            "--target-seconds", repr(settings.target_seconds), "--repeats", str(settings.repeats),
        ] + (["--smoke"] if settings.smoke else [])  # fmt: skip
        command += ["--overrides", *settings.overrides] if settings.overrides else []
        status = None
        try:
            result = subprocess.run(command, timeout=timeout, check=False)
            if result.returncode:
                status = f"error: worker exited with {result.returncode}"
        except subprocess.TimeoutExpired:
            status = f"error: worker timed out after {timeout:.0f} s"
        rows = []
        if rows_path.exists():
            rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line]
        if status and not rows:
            rows = [dict(family=task, model="jgen (trainer)", status=status)]
        elif status:
            rows[-1].setdefault("note", status)
        return rows


def _run_task(task: str, families: dict[str, str], settings: RunSettings, deadline: float,
              emit: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:  # fmt: skip
    if task.startswith("peers:"):
        rows = bench_peers(task.partition(":")[2], settings)
        for row in rows:
            emit(row)
        return rows
    return bench_family(task, families[task], settings, deadline=deadline, emit=emit)


def run(
    tasks: Sequence[str],
    settings: RunSettings,
    *,
    budget: float,
    in_process: bool,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every task in order, each with a budget share weighted by `WEIGHTS`."""
    families = available_families()
    end = time.time() + budget
    rows: list[dict[str, Any]] = []
    for i, task in enumerate(tasks):
        left = end - time.time()
        weights = [WEIGHTS.get(t, 1.0) for t in tasks[i:]]
        share = max(left, 0.0) * weights[0] / sum(weights)
        log(f"[{task}] share {share:.0f} s of {left:.0f} s left")
        if left <= 0:
            rows.append(dict(family=task, status="skipped (budget spent)"))
            continue
        deadline = time.time() + share
        if in_process:
            new = _run_task(task, families, settings, deadline, emit=lambda row: None)
        else:
            # The worker stops starting batches at its deadline; the timeout also covers the
            # batch it started last and the process's start-up.
            new = _run_worker_process(task, settings, deadline, timeout=share + 60.0)
        for row in new:
            log(f"  {_row_line(row)}")
        rows += new
    return rows


def _row_line(row: dict[str, Any]) -> str:
    if row.get("status") != "ok":
        where = f"{row.get('family')} {row.get('model', '')} batch {row.get('batch', '')}"
        return f"{where}: {row.get('status')}"
    return (
        f"{row['family']} {row['model']} batch {row['batch']}: {row['steps_per_s']:.1f} steps/s, "
        f"compile {row.get('compile_s', row.get('first_step_s', 0.0)):.1f} s"
    )


# Reports -------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or value == "":
        return ""
    return format(value, spec) if isinstance(value, int | float) else str(value)


def render_markdown(results: Sequence[dict[str, Any]]) -> str:
    """One table for one run; for several runs (e.g. GPU and CPU), steps/s side by side with
    each run's speed-up over the last one."""
    if len(results) == 1:
        return _single_table(results[0])
    return _comparison_table(results)


def _header(record: dict[str, Any]) -> str:
    hw = record["hardware"]
    return (
        f"{hw['backend']} ({hw['device']}, {hw['cpu_count']} CPUs), {record['date']}, jax "
        f"{record['versions'].get('jax')}, commit {record.get('commit')}; `{record['command']}`. "
        + harness.load_line(record["load_average"])
    )


def _single_table(result: dict[str, Any]) -> str:
    lines = [
        _header(result), "",
        "| family | model | batch | steps/s | examples/s | ms/step | compile s | first step s "
        "| peak MiB | XLA temp MiB | while loops | conds | host callbacks | NFE | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for r in result["metrics"]["rows"]:
        lines.append(
            f"| {r.get('family', '')} | {r.get('model', '')} | {r.get('batch', '')} | "
            f"{_fmt(r.get('steps_per_s'))} | {_fmt(r.get('examples_per_s'), ',.0f')} | "
            f"{_fmt(r.get('median_ms_per_step'), '.2f')} | {_fmt(r.get('compile_s'))} | "
            f"{_fmt(r.get('first_step_s'))} | {_fmt(r.get('peak_mib'))} | "
            f"{_fmt(r.get('temp_mib'))} | {_fmt(r.get('while_loops'), 'd')} | "
            f"{_fmt(r.get('conditionals'), 'd')} | "
            f"{_fmt(r.get('host_callbacks'), 'd')} | "
            f"{_fmt(r.get('nfe') or r.get('forward_nfe'))} | "
            f"{r.get('status', '')} |"
        )
    if result["metrics"].get("profile"):
        lines += ["", "Profile:", "", "```", result["metrics"]["profile"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _key(row: dict[str, Any]) -> tuple:
    return (row.get("family"), row.get("model"), row.get("multiplier", row.get("batch")))


def _comparison_table(results: Sequence[dict[str, Any]]) -> str:
    names = [f"{r['hardware']['backend']} {r['hardware']['device']}" for r in results]
    lines = [f"- run {i + 1}: {_header(r)}" for i, r in enumerate(results)] + [""]
    head = "| family | model | batch | " + " | ".join(f"{n} steps/s" for n in names)
    head += " | " + " | ".join(f"{n} / {names[-1]}" for n in names[:-1]) + " |"
    lines += [head, "|---|---|---:|" + "---:|" * (2 * len(names) - 1)]
    by_run = [{_key(r): r for r in res["metrics"]["rows"]} for res in results]
    keys = list(dict.fromkeys(k for run in by_run for k in run))
    for key in keys:
        rows = [run.get(key, {}) for run in by_run]
        rates = [r.get("steps_per_s") if r.get("status") == "ok" else None for r in rows]
        batch = next((r.get("batch") for r in rows if r.get("batch")), "")
        ratios = [
            _fmt(rate / rates[-1], ".1f") + "x" if rate and rates[-1] else "" for rate in rates[:-1]
        ]
        lines.append(
            f"| {key[0]} | {key[1]} | {batch} | " + " | ".join(_fmt(v) for v in rates)
            + " | " + " | ".join(ratios) + " |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


# Command line ---------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--budget",
        type=float,
        default=420.0,
        help="seconds for the whole run (default 420: under 8 minutes on one H100)",
    )
    p.add_argument(
        "--families",
        nargs="*",
        default=None,
        help="family labels (default: all; 'none' for no family)",
    )
    p.add_argument("--peers", nargs="*", default=list(PEERS), help="peer groups: cnf flows")
    p.add_argument("--multipliers", type=int, nargs="+", default=None)
    p.add_argument(
        "--overrides",
        nargs="+",
        default=None,
        help="config overrides for every family, e.g. model.solve_jointly=True",
    )
    p.add_argument("--tag", default="", help="suffix of the result files (A/B runs)")
    p.add_argument("--target-seconds", type=float, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--profile", type=Path, default=None, help="write a step trace here")
    p.add_argument("--profile-family", default="ffjord_2d", help="the family --profile traces")
    p.add_argument("--smoke", action="store_true", help="tiny configs, 2 steps (CI)")
    p.add_argument("--in-process", action="store_true", help="no worker process per family")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument(
        "--render",
        type=Path,
        nargs="+",
        default=None,
        help="measure nothing: write the table of these result JSON files to --out",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)  # fmt: skip


def _settings(args: argparse.Namespace) -> RunSettings:
    settings = RunSettings.for_smoke() if args.smoke else RunSettings()
    updates = {
        "multipliers": None if args.multipliers is None else tuple(args.multipliers),
        "target_seconds": args.target_seconds,
        "repeats": args.repeats,
        "overrides": None if args.overrides is None else tuple(args.overrides),
    }
    return dataclasses.replace(settings, **{k: v for k, v in updates.items() if v is not None})


def _worker_main(args: argparse.Namespace) -> None:
    settings = _settings(args)

    def emit(row):
        with args.rows.open("a") as f:
            f.write(json.dumps(row, default=float) + "\n")

    _run_task(args.worker, available_families(), settings, args.deadline, emit)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = _parse_args(argv)
    if args.worker:
        _worker_main(args)
        return None
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render:
        results = [json.loads(p.read_text()) for p in args.render]
        table = render_markdown(results)
        (args.out / f"{RESULT_STEM}-comparison.md").write_text(table)
        print(table)
        return {"runs": results}
    settings = _settings(args)
    families = available_families()
    chosen = list(families) if args.families is None else [f for f in args.families if f != "none"]
    unknown = sorted(set(chosen) - set(families))
    if unknown:
        raise SystemExit(f"unknown --families {unknown}; known: {sorted(families)}")
    peers = [p for p in args.peers if p != "none"]
    if set(peers) - set(PEERS):
        raise SystemExit(f"unknown --peers {sorted(set(peers) - set(PEERS))}; known: {PEERS}")
    # The must-show families first, then the peers, then the rest.
    first = [f for f in chosen if f in ("realnvp_digits", "flow_matching_digits", "ffjord_2d")]
    tasks = first + [f"peers:{p}" for p in peers] + [f for f in chosen if f not in first]
    command = "python benchmarks/accelerator.py " + " ".join(sys.argv[1:] if argv is None else argv)
    # The backend is not initialised here before the workers ran: on a GPU this process would
    # take most of its memory (JAX preallocates), leaving the workers little.
    print(f"accelerator benchmark: {tasks}, budget {args.budget:.0f} s, {settings}")
    profile_reserve = 0.0 if args.profile is None else min(60.0, 0.15 * args.budget)
    with harness.LoadMonitor() as monitor:
        rows = run(
            tasks, settings, budget=args.budget - profile_reserve, in_process=args.in_process
        )
        profile = None
        if args.profile is not None:
            try:
                profile = profile_step(args.profile, settings, family=args.profile_family)
            except Exception as e:  # the table is still worth writing
                profile = f"profile failed: {type(e).__name__}: {e}"
                traceback.print_exc()
            print(profile)
    stem = f"{RESULT_STEM}-{jax.default_backend()}" + ("-smoke" if args.smoke else "")
    stem += f"-{args.tag}" if args.tag else ""
    config = dict(settings=dataclasses.asdict(settings), budget_s=args.budget, tasks=tasks)
    record = harness.write_record(
        args.out / f"{stem}.json", config=config, load=monitor.summary(), command=command,
        metrics=dict(rows=rows, profile=profile, device_versions=_accelerator_versions()),
    )  # fmt: skip
    table = render_markdown([record])
    (args.out / f"{stem}.md").write_text(table)
    print()
    print(table)
    return record


if __name__ == "__main__":
    main()
