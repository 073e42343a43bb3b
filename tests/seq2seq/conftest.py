"""A tiny reversal model trained once per test session (shared by the seq2seq tests)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.data import BatchStream, load_dataset
from jgen.seq2seq import Seq2Seq, Seq2SeqObjective
from jgen.train import TrainState, make_optimizer, make_train_step

STEPS = 300
NUM_TEST = 96  # one batch shape for every compiled decoder


@pytest.fixture(scope="session")
def reversal_data():
    return load_dataset(
        "reversal", n_train=20_000, n_test=NUM_TEST, min_length=1, max_length=3, seed=0
    )


@pytest.fixture(scope="session")
def trained_reversal(reversal_data):
    """(model, params) after a few hundred Adam steps on reversal of 1-3 letters."""
    ds = reversal_data
    model = Seq2Seq(
        vocab_size=ds.vocabulary.size, max_source_length=3, max_target_length=3,
        embed_dim=16, hidden_dim=64, num_layers=1,
    )  # fmt: skip
    objective = Seq2SeqObjective(model)
    stream = BatchStream(ds.arrays("train"), 64, seed=0)
    params, model_state = objective.init(jax.random.PRNGKey(0), stream.batch(0))
    tx = make_optimizer(learning_rate=1e-2, total_steps=STEPS, warmup_steps=20, clip_norm=1.0)
    state = TrainState.create(
        params=params, model_state=model_state, tx=tx, rng=jax.random.PRNGKey(1)
    )
    step = make_train_step(objective.loss, donate=False)
    for t in range(STEPS):
        state, _ = step(state, jax.tree.map(jnp.asarray, stream.batch(t)))
    return model, state.params


@pytest.fixture(scope="session")
def random_model():
    model = Seq2Seq(
        vocab_size=9, max_source_length=5, max_target_length=5, embed_dim=8, hidden_dim=16,
        num_layers=2,
    )  # fmt: skip
    source = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 8, 3], [4, 0, 0, 0, 0]], np.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), source, source)["params"]
    # Larger weights make the untrained distributions peaked and varied.
    params = jax.tree.map(lambda p: 3 * p, params)
    return model, params, source
