"""MADE: the autoregressive property, a normalised likelihood, sampling, bad input, learning."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.autoregressive import MADE, AutoregressiveObjective
from jgen.data import BatchStream, load_dataset
from jgen.train import TrainState, make_optimizer, make_train_step
from jgen.validation import ValidationError, ValidationTypeError


@functools.cache
def _tiny(one_hot: bool, direct: bool):
    model = MADE(event_shape=(3,), num_levels=3, hidden_dims=(8, 8), one_hot=one_hot, direct=direct)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 3), jnp.int32))["params"]
    params = jax.tree.map(lambda p: p + 0.3 * jnp.sign(p) + 0.1, params)  # non-trivial weights
    return model, params


VARIANTS = [(True, True), (False, False)]


@pytest.mark.parametrize(("one_hot", "direct"), VARIANTS)
def test_probabilities_sum_to_one(one_hot, direct):
    model, params = _tiny(one_hot, direct)
    every = jnp.array(list(itertools.product(range(3), repeat=3)))
    log_prob = jax.jit(functools.partial(model.apply, method=MADE.log_prob))(
        {"params": params}, every
    )
    np.testing.assert_allclose(jax.nn.logsumexp(log_prob), 0.0, atol=1e-5)
    assert float(log_prob.max() - log_prob.min()) > 0.1  # not the uniform distribution


@pytest.mark.parametrize(("one_hot", "direct"), VARIANTS)
def test_pixel_d_depends_only_on_earlier_pixels(one_hot, direct):
    model = MADE(event_shape=(2, 3, 1), num_levels=4, hidden_dims=(16,), one_hot=one_hot,
                 direct=direct)  # fmt: skip
    x = jax.random.randint(jax.random.PRNGKey(1), (5, 2, 3, 1), 0, 4)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
    logits_of = jax.jit(functools.partial(model.apply, {"params": params}, method=MADE.logits))
    logits = logits_of(x)
    seen = np.zeros((6, 6), bool)  # seen[j, d]: changing pixel j changes the logits of pixel d
    for j in range(6):
        changed = x.reshape(5, 6).at[:, j].add(1).__mod__(4).reshape(x.shape)
        new = logits_of(changed)
        seen[j] = np.any(np.abs(np.asarray(new - logits)) > 1e-6, axis=(0, 2))
    assert not np.any(np.tril(seen))  # never on itself or later pixels
    assert np.all(np.triu(seen, 1)[:, 1:].any(0))  # every pixel but the first sees the past


@pytest.mark.parametrize(("one_hot", "direct"), VARIANTS)
def test_pixel_logits_are_the_logits_of_that_pixel(one_hot, direct):
    model, params = _tiny(one_hot, direct)
    x = jax.random.randint(jax.random.PRNGKey(3), (4, 3), 0, 3)
    logits = model.apply({"params": params}, x, method=MADE.logits)
    pixel = jax.jit(lambda d: model.apply({"params": params}, x, d, method=MADE.pixel_logits))
    for d in range(3):  # d traced, as in the sampling loop
        np.testing.assert_allclose(pixel(d), logits[:, d], rtol=1e-6, atol=1e-6)


def test_samples_are_levels_of_the_right_shape():
    model, params = _tiny(True, True)
    samples = model.apply({"params": params}, jax.random.PRNGKey(2), 500, method=MADE.sample)
    assert samples.shape == (500, 3) and samples.dtype == jnp.int32
    assert samples.min() >= 0 and samples.max() <= 2
    # Sample frequencies of the 27 outcomes match exp(log_prob).
    every = jnp.array(list(itertools.product(range(3), repeat=3)))
    prob = np.exp(model.apply({"params": params}, every, method=MADE.log_prob))
    codes = np.asarray(samples) @ np.array([9, 3, 1])
    freq = np.bincount(codes, minlength=27) / 500
    assert np.abs(freq - prob).sum() < 0.25


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (np.array([[0, 1, 3]]), ValidationError, "levels 0..2"),
        (np.array([[0, -1, 2]]), ValidationError, "levels 0..2"),
        (np.array([[0.5, 1.0, 2.0]]), ValidationError, "integer levels"),
        (np.array([[0, 1]]), ValidationError, "event shape"),
        (np.array([0, 1, 2]), ValidationError, "shape"),
        (np.array([[0, 1, 2]], np.complex64), ValidationTypeError, "complex"),
    ],
)
def test_bad_inputs(x, error, match):
    model, params = _tiny(True, True)
    with pytest.raises(error, match=match):
        model.apply({"params": params}, x, method=MADE.log_prob)


def test_learns_digits():
    """A few hundred steps beat the uniform code length log2(17) = 4.09 bits/dim by far."""
    ds = load_dataset("digits")
    model = MADE(event_shape=ds.event_shape, num_levels=ds.num_levels, hidden_dims=(128,),
                 one_hot=False)  # fmt: skip
    objective = AutoregressiveObjective(model)
    stream = BatchStream(ds.arrays("train"), 64, seed=0)
    params, model_state = objective.init(jax.random.PRNGKey(0), stream.batch(0))
    tx = make_optimizer(learning_rate=3e-3, total_steps=200)
    state = TrainState.create(params=params, model_state=model_state, tx=tx,
                              rng=jax.random.PRNGKey(1))  # fmt: skip
    step = make_train_step(objective.loss, donate=False)
    for t in range(200):
        state, _ = step(state, stream.batch(t))
    test = jax.jit(objective.evaluate)(state.params, {}, ds.arrays("test"), None)
    bpd = float(test["bpd"].mean())
    assert bpd < 2.6, bpd
    np.testing.assert_allclose(test["bpd"], test["nll"] / (64 * np.log(2)), rtol=1e-6)
