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
A step whose loss or gradient is not finite leaves params, optimiser and model state unchanged,
counts as ``skipped`` in the metrics and lengthens ``nonfinite_streak``;
``longest_nonfinite_streak`` keeps the longest streak so far, so the loop can check it at any
cadence (it stops a run after too many in a row). The same step runs on one device or
data-parallel: with a mesh, the batch is sharded along ``'data'``, the state is replicated, and
the state buffers are donated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh

from jgen.parallel.mesh import data_sharding, replicated_sharding
from jgen.typing import Array, Batch, Metrics, ModelState, Params, PRNGKey

__all__ = [
    "Objective",
    "TrainState",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
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


class TrainState(struct.PyTreeNode):
    """Everything a run needs to continue exactly: step, parameters, optimiser and model state,
    the run's base PRNG key (raw uint32 key data), the current and the longest non-finite
    streak."""

    step: Array
    params: Params
    opt_state: Any
    model_state: ModelState
    rng: Array
    nonfinite_streak: Array
    longest_nonfinite_streak: Array
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, *, params, model_state, tx, rng) -> TrainState:
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state=model_state,
            rng=rng,
            nonfinite_streak=jnp.zeros((), jnp.int32),
            longest_nonfinite_streak=jnp.zeros((), jnp.int32),
            tx=tx,
        )


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
    optional linear warm-up of ``warmup_steps``.
    """
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    decay_steps = max(total_steps - warmup_steps, 1)
    schedules = {
        "constant": lambda: optax.constant_schedule(learning_rate),
        "cosine": lambda: optax.cosine_decay_schedule(learning_rate, decay_steps),
        "linear": lambda: optax.linear_schedule(learning_rate, 0.0, decay_steps),
    }
    if schedule not in schedules:
        raise ValueError(f"schedule must be one of {sorted(schedules)}, got {schedule!r}")
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
    if optimizer not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}, got {optimizer!r}")
    parts = []
    if clip_norm is not None and clip_norm > 0:
        parts.append(optax.clip_by_global_norm(clip_norm))
    parts.append(optimizers[optimizer]())
    return optax.chain(*parts)


def make_train_step(
    loss_fn: Callable[..., tuple[Array, tuple[Metrics, ModelState]]],
    *,
    mesh: Mesh | None = None,
    donate: bool = True,
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """A jitted ``step(state, batch) -> (state, metrics)`` for the trainer signature above."""

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        key = jax.random.fold_in(state.rng, state.step)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (metrics, model_state)), grads = grad_fn(state.params, state.model_state, batch, key)
        grad_norm = optax.tree.norm(grads)
        # A NaN or inf anywhere in the gradient makes its norm non-finite (so does a norm that
        # overflows, which is no usable gradient either): one check instead of one per leaf.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

        def apply_update(_):
            updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
            return optax.apply_updates(state.params, updates), opt_state, model_state

        def skip_update(_):
            return state.params, state.opt_state, state.model_state

        # lax.cond runs one branch: cheaper to run and to compile than a select over the state.
        params, opt_state, model_state = jax.lax.cond(finite, apply_update, skip_update, None)
        streak = jnp.where(finite, 0, state.nonfinite_streak + 1)
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            opt_state=opt_state,
            model_state=model_state,
            nonfinite_streak=streak,
            longest_nonfinite_streak=jnp.maximum(state.longest_nonfinite_streak, streak),
        )
        metrics = dict(metrics)
        metrics.update(loss=loss, grad_norm=grad_norm, skipped=(~finite).astype(jnp.float32))
        return new_state, metrics

    donate_argnums = (0,) if donate else ()
    if mesh is None:
        return jax.jit(step, donate_argnums=donate_argnums)
    rep, dat = replicated_sharding(mesh), data_sharding(mesh)
    return jax.jit(
        step, in_shardings=(rep, dat), out_shardings=(rep, rep), donate_argnums=donate_argnums
    )


def make_eval_step(
    evaluate: Callable[[Params, ModelState, Batch, PRNGKey], Metrics],
    *,
    mesh: Mesh | None = None,
) -> Callable[[TrainState, Batch, PRNGKey], Metrics]:
    """A jitted ``eval_step(state, batch, key) -> metrics`` (per-example values, shape (B,))."""

    def eval_step(state: TrainState, batch: Batch, key: PRNGKey) -> Metrics:
        return evaluate(state.params, state.model_state, batch, key)

    if mesh is None:
        return jax.jit(eval_step)
    rep, dat = replicated_sharding(mesh), data_sharding(mesh)
    return jax.jit(eval_step, in_shardings=(rep, dat, rep), out_shardings=rep)
