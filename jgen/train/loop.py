"""The training loop shared by every model family.

`fit` runs an `Objective` on a `Dataset`: seeded, resumable batches; the jitted step of
`jgen.train.step` (data-parallel over every device of every process when ``data_parallel``); a
progress bar; metrics to ``workdir/metrics.jsonl`` and the console; evaluation on the whole test
split; orbax checkpoints with resume (on any number of devices); a checkpoint on SIGINT/SIGTERM;
figures at the end. Its parts live beside it: resume.py (the workdir, the resume policy, the
restore), evaluation.py, logbook.py (metrics records and console), signals.py (stop signals),
checkpoint.py; this module holds the loop itself (`fit` and `_train`) and the run's state at
step 0.

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
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jgen.data import BatchStream, Dataset
from jgen.parallel.distributed import is_primary
from jgen.parallel.mesh import data_mesh, replicated_sharding, shard_batch
from jgen.train.checkpoint import Checkpointer
from jgen.train.evaluation import Evaluator, evaluate_dataset
from jgen.train.logbook import Logbook, format_metrics, mean_metrics
from jgen.train.members import member_state, stack_states, with_member_scale
from jgen.train.resume import (
    ResumeCheck,
    ResumeError,
    ResumePolicy,
    prepare_workdir,
    restore_latest,
)
from jgen.train.signals import StopSignal
from jgen.train.step import (
    GUARDS,
    Objective,
    TrainState,
    make_train_step,
    player_schedule,
)
from jgen.validation import check_choice, check_dataset, check_number

__all__ = [
    "FitResult",
    "ResumeError",
    "TrainConfig",
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
    layer's: `jgen.experiment.resume_check`), a `ResumeError` names the settings of
    ``run_config`` that differ from the saved config in a way the checkpoint cannot follow, and
    the policy's warnings are printed when the run resumes.
    The dataset is checked first, on the host (`jgen.validation.check_dataset`: non-empty
    splits, finite continuous data, discrete levels in range, batch_size <= the train split).
    """
    check_dataset(dataset, batch_size=config.batch_size)
    primary = is_primary()
    workdir = None if workdir is None else Path(workdir)
    check = ResumeCheck()
    if workdir is not None:
        check = prepare_workdir(
            workdir, run_config, resume=resume, policy=resume_policy, primary=primary
        )
    mesh = training_mesh(config)
    train_arrays = dataset.arrays("train")
    state, eval_key = initial_run_state(objective, train_arrays, tx, config)
    if mesh is not None:
        state = jax.device_put(state, replicated_sharding(mesh))
    members = len(config.members) > 1
    evaluator = Evaluator(
        objective.evaluate, dataset.arrays("test"), key=eval_key,
        batch_size=config.eval_batch_size, mesh=mesh, members=members,
    )  # fmt: skip
    log = Logbook(workdir, primary=primary)
    checkpointer = Checkpointer(workdir) if workdir is not None else None
    try:
        state = restore_latest(
            checkpointer, state, workdir=workdir, resume=resume, steps=config.steps,
            check=check, log=log,
        )  # fmt: skip
        log.begin(int(jax.device_get(state.step)))
        state, stopped = _train(
            objective, train_arrays, config, state, mesh, checkpointer, log, evaluator
        )
        if checkpointer is not None:
            checkpointer.save(state)
        if stopped is None:
            _evaluate(evaluator, state, int(jax.device_get(state.step)), log)
            if on_end is not None and primary:
                on_end(_figure_state(state, members), workdir)
    finally:
        if checkpointer is not None:
            checkpointer.close()  # waits for an asynchronous save to finish
    if stopped:
        log.warn(stopped)
    return FitResult(
        state, log.history, evaluator.metrics, workdir, stopped, evaluator.member_metrics
    )


