"""The train state, the optimiser recipe and the jitted train / eval steps, shared by every family.

Every model family exposes an `Objective`:

    init(key, batch)                         -> (params, model_state)
    loss(params, model_state, batch, key)    -> (loss, (metrics, model_state))
    evaluate(params, model_state, batch, key) -> metrics          (evaluation mode)

``params`` are the trainable Flax parameters; ``model_state`` holds the model's other Flax
collections (e.g. ``batch_stats``, power-iteration vectors) as a dict, ``{}`` when there are none.
The loss returns the updated state, so stateful layers need no special path in the trainer.
`stateless` adapts the plain ``loss_fn(params, batch, key) -> (loss, metrics)`` form.

One train step: key_t = fold_in(key, t); (loss, aux), g = value_and_grad(loss); an optax update.
A step whose loss, gradient or update (new params, optimiser or model state) is not finite
leaves params, optimiser and model state unchanged,
counts as ``skipped`` in the metrics and lengthens ``nonfinite_streak``;
``longest_nonfinite_streak`` keeps the longest streak so far, so the loop can check it at any
cadence (it stops a run after too many in a row). The same step runs on one device or
data-parallel: with a mesh, the batch is sharded along ``'data'``, the state is replicated, and
the state buffers are donated.

Multi-player objectives (GANs). An objective that declares ``players`` (e.g.
``('discriminator', 'generator')``) and a ``schedule`` (a sequence of player names, e.g.
``('discriminator',) * k + ('generator',)``) is trained by the same step:

* ``params`` and ``opt_state`` are dicts keyed by player; each player has its own optax
  transformation (``tx`` is one transformation, used as a recipe with a separate state per
  player, or a mapping player -> transformation).
* Its loss takes the player as a fifth argument, a static Python string:
  ``loss(params, model_state, batch, key, player) -> (loss, (metrics, model_state))``, where
  ``params`` holds every player's parameters and the loss is the one that ``player`` minimises.
* Trainer step t updates ``schedule[t % len(schedule)]`` only: the gradient of that player's
  loss with respect to that player's parameters, applied by that player's optimiser. The other
  players' parameters and optimiser states do not move (their Adam moments and counts stay as
  they were). One compiled step serves every player: ``lax.switch`` on the step index runs one
  branch per step.
* Metrics are named ``<player>/<name>`` (``<player>/loss``, ``<player>/grad_norm`` and the
  objective's metrics); a step also reports ``player`` (the index into ``players``) so that the
  loop averages each player's metrics over that player's steps only. ``skipped``, the
  non-finite guard and the streaks are shared: a non-finite step of any player is skipped.

Exponential moving average. With ``ema_decay = d`` (``make_train_step``) and a state created with
``ema=True``, every applied update also sets ema <- d · ema + (1 − d) · params (the new params;
``ema`` starts equal to the initial params). For multi-player objectives only the updated
player's average moves, so each player's average advances once per update of that player.
Skipped steps leave it unchanged. `TrainState.eval_params` is the EMA when there is one: the
evaluation step and the families' sampling use it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh

from jgen.parallel.mesh import data_sharding, replicated_sharding
from jgen.train.members import member_axes
from jgen.typing import Array, Batch, Metrics, ModelState, Params, PRNGKey
from jgen.validation import check_choice, check_int, check_number

__all__ = [
    "Objective",
    "TrainEvalObjective",
    "TrainState",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "player_schedule",
    "stateless",
]


class Objective(Protocol):
    def init(self, key: PRNGKey, batch: Batch) -> tuple[Params, ModelState]: ...

    def loss(
        self, params: Params, model_state: ModelState, batch: Batch, key: PRNGKey
    ) -> tuple[Array, tuple[Metrics, ModelState]]: ...

    def evaluate(
        self, params: Params, model_state: ModelState, batch: Batch, key: PRNGKey
    ) -> Metrics: ...


def stateless(
    loss_fn: Callable[[Params, Batch, PRNGKey], tuple[Array, Metrics]],
) -> Callable[[Params, ModelState, Batch, PRNGKey], tuple[Array, tuple[Metrics, ModelState]]]:
    """Adapt ``loss_fn(params, batch, key) -> (loss, metrics)`` to the trainer's signature."""

    def loss(params, model_state, batch, key):
        value, metrics = loss_fn(params, batch, key)
        return value, (metrics, model_state)

    return loss


