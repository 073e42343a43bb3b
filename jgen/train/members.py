"""Vmapped seeds: K independent runs of one objective as one compiled program.

A *stacked* `TrainState` holds K members: every leaf gets a leading axis of size K (parameters,
optimiser and model state, PRNG key, streaks, moving average), except the step counter, which
all members share (they advance together; a multi-player schedule stays one ``lax.switch``).
Member k is the run with seed ``seed + k``: its own initialisation, batch order and step keys.
A learning-rate sweep is the other kind of members: member k is the run whose every optimiser
update is scaled by ``scale_k`` (`scale_by_member`), i.e. the run with learning rate
``learning_rate × scale_k`` for the recipes of `jgen.train.make_optimizer` (Adam, AdamW and SGD
updates, and their constant, cosine, linear and warm-up schedules, are linear in the peak rate).
The train step is ``jax.vmap`` of the one-run step over the members (and over a ``(K, B, ...)``
batch, member k's batch in row k), so member k computes exactly what the separate run computes,
up to the order of floating-point operations that batching may change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "member_axes",
    "member_state",
    "scale_by_member",
    "stack_states",
]


class MemberScaleState(NamedTuple):
    scale: jax.Array


def scale_by_member(scale: float = 1.0) -> optax.GradientTransformation:
    """Multiply every update by a scale kept in the optimiser state, so that vmapped members can
    differ in it while sharing one transformation (``init`` sets it; ``update`` reads it)."""

    def init(params):
        del params
        return MemberScaleState(jnp.asarray(scale, jnp.float32))

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: u * state.scale.astype(u.dtype), updates), state

    return optax.GradientTransformation(init, update)


def with_member_scale(tx, scale: float):
    """``tx`` followed by `scale_by_member` (per player when ``tx`` maps players to
    transformations)."""
    if isinstance(tx, Mapping):
        return {player: optax.chain(t, scale_by_member(scale)) for player, t in tx.items()}
    return optax.chain(tx, scale_by_member(scale))


def stack_states(states: Sequence[Any]) -> Any:
    """One stacked state from K states with the same structure (their steps must agree)."""
    if not states:
        raise ValueError("stack_states needs at least one state")
    steps = {int(jax.device_get(s.step)) for s in states}
    if len(steps) != 1:
        raise ValueError(f"members must be at the same step to be stacked, got steps {steps}")
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *states)
    return stacked.replace(step=states[0].step)


def member_axes(state: Any) -> Any:
    """``jax.vmap`` axes of a stacked state: 0 for every leaf, None (shared) for the step."""
    return jax.tree.map(lambda _: 0, state).replace(step=None)


def member_state(state: Any, k: int) -> Any:
    """Member ``k`` of a stacked state, as the state of a single run."""
    n = int(np.shape(state.rng)[0])  # K: the leading size of the members' PRNG keys
    if not 0 <= k < n:
        raise ValueError(f"member index must be in 0..{n - 1}, got {k}")
    single = jax.tree.map(lambda x: x[k], state.replace(step=None))
    return single.replace(step=state.step)
