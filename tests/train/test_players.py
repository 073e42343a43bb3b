"""The trainer's multi-player schedule and the moving average of the parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jgen.data import BatchStream, Dataset, sample_toy
from jgen.gan import GAN, MLPDiscriminator, MLPGenerator
from jgen.parallel import data_mesh, replicated_sharding, shard_batch
from jgen.train import (
    Checkpointer,
    TrainConfig,
    TrainState,
    fit,
    initial_state,
    make_optimizer,
    make_train_step,
    player_schedule,
    stateless,
)
from jgen.train.logbook import mean_metrics


class _Pair:
    """Two players pulling towards the data and towards each other: a has loss
    mean((x − a)²) + ⟨a, b⟩, b has mean((x − b)²) − ⟨a, b⟩. NaN when batch['poison'] is."""

    players = ("a", "b")
    schedule = ("a", "a", "b")

    def init(self, key, batch):
        return {"a": {"w": jnp.ones(3)}, "b": {"w": -jnp.ones(3)}}, {}

    def loss(self, params, model_state, batch, key, player):
        a, b = params["a"]["w"], params["b"]["w"]
        own = params[player]["w"]
        sign = 1.0 if player == "a" else -1.0
        value = jnp.mean((batch["x"] - own) ** 2) + sign * jnp.dot(a, b) + batch["poison"]
        return value, ({f"mean_{player}": jnp.mean(own)}, model_state)

    def evaluate(self, params, model_state, batch, key):
        return {"dist": jnp.sum((batch["x"] - params["a"]["w"]) ** 2, axis=-1)}


PAIR = _Pair()
TX = make_optimizer(learning_rate=0.1, total_steps=100, schedule="constant")


def _pair_state(ema=False, tx=TX):
    params, model_state = PAIR.init(None, None)
    return TrainState.create(
        params=params, model_state=model_state, tx=tx, rng=jax.random.PRNGKey(0),
        players=PAIR.players, ema=ema,
    )  # fmt: skip


def _batch(poison=0.0):
    return {"x": jnp.full((4, 3), 0.5), "poison": jnp.float32(poison)}


def _moved(before, after):
    return [p for p in ("a", "b") if not np.array_equal(before[p]["w"], after[p]["w"])]


def test_schedule_alternates_and_the_frozen_player_stays_put():
    step = make_train_step(PAIR.loss, schedule=PAIR.schedule, donate=False)
    state = _pair_state()
    movers = []
    for t in range(6):
        new, metrics = step(state, _batch())
        movers.append(_moved(state.params, new.params))
        mover = movers[-1][0]
        frozen = "b" if mover == "a" else "a"
        # The frozen player's parameters and Adam state (moments and count) did not move.
        jax.tree.map(
            np.testing.assert_array_equal,
            (state.params[frozen], state.opt_state[frozen]),
            (new.params[frozen], new.opt_state[frozen]),
        )
        assert int(metrics["player"]) == PAIR.players.index(mover), t
        assert float(metrics[f"{mover}/loss"]) != 0.0 and f"{mover}/mean_{mover}" in metrics
        state = new
    assert movers == [["a"], ["a"], ["b"], ["a"], ["a"], ["b"]]
    # Adam's count: a stepped 4 times, b twice.
    counts = {
        p: [int(x) for x in jax.tree.leaves(state.opt_state[p]) if x.dtype == jnp.int32]
        for p in "ab"
    }
    assert counts == {"a": [4, 4], "b": [2, 2]}  # Adam's and the schedule's counts


def test_per_player_optimisers_and_errors():
    slow = optax.sgd(1e-3)
    state = _pair_state(tx={"a": TX, "b": slow})
    assert state.player_tx("b") is slow
    with pytest.raises(ValueError, match="one optax transformation per player"):
        _pair_state(tx={"a": TX})
    with pytest.raises(ValueError, match="dict keyed by its players"):
        TrainState.create(
            params={"a": 1.0}, model_state={}, tx=TX, rng=jax.random.PRNGKey(0), players=("a", "b")
        )

    class BadSchedule(_Pair):
        schedule = ("a", "c")

    with pytest.raises(ValueError, match="schedule must be a non-empty sequence of players"):
        player_schedule(BadSchedule())


def test_nonfinite_player_step_is_skipped_for_both_players():
    step = make_train_step(PAIR.loss, schedule=PAIR.schedule, donate=False)
    state = _pair_state()
    new, metrics = step(state, _batch(np.nan))
    assert float(metrics["skipped"]) == 1.0 and int(new.nonfinite_streak) == 1
    jax.tree.map(np.testing.assert_array_equal, state.params, new.params)
    jax.tree.map(np.testing.assert_array_equal, state.opt_state, new.opt_state)


def test_window_means_are_over_each_players_own_steps():
    window = [
        {"player": 0, "a/loss": 1.0, "b/loss": 0.0, "skipped": 0.0},
        {"player": 0, "a/loss": 3.0, "b/loss": 0.0, "skipped": 1.0},
        {"player": 1, "a/loss": 0.0, "b/loss": 5.0, "skipped": 0.0},
    ]
    means = mean_metrics(window, ("a", "b"))
    assert means == {"a/loss": 2.0, "b/loss": 5.0, "skipped": 1 / 3}
    assert "b/loss" not in mean_metrics(window[:2], ("a", "b"))


def test_ema_is_the_exponential_average_of_the_params():
    decay = 0.8

    def quadratic(params, batch, key):
        return jnp.mean((batch["x"] - params["w"]) ** 2) + batch["poison"], {}

    step = make_train_step(stateless(quadratic), donate=False, ema_decay=decay)
    state = TrainState.create(
        params={"w": jnp.zeros(3)}, model_state={}, tx=TX, rng=jax.random.PRNGKey(0), ema=True
    )
    expected = np.zeros(3)
    for poison in (0.0, 0.0, np.nan, 0.0):
        state, _ = step(state, _batch(poison))
        if not np.isnan(poison):  # a skipped step leaves the average alone
            expected = decay * expected + (1 - decay) * np.asarray(state.params["w"])
        np.testing.assert_allclose(state.ema_params["w"], expected, rtol=1e-6)
    assert state.eval_params is state.ema_params
    assert not np.allclose(state.ema_params["w"], state.params["w"])
    with pytest.raises(ValueError, match="needs a state with a moving average"):
        make_train_step(stateless(quadratic), ema_decay=decay)(_pair_state(), _batch())


def test_multi_player_ema_moves_only_with_its_player():
    decay = 0.5
    step = make_train_step(PAIR.loss, schedule=PAIR.schedule, donate=False, ema_decay=decay)
    state = _pair_state(ema=True)
    for _ in range(3):
        new, metrics = step(state, _batch())
        mover = PAIR.players[int(metrics["player"])]
        frozen = "b" if mover == "a" else "a"
        np.testing.assert_array_equal(new.ema_params[frozen]["w"], state.ema_params[frozen]["w"])
        np.testing.assert_allclose(
            new.ema_params[mover]["w"],
            decay * state.ema_params[mover]["w"] + (1 - decay) * new.params[mover]["w"],
            rtol=1e-6,
        )
        state = new


# A small GAN on the ring with spectral normalisation (its power-iteration vectors are model
# state that only the discriminator's steps advance) and k = 2 discriminator steps.
GAN_OBJECTIVE = GAN(
    MLPGenerator((16,), (2,)),
    MLPDiscriminator(hidden_dims=(16,), spectral_norm=True),
    latent_dim=2, d_steps=2,
)  # fmt: skip


def _ring(n_train=256, n_test=64):
    return Dataset(
        name="ring8", train=sample_toy("ring8", n_train, 0), test=sample_toy("ring8", n_test, 1)
    )


def _gan_config(steps, **kw):
    base = dict(
        steps=steps, batch_size=16, log_every=3, eval_batch_size=64, progress=False,
        ema_decay=0.9, data_parallel=False,
    )  # fmt: skip
    return TrainConfig(**(base | kw))


def test_multi_player_resume_is_bit_identical(tmp_path):
    dataset = _ring()
    tx = {"generator": TX, "discriminator": make_optimizer(learning_rate=0.01, total_steps=8)}
    straight = fit(GAN_OBJECTIVE, dataset, tx, _gan_config(8), workdir=tmp_path / "a")
    fit(GAN_OBJECTIVE, dataset, tx, _gan_config(5), workdir=tmp_path / "b")
    resumed = fit(GAN_OBJECTIVE, dataset, tx, _gan_config(8), workdir=tmp_path / "b")
    assert int(resumed.state.step) == 8
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.device_get((straight.state.params, straight.state.opt_state)),
        jax.device_get((resumed.state.params, resumed.state.opt_state)),
    )
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.device_get((straight.state.ema_params, straight.state.model_state)),
        jax.device_get((resumed.state.ema_params, resumed.state.model_state)),
    )
    assert straight.eval_metrics == resumed.eval_metrics
    train = [r for r in straight.history if r["split"] == "train"]
    assert {"discriminator/loss", "generator/loss", "discriminator/real_prob"} <= set(train[0])
    # `jgen eval`/`sample` restore into a template without EMA: the checkpoint's EMA comes back.
    stream = BatchStream(dataset.arrays("train"), 16, seed=0)
    template = initial_state(GAN_OBJECTIVE, stream, tx, seed=0)
    checkpointer = Checkpointer(tmp_path / "a")
    restored = checkpointer.restore(template)
    checkpointer.close()
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.device_get(restored.ema_params),
        jax.device_get(straight.state.ema_params),
    )


def test_gan_step_on_four_devices_equals_one_device():
    assert jax.device_count() == 4
    batch = {"x": sample_toy("ring8", 16, 3)}
    params, model_state = GAN_OBJECTIVE.init(jax.random.PRNGKey(2), batch)
    tx = make_optimizer(learning_rate=1e-2, total_steps=5)

    def run(mesh):
        state = TrainState.create(
            params=params, model_state=model_state, tx=tx, rng=jax.random.PRNGKey(3),
            players=GAN_OBJECTIVE.players, ema=True,
        )  # fmt: skip
        step = make_train_step(
            GAN_OBJECTIVE.loss, mesh=mesh, donate=False, schedule=GAN_OBJECTIVE.schedule,
            ema_decay=0.9,
        )  # fmt: skip
        b = batch
        if mesh is not None:
            state = jax.device_put(state, replicated_sharding(mesh))
            b = shard_batch(batch, mesh)
        for _ in range(3):  # two discriminator steps and a generator step
            state, _ = step(state, b)
            jax.block_until_ready(state)
        return jax.device_get((state.params, state.model_state, state.ema_params))

    single, parallel = run(None), run(data_mesh())
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6), single, parallel
    )
    for player in GAN_OBJECTIVE.players:
        moved = jax.tree.map(
            lambda a, b: np.max(np.abs(a - b)), parallel[0][player], jax.device_get(params[player])
        )
        assert max(jax.tree.leaves(moved)) > 1e-3, f"{player} barely moved: the check is vacuous"
    before = jax.tree.leaves(jax.device_get(model_state["discriminator"]))
    after = jax.tree.leaves(parallel[1]["discriminator"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