@dataclasses.dataclass(frozen=True)
class TrainEvalObjective:
    """An `Objective` that trains with one objective and evaluates with another over the same
    parameters (e.g. a Hutchinson-trained CNF evaluated with the exact trace): ``init`` and
    ``loss`` are ``train``'s; ``evaluate``, ``sample`` and ``log_prob`` are ``eval``'s."""

    train: Any
    eval: Any

    def init(self, key, batch):
        return self.train.init(key, batch)

    def loss(self, params, model_state, batch, key):
        return self.train.loss(params, model_state, batch, key)

    def evaluate(self, params, model_state, batch, key):
        return self.eval.evaluate(params, model_state, batch, key)

    def sample(self, params, model_state, key, num_samples, *args, **kwargs):
        return self.eval.sample(params, model_state, key, num_samples, *args, **kwargs)

    def log_prob(self, params, model_state, x, *args, **kwargs):
        return self.eval.log_prob(params, model_state, x, *args, **kwargs)


def player_schedule(objective: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """``(players, schedule)`` of a multi-player objective, None for a single-player one.

    ``schedule`` defaults to ``players`` (one step each, in order). Raises ValueError for an
    empty or repeated player list, or a schedule naming an unknown player.
    """
    players = getattr(objective, "players", None)
    if players is None:
        return None
    if isinstance(players, str) or not isinstance(players, Sequence) or not players:
        raise ValueError(f"objective.players must be a non-empty tuple of names, got {players!r}")
    players = tuple(players)
    if len(set(players)) != len(players):
        raise ValueError(f"objective.players has repeated names: {players}")
    schedule = getattr(objective, "schedule", None)
    schedule = players if schedule is None else tuple(schedule)
    if not schedule or any(p not in players for p in schedule):
        raise ValueError(
            f"objective.schedule must be a non-empty sequence of players {players}, got {schedule}"
        )
    return players, schedule


def _player_transforms(tx, players: tuple[str, ...]):
    """One transformation per player, as a hashable tuple of (player, transformation)."""
    if isinstance(tx, Mapping):
        if set(tx) != set(players):
            raise ValueError(
                f"tx must have one optax transformation per player {players}, got keys {sorted(tx)}"
            )
        return tuple((p, tx[p]) for p in players)
    return tuple((p, tx) for p in players)


def _copy(tree):
    # Separate buffers: the EMA must not alias params when the state is donated.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


class TrainState(struct.PyTreeNode):
    """Everything a run needs to continue exactly: step, parameters, optimiser and model state,
    the run's base PRNG key (raw uint32 key data), the current and the longest non-finite
    streak, and the moving average of the parameters (None without one).

    For a multi-player objective ``players`` names them, ``params`` and ``opt_state`` are dicts
    keyed by player and ``tx`` is a tuple of (player, transformation) pairs."""

    step: Array
    params: Params
    opt_state: Any
    model_state: ModelState
    rng: Array
    nonfinite_streak: Array
    longest_nonfinite_streak: Array
    tx: Any = struct.field(pytree_node=False)
    ema_params: Params | None = None
    players: tuple[str, ...] | None = struct.field(pytree_node=False, default=None)

    @classmethod
    def create(cls, *, params, model_state, tx, rng, players=None, ema=False) -> TrainState:
        if players is None:
            opt_state = tx.init(params)
        else:
            players = tuple(players)
            if not isinstance(params, Mapping) or set(params) != set(players):
                got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
                raise ValueError(
                    f"a multi-player objective's params must be a dict keyed by its players "
                    f"{players}, got {got}"
                )
            tx = _player_transforms(tx, players)
            opt_state = {p: t.init(params[p]) for p, t in tx}
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=opt_state,
            model_state=model_state,
            rng=rng,
            nonfinite_streak=jnp.zeros((), jnp.int32),
            longest_nonfinite_streak=jnp.zeros((), jnp.int32),
            tx=tx,
            ema_params=_copy(params) if ema else None,
            players=players,
        )

    def player_tx(self, player: str) -> optax.GradientTransformation:
        """The optax transformation of ``player`` (multi-player states only)."""
        return dict(self.tx)[player]

    @property
    def eval_params(self) -> Params:
        """The parameters to evaluate and sample with: the moving average when there is one."""
        return self.params if self.ema_params is None else self.ema_params


