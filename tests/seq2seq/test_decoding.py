"""Decoding: greedy, sampling and beam search on a trained and an untrained model."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.data import EOS, PAD
from jgen.seq2seq import (
    Seq2Seq,
    Seq2SeqObjective,
    beam_search,
    decode_inputs,
    greedy_decode,
    normalized_score,
    outputs,
    sample_decode,
)
from jgen.validation import ValidationError


def _test_sources(data):
    return jnp.asarray(data.test[:, 0])


def test_held_out_exact_match_of_greedy_decoding(trained_reversal, reversal_data):
    model, params = trained_reversal
    decoded = greedy_decode(model, params, _test_sources(reversal_data))
    predicted = np.asarray(outputs(decoded))[:, : model.max_target_length]
    exact = np.all(predicted == reversal_data.test[:, 1], axis=1) & np.asarray(decoded.finished)
    assert exact.mean() >= 0.9, exact.mean()  # the full-size numbers are in the README
    # The objective's exact_match metric agrees.
    metrics = jax.jit(Seq2SeqObjective(model).evaluate)(
        params, {}, {"x": jnp.asarray(reversal_data.test)}, None
    )
    np.testing.assert_array_equal(metrics["exact_match"], exact)
    assert float(metrics["nll_per_token"].mean()) < 0.5


def test_beam_of_one_is_greedy(trained_reversal, reversal_data, random_model):
    for model, params, source in (
        (*trained_reversal, _test_sources(reversal_data)),
        random_model,
    ):
        greedy = greedy_decode(model, params, source)
        beam = beam_search(model, params, source, beam_size=1)
        np.testing.assert_array_equal(beam.tokens, greedy.tokens)
        np.testing.assert_allclose(beam.log_prob, greedy.log_prob, rtol=1e-6)
        np.testing.assert_array_equal(beam.finished, greedy.finished)


def test_a_wider_beam_never_scores_lower_on_held_out_inputs(trained_reversal, reversal_data):
    """s = log p / |y| (alpha = 1, the length-normalised objective beam search maximises) is
    non-decreasing in the beam width for every held-out input. Not a theorem of beam search
    (its pruning differs between widths): checked on data."""
    model, params = trained_reversal
    source = _test_sources(reversal_data)
    scores = []
    for width in (1, 2, 4):
        best = beam_search(model, params, source, beam_size=width, length_penalty=1.0)
        assert bool(best.finished.all())
        scores.append(np.asarray(normalized_score(best.log_prob, best.length, 1.0)))
    for narrow, wide in itertools.pairwise(scores):
        assert np.all(wide >= narrow - 1e-5), (narrow, wide)


def test_beams_are_distinct_and_ranked(random_model):
    model, params, source = random_model
    beams = beam_search(model, params, source, beam_size=4, return_beams=True)
    score = np.asarray(normalized_score(beams.log_prob, beams.length, 1.0))
    finished = np.asarray(beams.finished)
    assert finished.sum(1).max() > 1
    for row in range(len(source)):
        assert finished[row, 0]  # finished hypotheses come first
        hypotheses = {tuple(t) for t in np.asarray(beams.tokens[row])[finished[row]]}
        assert len(hypotheses) == finished[row].sum()
        ranked = score[row][finished[row]]
        assert np.all(np.diff(ranked) <= 1e-6)


def test_scores_are_the_model_log_prob(trained_reversal, reversal_data):
    model, params = trained_reversal
    source = _test_sources(reversal_data)
    for decoded in (
        greedy_decode(model, params, source),
        beam_search(model, params, source, beam_size=2),
        sample_decode(model, params, source, jax.random.PRNGKey(0), temperature=2.0),
    ):
        done = np.asarray(decoded.finished)
        assert done.mean() > 0.5
        target = outputs(decoded)[:, : model.max_target_length]
        expected = model.apply({"params": params}, source, target, method=Seq2Seq.log_prob)
        np.testing.assert_allclose(decoded.log_prob[done], expected[done], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(decoded.length[done], (target != PAD).sum(-1)[done] + 1)


def test_decoders_stop_at_eos(random_model):
    model, params, source = random_model
    for decoded in (
        greedy_decode(model, params, source),
        beam_search(model, params, source, beam_size=4),
        sample_decode(model, params, source, jax.random.PRNGKey(3)),
    ):
        tokens = np.asarray(decoded.tokens)
        assert tokens.shape == (3, model.max_target_length + 1)
        for row, finished in zip(tokens, np.asarray(decoded.finished), strict=True):
            ends = np.flatnonzero(row == EOS)
            assert finished == (ends.size > 0)
            if ends.size:
                assert ends.size == 1 and np.all(row[ends[0] + 1 :] == PAD)
                assert np.all(row[: ends[0]] >= 3)


def test_sampling_temperature(trained_reversal, reversal_data, random_model):
    model, params = trained_reversal
    source = _test_sources(reversal_data)
    cold = sample_decode(model, params, source, jax.random.PRNGKey(0), temperature=1e-4)
    np.testing.assert_array_equal(cold.tokens, greedy_decode(model, params, source).tokens)
    model, params, source = random_model
    draws = {
        tuple(np.asarray(sample_decode(model, params, source, jax.random.PRNGKey(k)).tokens[0]))
        for k in range(8)
    }
    assert len(draws) > 1
    with pytest.raises(ValidationError, match="temperature"):
        sample_decode(model, params, source, jax.random.PRNGKey(0), temperature=0.0)


def test_decoders_check_their_sources(random_model):
    model, params, _ = random_model
    too_long = np.full((1, 6), 3, np.int32)
    outside = np.array([[3, 9]], np.int32)
    for decode in (
        lambda s: greedy_decode(model, params, s),
        lambda s: beam_search(model, params, s, beam_size=2),
        lambda s: sample_decode(model, params, s, jax.random.PRNGKey(0)),
    ):
        with pytest.raises(ValidationError, match="at most 5 tokens"):
            decode(too_long)
        with pytest.raises(ValidationError, match="outside it"):
            decode(outside)


def test_decode_inputs_texts(trained_reversal, reversal_data):
    model, params = trained_reversal
    objective = Seq2SeqObjective(model)
    vocab = reversal_data.vocabulary
    results = decode_inputs(objective, vocab, params, ["abc", "kt"])
    assert [r["input"] for r in results] == ["abc", "kt"]
    assert all(r["finished"] and r["log_prob"] < 0 for r in results)
    with pytest.raises(ValidationError, match="vocabulary"):
        decode_inputs(objective, vocab, params, ["ab1"])
    with pytest.raises(ValidationError, match="at most 3 characters"):
        decode_inputs(objective, vocab, params, ["abcd"])
    with pytest.raises(ValidationError, match="method"):
        decode_inputs(objective, vocab, params, ["ab"], method="nucleus")
    with pytest.raises(ValidationError, match="beam_size"):
        decode_inputs(objective, vocab, params, ["ab"], method="beam", beam_size=0)
