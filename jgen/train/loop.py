"""The training loop shared by every model family.

`fit` runs an `Objective` on a `Dataset`: seeded, resumable batches; the jitted step of
`jgen.train.step` (data-parallel over every device of every process when ``data_parallel``); a
progress bar; metrics to ``workdir/metrics.jsonl`` and the console; evaluation on the whole test
split; orbax checkpoints with resume (on any number of devices); a checkpoint on SIGINT/SIGTERM;
figures at the end.

Multi-host (`jgen.parallel.distributed`): every process runs `fit` with the same arguments. Each
loads only its rows of every global batch, all take part in steps, evaluation and checkpoint
saves, and only process 0 writes the config, metrics, console output and figures. A stop signal
received by any process stops all of them at the same step.

Vmapped seeds (``TrainConfig.num_seeds = K > 1``): the K runs with seeds ``seed, ..., seed + K - 1``
train as one compiled program (`jgen.train.members`); the logged train metrics are means over the
members, evaluation reports the mean and the standard deviation over members (``<name>/std``) and
every member's values, and figures and samples come from member 0.

Exact resume: the batch of step t is a pure function of (seed, t) and the step key is
fold_in(key, t), so a run resumed from the checkpoint of step t continues as if uninterrupted.

Multi-player objectives (``players`` and ``schedule``, see `jgen.train.step`) and the moving
average of the parameters (``TrainConfig.ema_decay``) go through the same loop: the logged mean
of a ``<player>/...`` metric is over that player's steps of the window; evaluation uses the
moving average when there is one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jgen.data import BatchStream, Dataset, eval_batches
from jgen.parallel.distributed import agree, barrier, is_primary
from jgen.parallel.mesh import data_mesh, local_rows, replicated_sharding, shard_batch
from jgen.train.checkpoint import Checkpointer, atomic_write_text, load_config, save_config
from jgen.train.members import member_state, stack_states, with_member_scale
from jgen.train.step import (
    GUARDS,
    Objective,
    TrainState,
    make_eval_step,
    make_train_step,
    player_schedule,
)
from jgen.validation import check_choice, check_dataset, check_number

__all__ = [
    "FitResult",
    "ResumeError",
    "TrainConfig",
    "dataset_arrays",
    "evaluate_dataset",
    "fit",
    "initial_run_state",
    "initial_state",
    "run_keys",
    "run_train_step",
    "training_mesh",
]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Loop settings. Every ``*_every`` is in steps; 0 disables the periodic action.

    ``ema_decay``: keep an exponential moving average of the parameters with this decay (0, the
    default, keeps none); evaluation, figures and sampling then use the average.
    ``data_parallel``: split every batch over the devices of a ``('data',)`` mesh;
    ``num_devices``: how many of the devices (0, the default: all of every process).
    ``num_seeds``: train the runs of seeds ``seed .. seed + num_seeds - 1`` together, vmapped.
    ``learning_rate_scales``: instead, train one member per scale s, each the run whose updates
    are scaled by s (the learning rate times s), together, vmapped, from the same seed.
    ``nonfinite_guard``: how the step skips a non-finite update, ``'select'`` (the default: a
    `jnp.where` per leaf fused into the update) or ``'cond'`` (the check in a `lax.cond`; see
    `jgen.train.step.make_train_step`).
    """

    steps: int
    batch_size: int
    seed: int = 0
    log_every: int = 100
    eval_every: int = 0
    eval_batch_size: int = 1000
    checkpoint_every: int = 0
    max_nonfinite_steps: int = 20
    data_parallel: bool = True
    progress: bool = True
    ema_decay: float = 0.0
    num_devices: int = 0
    num_seeds: int = 1
    learning_rate_scales: tuple[float, ...] = ()
    nonfinite_guard: str = "select"

    def __post_init__(self):
        for name in (
            "steps", "batch_size", "seed", "log_every", "eval_every", "eval_batch_size",
            "checkpoint_every", "max_nonfinite_steps", "num_devices", "num_seeds",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"TrainConfig.{name} must be an int, got {value!r}")
        for name in ("steps", "batch_size", "eval_batch_size", "num_seeds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in (
            "seed", "log_every", "eval_every", "checkpoint_every", "max_nonfinite_steps",
            "num_devices",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        decay = self.ema_decay
        if isinstance(decay, bool) or not isinstance(decay, int | float):
            raise TypeError(f"TrainConfig.ema_decay must be a float, got {decay!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {decay}")
        check_choice(self.nonfinite_guard, "nonfinite_guard", GUARDS, owner="TrainConfig")
        scales = self.learning_rate_scales
        if not isinstance(scales, tuple | list):
            raise TypeError(f"learning_rate_scales must be a tuple of numbers, got {scales!r}")
        for value in scales:
            check_number(value, "every learning_rate_scales value", owner="TrainConfig")
        object.__setattr__(self, "learning_rate_scales", tuple(float(v) for v in scales))
        if scales and self.num_seeds > 1:
            raise ValueError(
                "set either num_seeds > 1 (vmapped seeds) or learning_rate_scales (a vmapped "
                "learning-rate sweep), not both"
            )

    @property
    def members(self) -> list[tuple[int, float | None]]:
        """(seed, learning-rate scale or None) of each vmapped member; one entry: no members."""
        if self.learning_rate_scales:
            return [(self.seed, scale) for scale in self.learning_rate_scales]
        return [(self.seed + k, None) for k in range(self.num_seeds)]


@dataclasses.dataclass
class FitResult:
    state: TrainState
    history: list[dict[str, Any]]
    eval_metrics: dict[str, float]
    workdir: Path | None
    stopped_early: str | None = None
    # With vmapped seeds: each member's final evaluation (eval_metrics holds mean and std).
    member_eval_metrics: list[dict[str, float]] | None = None


def dataset_arrays(dataset: Dataset, split: str) -> dict[str, np.ndarray]:
    """The arrays of one split as a batchable dict (`Dataset.arrays`)."""
    return dataset.arrays(split)


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
    means = _metric_means(eval_step, state, arrays, batch_size=batch_size, key=key, mesh=mesh)
    return {name: float(value) for name, value in means.items()}


def _metric_means(eval_step, state, arrays, *, batch_size, key, mesh, members=None):
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


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The (init, train, eval) keys of a run with this seed; `jgen eval` reuses them."""
    init_key, train_key, eval_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    return init_key, train_key, eval_key


def initial_state(
    objective: Objective, stream: BatchStream, tx, *, seed: int, ema: bool = False
) -> TrainState:
    """The state at step 0 of a run: parameters initialised on the stream's first batch
    (one optimiser state per player for a multi-player objective; a moving average if ``ema``).

    `fit` starts from it (through `initial_run_state`); `jgen eval`/`sample` use it as the
    template a checkpoint restores into
    (`Checkpointer.restore` adds the moving average when the checkpoint has one).
    """
    init_key, train_key, _ = run_keys(seed)
    params, model_state = objective.init(init_key, stream.batch(0))
    players = player_schedule(objective)
    return TrainState.create(
        params=params, model_state=model_state, tx=tx, rng=train_key,
        players=None if players is None else players[0], ema=ema,
    )  # fmt: skip


def initial_run_state(
    objective: Objective, train_arrays, tx, config: TrainConfig
) -> tuple[TrainState, jax.Array]:
    """A run's state at step 0 and its evaluation key: one `initial_state`, or the stacked
    states of its vmapped members (`TrainConfig.members`) and their keys, stacked.

    Every member is initialised on its own global first batch, on every process (data-dependent
    initialisation must not see one process's rows only).
    """
    # One transformation for every member of a learning-rate sweep (its scale lives in the
    # optimiser state), so that the members' states stack.
    shared_tx = with_member_scale(tx, 1.0) if config.learning_rate_scales else tx
    states, keys = [], []
    for seed, scale in config.members:
        stream = BatchStream(train_arrays, config.batch_size, seed=seed)
        member_tx = tx if scale is None else with_member_scale(tx, scale)
        state = initial_state(objective, stream, member_tx, seed=seed, ema=config.ema_decay > 0)
        if scale is not None:
            state = state.replace(tx=_as_state_tx(shared_tx, state))
        states.append(state)
        keys.append(run_keys(seed)[2])
    if len(states) == 1:
        return states[0], keys[0]
    return stack_states(states), np.stack(keys)


def _as_state_tx(tx, state: TrainState):
    """``tx`` in the form `TrainState.create` stores it in ``state`` (``((player, tx), ...)``
    for a multi-player state)."""
    if state.players is None:
        return tx
    return tuple((p, tx[p] if isinstance(tx, Mapping) else tx) for p in state.players)


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so it can checkpoint before exiting."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name
        # A second signal gets the default behaviour (e.g. KeyboardInterrupt): a hung step can
        # still be interrupted.
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _MetricsWriter:
    def __init__(self, workdir: Path | None, *, start_step: int):
        """Appends to ``workdir/metrics.jsonl``, first dropping records past ``start_step``
        (all of them for a fresh run; those a crashed run logged after its last checkpoint)."""
        self.path = None if workdir is None else workdir / "metrics.jsonl"
        if self.path is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= start_step and start_step
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class ResumeError(ValueError):
    """A workdir's checkpoint cannot be resumed under the config asked for."""


#: ``resume_policy(previous, current) -> names of differing settings`` (empty: resumable), e.g.
#: `jgen.experiment.changed_state_settings`; the trainer knows no config sections.
ResumePolicy = Callable[[dict[str, Any], dict[str, Any]], Sequence[str]]


def _check_resumable(
    workdir: Path, run_config: dict[str, Any], policy: ResumePolicy | None
) -> dict[str, Any] | None:
    """Refuse to resume a checkpoint whose saved config ``policy`` finds incompatible with
    ``run_config``. Returns the checkpoint's config (None when there is nothing to resume)."""
    previous = None
    if Checkpointer.has_checkpoint(workdir) and (workdir / "config.json").exists():
        previous = load_config(workdir)
        changed = [] if policy is None else list(policy(previous, run_config))
        if changed:
            raise ResumeError(
                f"{workdir} holds a checkpoint of a run with a different config ("
                f"{', '.join(changed)} differ from {workdir / 'config.json'}); resume it with "
                "the same config, or start over in another workdir (CLI: --workdir or --fresh)"
            )
    return previous


def _resume_messages(start: int, steps: int, workdir: Path, previous: dict[str, Any] | None):
    """What a resumed run tells its user: where it resumes, and whether its length changed
    (which moves every schedule set from the length, e.g. the learning rate's decay)."""
    messages = [f"resuming from step {start} of {steps} ({workdir})"]
    old_steps = ((previous or {}).get("train") or {}).get("steps")
    if old_steps is not None and old_steps != steps:
        messages.append(
            f"warning: the checkpoint's run was {old_steps} steps long and this one is {steps}: "
            "schedules that depend on the length of the run (the learning-rate schedule, built "
            "with total_steps = train.steps) differ from the first part of the run from here on"
        )
    if start >= steps:
        messages.append(f"nothing to train: the checkpoint is at step {start} >= {steps}")
    return messages


def _mean_metrics(
    window: list[dict[str, jax.Array]], players: tuple[str, ...] | None = None
) -> dict[str, float]:
    """Window means; a multi-player ``<player>/...`` metric is averaged over that player's
    steps only (and left out when the player did not step in the window)."""
    host = jax.device_get(window)
    if players is None:
        return {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    means = {}
    for k in host[0]:
        if k == "player":
            continue
        owner = k.partition("/")[0]
        # `player` is a scalar, or one equal value per member under vmapped seeds.
        values = [
            m[k]
            for m in host
            if owner not in players or players[int(np.ravel(m["player"])[0])] == owner
        ]
        if values:
            means[k] = float(np.mean(values))
    return means


def fit(
    objective: Objective,
    dataset: Dataset,
    tx,
    config: TrainConfig,
    *,
    workdir: str | Path | None = None,
    run_config: dict[str, Any] | None = None,
    resume: bool = True,
    resume_policy: ResumePolicy | None = None,
    on_end: Callable[[TrainState, Path | None], None] | None = None,
) -> FitResult:
    """Train ``objective`` on ``dataset`` with the optax transformation ``tx``.

    With a ``workdir``: metrics.jsonl, config.json (``run_config``), checkpoints/ and whatever
    ``on_end`` writes (figures). An existing checkpoint there is resumed unless ``resume=False``,
    whatever the number of devices it was written with; with a ``resume_policy`` (the experiment
    layer's: `jgen.experiment.changed_state_settings`), a `ResumeError` names the settings of
    ``run_config`` that differ from the saved config in a way the checkpoint cannot follow.
    The dataset is checked first, on the host (`jgen.validation.check_dataset`: non-empty
    splits, finite continuous data, discrete levels in range, batch_size <= the train split).
    """
    check_dataset(dataset, batch_size=config.batch_size)
    primary = is_primary()
    workdir = None if workdir is None else Path(workdir)
    previous_config = None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        if run_config is not None:
            if resume:
                previous_config = _check_resumable(workdir, run_config, resume_policy)
            barrier("jgen-fit-config-checked")  # every process has read the old config
            if primary:
                save_config(workdir, run_config)
    mesh = training_mesh(config)
    train_arrays = dataset_arrays(dataset, "train")
    members = len(config.members) > 1
    process = dict(process_index=jax.process_index(), process_count=jax.process_count())
    streams = [
        BatchStream(train_arrays, config.batch_size, seed=seed, **process)
        for seed, _ in config.members
    ]
    schedule = player_schedule(objective)
    state, eval_key = initial_run_state(objective, train_arrays, tx, config)
    if mesh is not None:
        state = jax.device_put(state, replicated_sharding(mesh))

    checkpointer = Checkpointer(workdir) if workdir is not None else None
    if checkpointer is not None and not resume:
        checkpointer.clear()
    resumed = checkpointer is not None and resume and checkpointer.latest_step() is not None
    if resumed:
        state = checkpointer.restore(state)
    start = int(jax.device_get(state.step))
    if resumed and primary:
        for message in _resume_messages(start, config.steps, workdir, previous_config):
            tqdm.write(message, file=sys.stderr)

    train_step = run_train_step(objective, config, mesh)
    # Simulated CPU devices share one host thread pool: if a later step's collectives are
    # dispatched while an earlier step is still running, its participants can occupy every
    # thread and deadlock the earlier step's all-reduce. Accelerators have a stream per device
    # and keep full asynchronous dispatch.
    sync_each_step = mesh is not None and mesh.size > 1 and mesh.devices.flat[0].platform == "cpu"
    eval_step = make_eval_step(objective.evaluate, mesh=mesh, members=members)
    test_arrays = dataset_arrays(dataset, "test")
    writer = _MetricsWriter(workdir if primary else None, start_step=start)
    history: list[dict[str, Any]] = []
    eval_metrics: dict[str, float] = {}
    member_metrics: list[dict[str, float]] | None = None
    stopped: str | None = None

    def step_batch(step: int):
        """This process's rows of global batch ``step`` ((K, B, ...) for K members), placed."""
        if members:
            batch = jax.tree.map(lambda *xs: np.stack(xs), *[st.batch(step) for st in streams])
        else:
            batch = streams[0].batch(step)
        return batch if mesh is None else shard_batch(batch, mesh, batch_axis=int(members))

    def run_eval(step: int) -> dict[str, float]:
        nonlocal member_metrics
        common = dict(batch_size=config.eval_batch_size, mesh=mesh)
        if members:
            means = _metric_means(
                eval_step, state, test_arrays, key=eval_key, members=len(eval_key), **common
            )
            member_metrics = [
                {name: float(v[k]) for name, v in means.items()} for k in range(len(eval_key))
            ]
            metrics = _member_summary(member_metrics)
            record = {"step": step, "split": "test", **metrics, "members": member_metrics}
        else:
            metrics = evaluate_dataset(eval_step, state, test_arrays, key=eval_key, **common)
            record = {"step": step, "split": "test", **metrics}
        writer.write(record)
        history.append(record)
        if primary:
            tqdm.write(f"[eval step {step}] " + _format(metrics))
        return metrics

    def nonfinite_stop(done: int) -> str | None:
        longest = int(np.max(jax.device_get(state.longest_nonfinite_streak)))
        if config.max_nonfinite_steps and longest >= config.max_nonfinite_steps:
            return (
                f"stopped at step {done}: {longest} consecutive steps with a non-finite loss, "
                "gradient or update (they were skipped, so the checkpoint written now holds the "
                "last good parameters)"
            )
        return None

    # The longest streak is kept on the device; reading it at least every max_nonfinite_steps
    # steps (and at every log) catches every streak without a host sync per step.
    check_every = config.max_nonfinite_steps
    # Processes agree on a stop signal every few steps (one small all-gather), not every step.
    multi_process = jax.process_count() > 1
    window: list[dict[str, jax.Array]] = []
    t0 = time.perf_counter()
    bar = tqdm(
        total=config.steps, initial=start, disable=not (config.progress and primary),
        desc="train", unit="step",
    )  # fmt: skip
    try:
        with _StopSignal() as stop, bar:
            for step in range(start, config.steps):
                state, metrics = train_step(state, step_batch(step))
                if sync_each_step:
                    jax.block_until_ready(metrics)
                bar.update(1)
                done = step + 1
                logging = config.log_every and (
                    done % config.log_every == 0 or done == config.steps
                )
                if config.log_every:
                    window.append(metrics)
                if logging:
                    means = _mean_metrics(window, None if schedule is None else schedule[0])
                    record = {"step": done, "split": "train", **means}
                    record["steps_per_s"] = len(window) / (time.perf_counter() - t0)
                    window, t0 = [], time.perf_counter()
                    writer.write(record)
                    history.append(record)
                    bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss",) if k in record})
                if logging or (check_every and done % check_every == 0) or done == config.steps:
                    stopped = nonfinite_stop(done)
                    if stopped:
                        break
                if config.eval_every and done % config.eval_every == 0 and done != config.steps:
                    eval_metrics = run_eval(done)
                if checkpointer and config.checkpoint_every and done % config.checkpoint_every == 0:
                    checkpointer.save(state)
                received = stop.received is not None
                if multi_process:
                    if done % _STOP_AGREEMENT_EVERY and done != config.steps:
                        continue
                    received = agree(received)
                if received:
                    stopped = f"received {stop.received or 'a stop signal on another process'} "
                    stopped += f"at step {done}; checkpoint written"
                    break

        if checkpointer is not None:
            checkpointer.save(state)
        if stopped is None:
            eval_metrics = run_eval(int(jax.device_get(state.step)))
            if on_end is not None and primary:
                on_end(_figure_state(state, members), workdir)
    finally:
        if checkpointer is not None:
            checkpointer.close()  # waits for an asynchronous save to finish
    if stopped and primary:
        tqdm.write(stopped, file=sys.stderr)
    return FitResult(state, history, eval_metrics, workdir, stopped, member_metrics)


# In a multi-process run, how often (in steps) the processes agree on whether to stop.
_STOP_AGREEMENT_EVERY = 10


def run_train_step(objective: Objective, config: TrainConfig, mesh=None) -> Callable:
    """The jitted ``step(state, batch) -> (state, metrics)`` that `fit` runs for ``objective``
    under ``config`` on ``mesh`` (`training_mesh`): its player schedule, moving average and
    vmapped members. Benchmarks time this step (benchmarks/accelerator.py)."""
    schedule = player_schedule(objective)
    return make_train_step(
        objective.loss, mesh=mesh, schedule=None if schedule is None else schedule[1],
        ema_decay=config.ema_decay if config.ema_decay > 0 else None,
        members=len(config.members) > 1, guard=config.nonfinite_guard,
    )  # fmt: skip


def training_mesh(config: TrainConfig):
    """The data mesh of a run (None without data parallelism), with its batch-size check."""
    if not config.data_parallel:
        if jax.process_count() > 1:
            raise ValueError("a multi-process run needs train.data_parallel=True")
        return None
    mesh = data_mesh(num_devices=config.num_devices)
    if config.batch_size % mesh.size:
        raise ValueError(
            f"batch_size ({config.batch_size}) must be divisible by the number of devices "
            f"({mesh.size}) for data-parallel training"
        )
    return mesh


def _member_summary(member_metrics: list[dict[str, float]]) -> dict[str, float]:
    """Mean and spread over members: ``name`` (mean) and ``name/std`` (sample std, ddof=1)."""
    summary = {}
    for name in member_metrics[0]:
        values = np.asarray([m[name] for m in member_metrics])
        summary[name] = float(np.mean(values))
        summary[f"{name}/std"] = float(np.std(values, ddof=1))
    return summary


def _figure_state(state: TrainState, members: bool) -> TrainState:
    """The state figures are drawn from: member 0 of vmapped seeds; in a multi-process run, a
    host copy (the primary process computes figures alone, which it cannot do on arrays that
    span other processes' devices)."""
    if members:
        state = member_state(state, 0)
    if jax.process_count() > 1:
        state = jax.device_get(state)
    return state


def _format(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