def make_optimizer(
    *,
    learning_rate: float,
    total_steps: int,
    optimizer: str = "adam",
    schedule: str = "cosine",
    warmup_steps: int = 0,
    clip_norm: float | None = None,
    weight_decay: float = 0.0,
    b1: float = 0.9,
    b2: float = 0.999,
) -> optax.GradientTransformation:
    """An optax chain from a few config values: clipping → Adam/AdamW/SGD with a schedule.

    schedule: 'constant', 'cosine' (decay to 0 over ``total_steps``) or 'linear', each with an
    optional linear warm-up of ``warmup_steps``. Every setting is checked: a finite positive
    learning rate, total_steps >= 1, warmup_steps >= 0, clip_norm None or >= 0 (0: no
    clipping), weight_decay >= 0, b1 and b2 in [0, 1) (`jgen.validation.ValidationError`).
    """
    owner = "make_optimizer"
    check_number(learning_rate, "learning_rate", owner=owner)
    check_int(total_steps, "total_steps", minimum=1, owner=owner)
    check_int(warmup_steps, "warmup_steps", owner=owner)
    check_choice(optimizer, "optimizer", ("adam", "adamw", "sgd"), owner=owner)
    check_choice(schedule, "schedule", ("constant", "cosine", "linear"), owner=owner)
    if clip_norm is not None:  # 0 turns clipping off
        check_number(clip_norm, "clip_norm", interval="non_negative", owner=owner)
    check_number(weight_decay, "weight_decay", interval="non_negative", owner=owner)
    check_number(b1, "b1", interval="unit", owner=owner)
    check_number(b2, "b2", interval="unit", owner=owner)
    decay_steps = max(total_steps - warmup_steps, 1)
    schedules = {
        "constant": lambda: optax.constant_schedule(learning_rate),
        "cosine": lambda: optax.cosine_decay_schedule(learning_rate, decay_steps),
        "linear": lambda: optax.linear_schedule(learning_rate, 0.0, decay_steps),
    }
    lr = schedules[schedule]()
    if warmup_steps > 0:
        lr = optax.join_schedules(
            [optax.linear_schedule(0.0, learning_rate, warmup_steps), lr], [warmup_steps]
        )
    optimizers = {
        "adam": lambda: optax.adam(lr, b1=b1, b2=b2),
        "adamw": lambda: optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay),
        "sgd": lambda: optax.sgd(lr, momentum=b1),
    }
    parts = []
    if clip_norm is not None and clip_norm > 0:
        parts.append(optax.clip_by_global_norm(clip_norm))
    parts.append(optimizers[optimizer]())
    return optax.chain(*parts)


GUARDS = ("cond", "select")


def _flat_by_dtype(tree) -> list[Array]:
    """The floating-point leaves of ``tree`` raveled and concatenated, one vector per dtype
    (integer leaves, e.g. optimiser step counts, are skipped). One reduction over such a vector
    is one kernel on XLA's CPU backend, where one reduction per leaf is one or two kernels each:
    with a few hundred leaves (parameters and Adam's two moments) that dispatch overhead is a
    large part of a small model's step."""
    groups: dict[Any, list[Array]] = {}
    for leaf in jax.tree_util.tree_leaves(tree):
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.inexact):
            groups.setdefault(dtype, []).append(jnp.ravel(leaf))
    return [jnp.concatenate(leaves) for leaves in groups.values()]


