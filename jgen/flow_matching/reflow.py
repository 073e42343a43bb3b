"""Rectified flow with reflow (Liu, Gong & Liu 2023, "Flow straight and fast").

A 1-rectified flow is flow matching with the straight interpolant x_t = (1 − t) x0 + t x1
(`InterpolantPath(0)`) and independent pairs. Reflow makes its trajectories straighter: draw
noise x0 ~ N(0, I), push it through the trained flow, x1 = z(1) (an ODE solve), and train the
next flow on these FIXED pairs (x0, x1) with the same loss. The k-rectified flow's coupling is
the (k−1)-th flow's map, so its paths cross less and the straightness (`diagnostics`) drops;
the marginal at t = 1 stays the (k−1)-th flow's distribution.

    pairs = generate_pairs(objective, params, state, key, num_pairs)
    params, state, losses = train_on_pairs(objective, params, state, pairs, key, steps=...)

`train_on_pairs` starts from the given parameters (Liu et al. warm-start the next flow from the
previous one) and trains with the shared jitted step (`jgen.train.make_train_step`, Adam), the
batches ``{'x': x1, 'x0': x0}`` drawn from the pairs (`FlowMatchingObjective.loss` uses a
batch's own ``x0``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgen.flow_matching.diagnostics import trajectories
from jgen.train import TrainState, make_train_step
from jgen.typing import Array, PRNGKey
from jgen.validation import check_int, check_number

__all__ = ["generate_pairs", "train_on_pairs"]


def generate_pairs(
    objective, params, model_state, key: PRNGKey, num_pairs: int, *, rtol=1e-5, atol=1e-5,
    chunk: int = 4096,
) -> tuple[Array, Array]:  # fmt: skip
    """(x0, x1): noise x0 ~ N(0, I) (num_pairs, *event) and its image x1 under the flow's ODE."""
    num_pairs = check_int(num_pairs, "num_pairs", minimum=1, owner="generate_pairs")
    shape = (num_pairs, *objective.cnf.event_shape)
    x0 = jax.random.normal(key, shape, jnp.result_type(float))
    push = jax.jit(
        lambda z: trajectories(objective, params, model_state, z, jnp.ones(1), rtol=rtol, atol=atol)
    )
    x1 = jnp.concatenate([push(x0[i : i + chunk])[:, -1] for i in range(0, num_pairs, chunk)])
    return x0, x1


def train_on_pairs(
    objective, params, model_state, pairs: tuple[Array, Array], key: PRNGKey, *,
    steps: int, batch_size: int = 256, learning_rate: float = 1e-3,
) -> tuple[object, object, list[float]]:  # fmt: skip
    """Flow matching on fixed pairs (x0, x1), from ``params``: (params, model_state, the loss
    of every step)."""
    steps = check_int(steps, "steps", minimum=1, owner="train_on_pairs")
    batch_size = check_int(batch_size, "batch_size", minimum=1, owner="train_on_pairs")
    check_number(learning_rate, "learning_rate", owner="train_on_pairs")
    x0, x1 = (np.asarray(p) for p in pairs)
    tx = optax.adam(learning_rate)
    state = TrainState.create(params=params, model_state=model_state, tx=tx, rng=key)
    step = make_train_step(objective.loss, donate=False)
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    losses = []
    for _ in range(steps):
        rows = rng.integers(0, len(x0), batch_size)
        state, metrics = step(state, {"x": jnp.asarray(x1[rows]), "x0": jnp.asarray(x0[rows])})
        losses.append(metrics["fm_loss"])
    return state.params, state.model_state, [float(v) for v in losses]