def _train(
    objective: Objective,
    train_arrays,
    config: TrainConfig,
    state: TrainState,
    mesh,
    checkpointer: Checkpointer | None,
    log: Logbook,
    evaluator: Evaluator,
) -> tuple[TrainState, str | None]:
    """The loop: from the state's step to ``config.steps``, one train step per batch, with the
    periodic logging, non-finite checks, evaluations and checkpoints of ``config`` and the stop
    signals. Returns the state and why the run stopped early (None: it did not)."""
    start = int(jax.device_get(state.step))
    batch_of = _batches(train_arrays, config, mesh)
    train_step = run_train_step(objective, config, mesh)
    schedule = player_schedule(objective)
    players = None if schedule is None else schedule[0]
    # Simulated CPU devices share one host thread pool: if a later step's collectives are
    # dispatched while an earlier step is still running, its participants can occupy every
    # thread and deadlock the earlier step's all-reduce. Accelerators have a stream per device
    # and keep full asynchronous dispatch.
    sync_each_step = mesh is not None and mesh.size > 1 and mesh.devices.flat[0].platform == "cpu"
    # The longest streak is kept on the device; reading it at least every max_nonfinite_steps
    # steps (and at every log) catches every streak without a host sync per step.
    check_every = config.max_nonfinite_steps
    window: list[dict[str, jax.Array]] = []
    t0 = time.perf_counter()
    bar = tqdm(
        total=config.steps, initial=start, disable=not (config.progress and log.primary),
        desc="train", unit="step",
    )  # fmt: skip
    with StopSignal(multi_process=jax.process_count() > 1) as stop, bar:
        for step in range(start, config.steps):
            state, metrics = train_step(state, batch_of(step))
            if sync_each_step:
                jax.block_until_ready(metrics)
            bar.update(1)
            done = step + 1
            last = done == config.steps
            logging = bool(config.log_every) and (done % config.log_every == 0 or last)
            if config.log_every:
                window.append(metrics)
            if logging:
                record = {"step": done, "split": "train", **mean_metrics(window, players)}
                record["steps_per_s"] = len(window) / (time.perf_counter() - t0)
                window, t0 = [], time.perf_counter()
                log.record(record)
                bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss",) if k in record})
            if logging or (check_every and done % check_every == 0) or last:
                stopped = _nonfinite_stop(state, config, done)
                if stopped:
                    return state, stopped
            if config.eval_every and done % config.eval_every == 0 and not last:
                _evaluate(evaluator, state, done, log)
            if checkpointer and config.checkpoint_every and done % config.checkpoint_every == 0:
                checkpointer.save(state)
            stopped = stop.stop_message(done, last)
            if stopped:
                return state, stopped
    return state, None


def _batches(train_arrays, config: TrainConfig, mesh) -> Callable[[int], Any]:
    """``batch_of(step)``: this process's rows of global batch ``step`` ((K, B, ...) for K
    vmapped members, each from its own seeded stream), placed on the mesh."""
    members = len(config.members) > 1
    process = dict(process_index=jax.process_index(), process_count=jax.process_count())
    streams = [
        BatchStream(train_arrays, config.batch_size, seed=seed, **process)
        for seed, _ in config.members
    ]

    def batch_of(step: int):
        if members:
            batch = jax.tree.map(lambda *xs: np.stack(xs), *[st.batch(step) for st in streams])
        else:
            batch = streams[0].batch(step)
        return batch if mesh is None else shard_batch(batch, mesh, batch_axis=int(members))

    return batch_of


def _evaluate(evaluator: Evaluator, state: TrainState, step: int, log: Logbook) -> None:
    log.record(evaluator(state, step))
    log.say(f"[eval step {step}] " + format_metrics(evaluator.metrics))


def _nonfinite_stop(state: TrainState, config: TrainConfig, done: int) -> str | None:
    """Why the run stops after step ``done`` for non-finite steps (None: it goes on)."""
    longest = int(np.max(jax.device_get(state.longest_nonfinite_streak)))
    if config.max_nonfinite_steps and longest >= config.max_nonfinite_steps:
        return (
            f"stopped at step {done}: {longest} consecutive steps with a non-finite loss, "
            "gradient or update (they were skipped, so the checkpoint written now holds the "
            "last good parameters)"
        )
    return None


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


def _figure_state(state: TrainState, members: bool) -> TrainState:
    """The state figures are drawn from: member 0 of vmapped seeds; in a multi-process run, a
    host copy (the primary process computes figures alone, which it cannot do on arrays that
    span other processes' devices)."""
    if members:
        state = member_state(state, 0)
    if jax.process_count() > 1:
        state = jax.device_get(state)
    return state