def _all_finite(tree) -> Array:
    """True when every floating-point leaf of ``tree`` is free of NaN and inf."""
    checks = [jnp.all(jnp.isfinite(flat)) for flat in _flat_by_dtype(tree)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def _global_norm(tree) -> Array:
    """‖tree‖₂ over every floating-point leaf (as `optax.tree.norm`, summed per dtype)."""
    squares = [jnp.sum(jnp.square(flat)) for flat in _flat_by_dtype(tree)]
    return jnp.sqrt(sum(squares)) if squares else jnp.zeros(())


def _guarded_update(
    value_and_grad_fn, params, opt_state, model_state, tx, ema, ema_decay, guard="cond"
):
    """One optax update of ``params``, kept only if everything it produces is finite.

    The step is skipped (params, optimiser state, model state and average left as they were)
    when the loss or the gradient norm is not finite, or when the update itself is not: a
    finite gradient can still give non-finite parameters (an overflowing update, e.g. a huge
    learning rate) or optimiser / model state.

    The update is computed twice: once only to check that all of it is finite (one reduction
    over its concatenated values; `lax.optimization_barrier` keeps XLA from merging this copy
    with the other), then again with the choice between the new and the old values, a
    ``jnp.where`` per leaf that XLA fuses into the update's own elementwise kernels. On XLA's
    CPU backend that costs much less than selecting after the update (a kernel per leaf and
    per optimiser moment) or a `lax.cond` around it.

    ``guard='select'`` (the default) runs the check every step; ``'cond'`` runs it inside a
    `lax.cond` on the gradient's finiteness (skipped for a non-finite gradient; a conditional
    reads its predicate back to the host on a GPU, and is slower than the select on a CPU).
    Returns ((params, opt_state, model_state, ema), loss, grad_norm, finite, metrics).
    """
    (loss, (metrics, new_model_state)), grads = value_and_grad_fn(params)
    grad_norm = _global_norm(grads)
    # A NaN or inf anywhere in the gradient makes its norm non-finite (so does a norm that
    # overflows, which is no usable gradient either): one check instead of one per leaf.
    gradient_finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    old = (params, opt_state, model_state, ema)

    def update(grads, opt_state, params):
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        new_ema = ema
        if ema is not None:
            new_ema = optax.incremental_update(new_params, ema, step_size=1.0 - ema_decay)
        return new_params, new_opt_state, new_model_state, new_ema

    def update_finite(_):
        """Whether the update is finite: computed from a copy of its inputs that XLA does not
        merge with the update applied below (`lax.optimization_barrier`)."""
        return _all_finite(update(*jax.lax.optimization_barrier((grads, opt_state, params))))

    if guard == "select":
        finite = gradient_finite & update_finite(None)
    else:  # lax.cond: the check runs only for a finite gradient
        finite = jax.lax.cond(gradient_finite, update_finite, lambda _: jnp.asarray(False), None)
    new = update(grads, opt_state, params)
    updated = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    return updated, loss, grad_norm, finite, metrics


def _check_ema(state: TrainState, ema_decay: float | None) -> None:
    if ema_decay is not None and state.ema_params is None:
        raise ValueError(
            "make_train_step(ema_decay=...) needs a state with a moving average "
            "(TrainState.create(..., ema=True))"
        )


def _advance(state: TrainState, finite, params, opt_state, model_state, ema_params) -> TrainState:
    """The next state: one more step, the (possibly unchanged) variables, the streaks."""
    streak = jnp.where(finite, 0, state.nonfinite_streak + 1)
    return state.replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        model_state=model_state,
        ema_params=ema_params,
        nonfinite_streak=streak,
        longest_nonfinite_streak=jnp.maximum(state.longest_nonfinite_streak, streak),
    )


