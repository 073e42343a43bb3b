"""The shared train step: non-finite guard, optimiser recipe, data parallelism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.data import sample_toy
from jgen.distributions import Flow
from jgen.flows import DensityObjective
from jgen.parallel import data_mesh, replicated_sharding, shard_batch
from jgen.train import TrainState, make_optimizer, make_train_step, stateless


def _quadratic(params, batch, key):
    # NaN whenever the batch asks for it: exercises the non-finite guard.
    loss = jnp.mean((batch["x"] - params["w"]) ** 2) + batch["poison"]
    return loss, {"w_mean": jnp.mean(params["w"])}


def _state(tx):
    params = {"w": jnp.zeros(3)}
    return TrainState.create(params=params, model_state={}, tx=tx, rng=jax.random.PRNGKey(0))


@pytest.mark.parametrize("guard", ["cond", "select"])
def test_nonfinite_step_is_skipped_and_counted(guard):
    tx = make_optimizer(learning_rate=0.1, total_steps=10, schedule="constant")
    step = make_train_step(stateless(_quadratic), donate=False, guard=guard)
    state = _state(tx)
    good = {"x": jnp.ones((4, 3)), "poison": jnp.float32(0.0)}
    bad = {"x": jnp.ones((4, 3)), "poison": jnp.float32(jnp.nan)}
    s1, m1 = step(state, good)
    assert float(m1["skipped"]) == 0.0 and int(s1.nonfinite_streak) == 0
    s2, m2 = step(s1, bad)
    assert float(m2["skipped"]) == 1.0 and int(s2.nonfinite_streak) == 1
    np.testing.assert_array_equal(s2.params["w"], s1.params["w"])  # update skipped
    s3, _ = step(s2, bad)
    assert int(s3.nonfinite_streak) == 2 and int(s3.step) == 3
    s4, m4 = step(s3, good)
    assert int(s4.nonfinite_streak) == 0 and float(m4["skipped"]) == 0.0
    assert not np.array_equal(s4.params["w"], s3.params["w"])
    # 'select' has no conditional in the compiled step (none to read back to the host on a
    # GPU); 'cond' has the guard's one.
    hlo = step.lower(state, good).compile().as_text()
    assert hlo.count(" conditional(") == (1 if guard == "cond" else 0)


def test_select_guard_trains_exactly_as_cond():
    tx = make_optimizer(learning_rate=0.1, total_steps=10, schedule="constant")
    good = {"x": jnp.arange(12.0).reshape(4, 3), "poison": jnp.float32(0.0)}
    bad = {"x": jnp.ones((4, 3)), "poison": jnp.float32(jnp.inf)}
    states = {}
    for guard in ("cond", "select"):
        step = make_train_step(stateless(_quadratic), donate=False, guard=guard)
        state = _state(tx)
        for batch in (good, bad, good, good):
            state, _ = step(state, batch)
        states[guard] = state
    # The same arithmetic, fused differently by XLA: equal to float32 rounding.
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    jax.tree.map(close, states["cond"].params, states["select"].params)
    jax.tree.map(close, states["cond"].opt_state, states["select"].opt_state)
    assert int(states["select"].step) == 4 and int(states["select"].longest_nonfinite_streak) == 1
    with pytest.raises(ValueError, match="make_train_step: guard must be one of"):
        make_train_step(stateless(_quadratic), guard="where")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(schedule="nope"), "schedule must be one of"),
        (dict(optimizer="lion2"), "optimizer must be one of"),
        (dict(learning_rate=0.0), "learning_rate must be a positive number, got 0.0"),
        (dict(weight_decay=float("nan")), "weight_decay must be a non-negative number"),
    ],
)
def test_make_optimizer_rejects_bad_settings(kwargs, match):
    settings = dict(learning_rate=1e-3, total_steps=10) | kwargs
    with pytest.raises(ValueError, match=match):
        make_optimizer(**settings)


def test_warmup_then_cosine_schedule_trains():
    tx = make_optimizer(learning_rate=0.1, total_steps=20, warmup_steps=5, clip_norm=1.0)
    step = make_train_step(stateless(_quadratic), donate=False)
    state = _state(tx)
    batch = {"x": jnp.ones((4, 3)), "poison": jnp.float32(0.0)}
    first = None
    for _ in range(20):
        state, m = step(state, batch)
        first = float(m["loss"]) if first is None else first
    assert float(m["loss"]) < 0.5 * first


def test_data_parallel_step_equals_single_device_step():
    """4 CPU devices (tests/conftest.py) vs one: same params, incl. global batch statistics.

    Non-Gaussian data and couplings give gradients well above float noise (at a stationary
    point, Adam would amplify rounding differences and make the comparison meaningless).
    """
    assert jax.device_count() == 4
    couplings = jb.realnvp(2, num_layers=2, hidden_dims=(8,), zero_init_last=False)
    flow = Flow(jb.Chain([jb.BatchNorm(event_ndims=1), couplings]), (2,))
    objective = DensityObjective(flow)
    batch = {"x": sample_toy("moons", 16, 1)}
    params, model_state = objective.init(jax.random.PRNGKey(2), batch)
    tx = make_optimizer(learning_rate=1e-3, total_steps=5)

    def run(mesh):
        state = TrainState.create(
            params=params, model_state=model_state, tx=tx, rng=jax.random.PRNGKey(3)
        )
        step = make_train_step(objective.loss, mesh=mesh, donate=False)
        b = batch
        if mesh is not None:
            state = jax.device_put(state, replicated_sharding(mesh))
            b = shard_batch(batch, mesh)
        for _ in range(3):
            state, _ = step(state, b)
            jax.block_until_ready(state)  # CPU collectives: one step in flight (see loop.py)
        return jax.device_get((state.params, state.model_state))

    single, parallel = run(None), run(data_mesh())
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6), single, parallel
    )
    # The running statistics really moved (the check above is not comparing two inits).
    moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), parallel[0], jax.device_get(params))
    assert max(jax.tree.leaves(moved)) > 1e-3, "parameters barely moved: the check is vacuous"
    before = jax.tree.leaves(jax.device_get(model_state))
    after = jax.tree.leaves(parallel[1])
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_shard_batch_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="divisible by the number of devices"):
        shard_batch({"x": np.zeros((6, 2))}, data_mesh())
