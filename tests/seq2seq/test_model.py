"""The exact likelihood of eq. 1.9: by hand, padding-invariant, and checked inputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.data import BOS, EOS
from jgen.seq2seq import Seq2Seq, Seq2SeqObjective
from jgen.validation import ValidationError, ValidationTypeError

SOURCE = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 8, 3], [4, 0, 0, 0, 0]], np.int32)
TARGET = np.array([[5, 4, 0, 0, 0], [8, 0, 0, 0, 0], [4, 4, 6, 7, 3]], np.int32)


@functools.partial(jax.jit, static_argnums=0)
def _log_prob(model, params, source, target):
    return model.apply({"params": params}, source, target, method=Seq2Seq.log_prob)


def _log_prob_by_hand(model, params, source, target):
    """Run the encoder and decoder cells one token at a time on the unpadded sequences and sum
    log softmax(logits)[y_t] over y_1..y_n, EOS."""

    def encoder_step(m, carry, token):
        return m.encoder(carry, m.embed(token))[0]

    def decoder_step(m, carry, token):
        return m.decode_step(carry, token)

    variables = {"params": params}
    totals = []
    for x, y in zip(source, target, strict=True):
        x, y = x[x != 0], y[y != 0]
        carry = model.apply(variables, 1, method=lambda m, b: m.initial_carry(b))
        for token in x:
            carry = model.apply(variables, carry, jnp.array([token]), method=encoder_step)
        total, previous = 0.0, BOS
        for token in [*y.tolist(), EOS]:
            carry, logits = model.apply(
                variables, carry, jnp.array([previous]), method=decoder_step
            )
            total += float(jax.nn.log_softmax(logits[0])[token])
            previous = token
        totals.append(total)
    return np.array(totals)


@pytest.mark.parametrize("reverse_source", [False, True])
def test_log_prob_is_the_sum_of_token_log_probs_by_hand(random_model, reverse_source):
    model, params, _ = random_model
    model = model.clone(reverse_source=reverse_source)
    source = SOURCE
    if reverse_source:  # by hand: feed the reversed source to the un-reversing model
        by_hand_source = np.array([np.r_[s[s != 0][::-1], s[s == 0]] for s in SOURCE])
    else:
        by_hand_source = SOURCE
    expected = _log_prob_by_hand(model.clone(reverse_source=False), params, by_hand_source, TARGET)
    got = _log_prob(model, params, source, TARGET)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(got)) and np.all(got < 0)


def test_extra_padding_changes_nothing(random_model):
    model, params, _ = random_model
    lp = _log_prob(model, params, SOURCE, TARGET)
    wide = _log_prob(
        model, params, np.pad(SOURCE, ((0, 0), (0, 4))), np.pad(TARGET, ((0, 0), (0, 3)))
    )
    np.testing.assert_allclose(wide, lp, rtol=1e-6)
    token_lp, mask = jax.jit(model.apply)(
        {"params": params}, SOURCE, np.pad(TARGET, ((0, 0), (0, 3)))
    )
    assert np.all(np.asarray(token_lp)[~np.asarray(mask)] == 0.0)  # padding contributes nothing
    np.testing.assert_array_equal(np.asarray(mask).sum(1), (TARGET != 0).sum(1) + 1)


def test_objective_loss_is_the_per_token_nll(random_model):
    model, params, _ = random_model
    objective = Seq2SeqObjective(model)
    batch = {"x": np.stack([SOURCE, TARGET], axis=1)}
    loss_and_grad = jax.jit(jax.value_and_grad(objective.loss, has_aux=True))
    (loss, (metrics, _)), grads = loss_and_grad(params, {}, batch, jax.random.PRNGKey(0))
    lp = _log_prob(model, params, SOURCE, TARGET)
    tokens = (TARGET != 0).sum() + len(TARGET)
    np.testing.assert_allclose(loss, -lp.sum() / tokens, rtol=1e-5)
    np.testing.assert_allclose(metrics["nll"], -lp.mean(), rtol=1e-5)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize(
    ("source", "target", "error", "match"),
    [
        (np.array([[3, 9]]), np.array([[3]]), ValidationError, "outside it, e.g. 9"),
        (np.array([[3, -1]]), np.array([[3]]), ValidationError, "outside it"),
        (np.array([[3, EOS]]), np.array([[3]]), ValidationError, "special id 2"),
        (np.array([[3]]), np.array([[BOS, 3]]), ValidationError, "special id 1"),
        (np.array([[3, 0, 4]]), np.array([[3]]), ValidationError, "content after PAD"),
        (np.full((1, 6), 3), np.array([[3]]), ValidationError, "at most 5 tokens"),
        (np.array([[3]]), np.full((1, 6), 4), ValidationError, "at most 5 tokens"),
        (np.array([[3.0]]), np.array([[3]]), ValidationTypeError, "integer token ids"),
        (np.array([3, 4]), np.array([[3]]), ValidationError, "at least 2 axes"),
        (np.array([[3], [4]]), np.array([[3]]), ValidationError, "batch size of source"),
    ],
)
def test_bad_inputs_get_clear_errors(random_model, source, target, error, match):
    model, params, _ = random_model
    with pytest.raises(error, match=match):
        model.apply({"params": params}, source, target, method=Seq2Seq.log_prob)


def test_bad_model_settings():
    with pytest.raises(ValueError, match="hidden_dim"):
        Seq2Seq(vocab_size=9, max_source_length=3, max_target_length=3, hidden_dim=0)
    with pytest.raises(ValueError, match="vocab_size"):
        Seq2Seq(vocab_size=3, max_source_length=3, max_target_length=3)