def _update(state: TrainState, batch: Batch, key, loss_fn, ema_decay, guard, player=None):
    """The body of every train step: one guarded update of all the parameters (``player``
    None) or of one player's, with that player's loss, optimiser and moving average.

    Returns ``((params, opt_state, model_state, ema_params), finite, metrics)``: the whole
    state's new variables (other players' unchanged) and the metrics, with ``loss`` and
    ``grad_norm``, named ``<player>/<name>`` for a player.
    """
    if player is None:
        params, opt_state, tx = state.params, state.opt_state, state.tx
        ema = state.ema_params if ema_decay is not None else None

        def loss(p):
            return loss_fn(p, state.model_state, batch, key)

    else:
        params, opt_state = state.params[player], state.opt_state[player]
        tx = state.player_tx(player)
        ema = None if ema_decay is None else state.ema_params[player]

        def loss(p):
            return loss_fn({**state.params, player: p}, state.model_state, batch, key, player)

    (p, o, model_state, e), value, grad_norm, finite, metrics = _guarded_update(
        jax.value_and_grad(loss, has_aux=True), params, opt_state, state.model_state, tx, ema,
        ema_decay, guard,
    )  # fmt: skip
    metrics = {**metrics, "loss": value, "grad_norm": grad_norm}
    if player is None:
        new = (p, o, model_state, e if ema_decay is not None else state.ema_params)
        return new, finite, metrics
    ema_params = state.ema_params if ema_decay is None else {**state.ema_params, player: e}
    new = ({**state.params, player: p}, {**state.opt_state, player: o}, model_state, ema_params)
    return new, finite, {f"{player}/{k}": v for k, v in metrics.items()}


def _switch_players(state: TrainState, schedule: tuple[str, ...], update):
    """``update(player)`` of the player whose turn step ``state.step`` is, by one `lax.switch`
    over the players (one compiled step for all); returns ``(new, finite, metrics)`` with every
    player's metric names (zeros for the players that did not move: the loop masks them by the
    ``player`` index it also reports)."""
    players = state.players
    if players is None:
        raise ValueError("a multi-player step needs a state created with players=...")
    branches = [functools.partial(lambda player, _: update(player), p) for p in players]
    # lax.switch needs one output structure: the union of every branch's metrics.
    shapes = [jax.eval_shape(b, None)[-1] for b in branches]
    union = {k: v for s in shapes for k, v in s.items()}

    def padded(branch):
        def run(_):
            new, finite, named = branch(None)
            full = {k: named.get(k, jnp.zeros(v.shape, v.dtype)) for k, v in union.items()}
            return new, finite, full

        return run

    order = jnp.asarray([players.index(p) for p in schedule], jnp.int32)
    current = order[state.step % len(schedule)]
    new, finite, metrics = jax.lax.switch(current, [padded(b) for b in branches], None)
    return new, finite, dict(metrics, player=current)


def _train_step(loss_fn, schedule: tuple[str, ...] | None, ema_decay, guard):
    """``step(state, batch)``: the update of `_update`, for the whole parameters or, with a
    ``schedule``, for the player whose turn it is; then one more step and the streaks."""

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        _check_ema(state, ema_decay)
        key = jax.random.fold_in(state.rng, state.step)

        def update(player=None):
            return _update(state, batch, key, loss_fn, ema_decay, guard, player)

        if schedule is None:
            new, finite, metrics = update()
        else:
            new, finite, metrics = _switch_players(state, schedule, update)
        metrics["skipped"] = (~finite).astype(jnp.float32)
        return _advance(state, finite, *new), metrics

    return step


