"""The non-finite guard covers the update: a step whose loss and gradient are finite but whose
update overflows (new params, optimiser or model state not finite) is skipped, in the
single-player, multi-player and vmapped-members steps, and a run that keeps overflowing stops
with a checkpoint holding the last finite parameters, bit for bit (issue #23)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.distributions import Flow
from jgen.flows import DensityObjective
from jgen.train import (
    Checkpointer,
    TrainState,
    fit,
    make_optimizer,
    make_train_step,
    member_state,
    stack_states,
    stateless,
)
from jgen.train.step import GUARDS
from tests.train.test_loop import _config, _gaussian_dataset

# SGD at a finite learning rate: a loss scaled by 1e18 has a finite gradient (~1e18 in
# float32, and a finite norm) whose update (~1e43) overflows; scaled by 1e-27 it is small.
SGD = make_optimizer(learning_rate=1e25, total_steps=10, optimizer="sgd", schedule="constant")
GOOD, OVERFLOW = 1e-27, 1e18


def _scaled_quadratic(params, batch, key):
    return batch["scale"] * jnp.mean((batch["x"] - params["w"]) ** 2), {}


def _batch(scale):
    return {"x": jnp.ones((4, 3)), "scale": jnp.float32(scale)}


def _assert_same(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def _state(params):
    return TrainState.create(params=params, model_state={}, tx=SGD, rng=jax.random.PRNGKey(0))


@pytest.mark.parametrize("guard", GUARDS)
def test_overflowing_update_is_skipped(guard):
    step = make_train_step(stateless(_scaled_quadratic), donate=False, guard=guard)
    s1, m1 = step(_state({"w": jnp.zeros(3)}), _batch(GOOD))
    assert float(m1["skipped"]) == 0.0
    s2, m2 = step(s1, _batch(OVERFLOW))
    assert np.isfinite(float(m2["loss"])) and np.isfinite(float(m2["grad_norm"]))
    assert float(m2["skipped"]) == 1.0 and int(s2.nonfinite_streak) == 1
    _assert_same((s2.params, s2.opt_state), (s1.params, s1.opt_state))


class _ScaledPair:
    """Two players, each minimising its scaled quadratic; batch['scale'] scales both."""

    players = ("a", "b")
    schedule = ("a", "b")

    def loss(self, params, model_state, batch, key, player):
        return _scaled_quadratic(params[player], batch, key)[0], ({}, model_state)


def test_overflowing_update_is_skipped_for_every_player():
    step = make_train_step(_ScaledPair().loss, schedule=("a", "b"), donate=False)
    params = {"a": {"w": jnp.zeros(3)}, "b": {"w": jnp.zeros(3)}}
    state = TrainState.create(
        params=params, model_state={}, tx=SGD, rng=jax.random.PRNGKey(0), players=("a", "b")
    )
    for _ in range(2):  # player a, then player b
        new, metrics = step(state, _batch(OVERFLOW))
        assert float(metrics["skipped"]) == 1.0
        _assert_same((new.params, new.opt_state), (state.params, state.opt_state))
        state = new
    assert int(state.nonfinite_streak) == 2


def test_overflowing_update_is_skipped_per_member():
    step = make_train_step(stateless(_scaled_quadratic), donate=False, members=True)
    state = stack_states([_state({"w": jnp.zeros(3)}), _state({"w": jnp.zeros(3)})])
    batches = {"x": jnp.ones((2, 4, 3)), "scale": jnp.asarray([GOOD, OVERFLOW], jnp.float32)}
    new, metrics = step(state, batches)
    np.testing.assert_array_equal(metrics["skipped"], [0.0, 1.0])
    assert not np.array_equal(member_state(new, 0).params["w"], np.zeros(3))
    _assert_same(member_state(new, 1).params, member_state(state, 1).params)


class _OverflowAfter:
    """A density objective whose loss is scaled by 1e-27 for its first `good_steps` applied
    steps and by 1e18 afterwards (a counter in the model state, which a skipped step does not
    advance): under SGD at 1e25 every step from then on overflows in the update only."""

    def __init__(self, objective, good_steps):
        self.objective, self.good_steps = objective, good_steps

    def init(self, key, batch):
        params, _ = self.objective.init(key, batch)
        return params, {"applied": jnp.zeros((), jnp.int32)}

    def loss(self, params, model_state, batch, key):
        loss, (metrics, _) = self.objective.loss(params, {}, batch, key)
        scale = jnp.where(model_state["applied"] < self.good_steps, GOOD, OVERFLOW)
        return scale * loss, (metrics, {"applied": model_state["applied"] + 1})

    def evaluate(self, params, model_state, batch, key):
        return self.objective.evaluate(params, {}, batch, key)


def test_run_that_overflows_stops_with_the_last_finite_parameters(tmp_path):
    objective = _OverflowAfter(DensityObjective(Flow(jb.Affine(event_shape=(2,)), (2,))), 3)
    dataset = _gaussian_dataset()
    stopped = fit(
        objective,
        dataset,
        SGD,
        _config(20, log_every=1, max_nonfinite_steps=5),
        workdir=tmp_path / "bad",
    )
    assert stopped.stopped_early is not None and "5 consecutive" in stopped.stopped_early
    good = fit(objective, dataset, SGD, _config(3), workdir=tmp_path / "good")
    restored = Checkpointer(tmp_path / "bad").restore(stopped.state)
    assert int(restored.step) == 8
    params = jax.tree_util.tree_leaves(restored.params)
    assert all(np.all(np.isfinite(p)) for p in params)
    _assert_same(restored.params, good.state.params)  # bit-identical to before step 4
    _assert_same(restored.model_state, good.state.model_state)