def make_train_step(
    loss_fn: Callable[..., tuple[Array, tuple[Metrics, ModelState]]],
    *,
    mesh: Mesh | None = None,
    donate: bool = True,
    schedule: Sequence[str] | None = None,
    ema_decay: float | None = None,
    members: bool = False,
    guard: str = "select",
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """A jitted ``step(state, batch) -> (state, metrics)`` for the trainer signature above.

    ``schedule``: the player sequence of a multi-player objective (its loss then takes the
    player as a fifth argument; the state must be created with ``players``). ``ema_decay``: keep
    the moving average of the parameters (the state must be created with ``ema=True``).
    ``members``: the state is stacked (`jgen.train.members`) and the batch is ``(K, B, ...)``;
    the step is vmapped over the K members, and every metric gets a leading axis K.
    With a ``mesh`` the batch axis (axis 1 with members) is split over its devices.
    ``guard``: how a non-finite step is skipped, ``'select'`` or ``'cond'`` (`_guarded_update`;
    a multi-player step still picks its player with a `lax.switch`).
    """
    if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    check_choice(guard, "guard", GUARDS, owner="make_train_step")
    schedule = None if schedule is None else tuple(schedule)
    args = (loss_fn, mesh, donate, schedule, ema_decay, members, guard)
    try:
        return _cached_train_step(*args)
    except TypeError:  # an unhashable loss function: build a fresh step
        return _build_train_step(*args)


def _vmap_members(fn, args_axes: tuple, *, returns_state: bool):
    """``fn(state, *args)`` vmapped over a stacked state's members (see `member_axes`);
    ``args_axes`` are the vmap axes of ``args``. A returned state is stacked like the input."""

    def run(state, *args):
        axes = member_axes(state)
        out_axes = (axes, 0) if returns_state else 0
        return jax.vmap(fn, in_axes=(axes, *args_axes), out_axes=out_axes)(state, *args)

    return run


def _build_train_step(loss_fn, mesh, donate, schedule, ema_decay, members, guard="cond"):
    step = _train_step(loss_fn, schedule, ema_decay, guard)
    if members:
        step = _vmap_members(step, (0,), returns_state=True)

    donate_argnums = (0,) if donate else ()
    if mesh is None:
        return jax.jit(step, donate_argnums=donate_argnums)
    rep, dat = replicated_sharding(mesh), data_sharding(mesh, batch_axis=1 if members else 0)
    return jax.jit(
        step, in_shardings=(rep, dat), out_shardings=(rep, rep), donate_argnums=donate_argnums
    )


# The same objective trained twice in one process (a resumed run, tests, sweeps) reuses the
# compiled step: jax.jit caches compilations per function object.
_cached_train_step = functools.lru_cache(maxsize=16)(_build_train_step)


def make_eval_step(
    evaluate: Callable[[Params, ModelState, Batch, PRNGKey], Metrics],
    *,
    mesh: Mesh | None = None,
    members: bool = False,
) -> Callable[[TrainState, Batch, PRNGKey], Metrics]:
    """A jitted ``eval_step(state, batch, key) -> metrics`` (per-example values, shape (B,)).

    Evaluates `TrainState.eval_params`: the moving average of the parameters when the run keeps
    one. ``members``: a stacked state and one key per member (``(K, ...)``); every member
    evaluates the same batch and the metrics have shape (K, B)."""

    try:
        return _cached_eval_step(evaluate, mesh, members)
    except TypeError:  # an unhashable evaluate function: build a fresh step
        return _build_eval_step(evaluate, mesh, members)


def _build_eval_step(evaluate, mesh, members):
    def eval_step(state: TrainState, batch: Batch, key: PRNGKey) -> Metrics:
        return evaluate(state.eval_params, state.model_state, batch, key)

    if members:
        eval_step = _vmap_members(eval_step, (None, 0), returns_state=False)
    if mesh is None:
        return jax.jit(eval_step)
    rep, dat = replicated_sharding(mesh), data_sharding(mesh)
    return jax.jit(eval_step, in_shardings=(rep, dat, rep), out_shardings=rep)


_cached_eval_step = functools.lru_cache(maxsize=16)(_build_eval_step)
