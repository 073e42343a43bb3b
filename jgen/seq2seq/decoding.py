"""Decoding a `Seq2Seq` model: greedy, ancestral sampling with a temperature, and beam search.

Every decoder runs exactly ``max_target_length + 1`` steps under ``jax.lax.scan`` (a fixed
shape, so each is compiled once per batch shape) and stops each sequence at its ``EOS``: the
tokens after it are ``PAD`` and add nothing to its score. All return a `Decoded`:

    tokens      (B, T + 1)  the output y_1..y_n, EOS, PAD, ... (no EOS if the model never ends it)
    log_prob    (B,)        log p(tokens | source) under the model (temperature 1), EOS included
    length      (B,)        n + 1 tokens scored (n + 1 = T + 1 when unfinished)
    finished    (B,)        whether EOS was produced

`outputs(decoded)` gives the tokens in the data's format: y_1..y_n padded with ``PAD`` to T.

Beam search maximises the length-normalised log-likelihood

    s(y) = log p(y | x) / |y|^alpha,   |y| = n + 1 tokens (EOS counted),

``alpha = length_penalty`` (1: the mean per-token log-probability; 0: the raw log-likelihood).
The search (as in fairseq) keeps K = ``beam_size`` unfinished hypotheses; at step t their 2K
best one-token extensions by log p are formed (unfinished hypotheses all have length t, so log p
and s rank them alike). An extension ending in ``EOS`` among the K best joins the source's pool of
finished hypotheses (the K best by s are kept), the K best others stay alive, and a source stops
taking finished hypotheses once K have finished. The result is the finished hypothesis with the
highest s (the best unfinished one if none finished within T + 1 steps). With ``beam_size=1``
this is greedy decoding exactly: the single best extension either ends (and the search ends) or
stays alive. A wider beam is not guaranteed to find a higher s (beam search is a heuristic and
its pruning differs between widths); the tests check that it does on held-out data.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.data.sequences import BOS, EOS, PAD, Vocabulary
from jgen.seq2seq.model import Seq2Seq, check_tokens, num_decode_steps
from jgen.typing import Array, Params, PRNGKey
from jgen.validation import ValidationError, check_int

__all__ = [
    "DECODERS",
    "Decoded",
    "beam_search",
    "decode",
    "decode_inputs",
    "greedy_decode",
    "normalized_score",
    "outputs",
    "sample_decode",
]


class Decoded(NamedTuple):
    tokens: Array
    log_prob: Array
    length: Array
    finished: Array


def normalized_score(log_prob: Array, length: Array, length_penalty: float) -> Array:
    """s = log p / length^alpha, the objective beam search maximises."""
    return log_prob / jnp.power(length.astype(log_prob.dtype), length_penalty)


def outputs(decoded: Decoded) -> Array:
    """The decoded sequences as data, ``(B, T)``: y_1..y_n padded with ``PAD`` (``EOS`` removed;
    an unfinished sequence keeps its first T tokens, the model's maximum)."""
    tokens = decoded.tokens[:, :-1]
    return jnp.where(tokens == EOS, PAD, tokens)


def _decode_loop(model: Seq2Seq, params: Params, source: Array, choose, keys: Array | None):
    """Greedy or sampled decoding: ``choose(logits, key) -> tokens`` picks each next token."""
    carry = model.apply({"params": params}, source, method=Seq2Seq.encode)
    batch = source.shape[0]

    def step(state, key):
        carry, previous, finished, log_prob, length = state
        carry, logits = model.apply({"params": params}, carry, previous, method=Seq2Seq.decode_step)
        token = choose(logits, key).astype(source.dtype)
        token_log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), token[:, None], -1)[:, 0]
        token = jnp.where(finished, PAD, token)
        log_prob = log_prob + jnp.where(finished, 0.0, token_log_prob)
        length = length + (~finished).astype(length.dtype)
        finished = finished | (token == EOS)
        return (carry, token, finished, log_prob, length), token

    steps = num_decode_steps(model)
    init = (
        carry,
        jnp.full((batch,), BOS, source.dtype),
        jnp.zeros((batch,), bool),
        jnp.zeros((batch,), carry[0][0].dtype),
        jnp.zeros((batch,), jnp.int32),
    )
    xs = keys if keys is not None else jnp.zeros((steps, 0))
    (_, _, finished, log_prob, length), tokens = jax.lax.scan(step, init, xs, length=steps)
    return Decoded(jnp.swapaxes(tokens, 0, 1), log_prob, length, finished)


def greedy_decode_fn(model: Seq2Seq, params: Params, source: Array) -> Decoded:
    """Greedy decoding (not jitted: for use inside other jitted code)."""
    return _decode_loop(model, params, source, lambda logits, _: jnp.argmax(logits, -1), None)


def _check_source(model: Seq2Seq, source: Array) -> None:
    check_tokens(source, "source", vocab_size=model.vocab_size, max_length=model.max_source_length)


_greedy = jax.jit(greedy_decode_fn, static_argnums=0)


def greedy_decode(model: Seq2Seq, params: Params, source: Array) -> Decoded:
    """y_t = argmax p(y_t | nu, y_<t) until EOS (``source`` checked by `check_tokens`)."""
    _check_source(model, source)
    return _greedy(model, params, source)


@functools.partial(jax.jit, static_argnums=0)
def _sample(model, params, source, key, temperature):
    keys = jax.random.split(key, num_decode_steps(model))

    def choose(logits, step_key):
        return jax.random.categorical(step_key, logits / temperature)

    return _decode_loop(model, params, source, choose, keys)


def sample_decode(
    model: Seq2Seq, params: Params, source: Array, key: PRNGKey, *, temperature: float = 1.0
) -> Decoded:
    """y_t ~ softmax(logits / temperature) until EOS; ``log_prob`` is under the model itself."""
    if not temperature > 0:
        raise ValidationError(f"temperature: expected a positive number, got {temperature!r}")
    _check_source(model, source)
    return _sample(model, params, source, key, jnp.float32(temperature))


def _take(a: Array, index: Array) -> Array:
    """``a[b, index[b, j], ...]``: rows of ``a`` (B, N, ...) picked by ``index`` (B, K)."""
    return jnp.take_along_axis(a, index.reshape(index.shape + (1,) * (a.ndim - 2)), 1)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _beam_search(model, params, source, beam_size, length_penalty):
    batch, k = source.shape[0], beam_size
    vocab, steps = model.vocab_size, num_decode_steps(model)
    carry = model.apply({"params": params}, source, method=Seq2Seq.encode)
    carry = jax.tree.map(lambda a: jnp.repeat(a, k, axis=0), carry)  # (B * K, H)
    dtype = carry[0][0].dtype
    empty = jnp.full((batch, k, steps), PAD, source.dtype)
    minus_inf = jnp.full((batch, k), -jnp.inf, dtype)
    state = dict(
        carry=carry,
        previous=jnp.full((batch, k), BOS, source.dtype),
        # Every beam starts from nu; all but beam 0 at -inf, so the first step expands one.
        alive_log_prob=jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)
        .astype(dtype)[None]
        .repeat(batch, 0),
        alive_tokens=empty,
        done_tokens=empty,
        done_log_prob=minus_inf,
        done_score=minus_inf,
        done_length=jnp.ones((batch, k), jnp.int32),
        num_done=jnp.zeros((batch,), jnp.int32),
    )

    def step(s, t):
        carry, logits = model.apply(
            {"params": params}, s["carry"], s["previous"].reshape(-1), method=Seq2Seq.decode_step
        )
        candidate = s["alive_log_prob"][..., None] + jax.nn.log_softmax(logits).reshape(
            batch, k, vocab
        )
        # The 2K best extensions (alive hypotheses all have length t, so log p ranks them).
        log_prob, best = jax.lax.top_k(candidate.reshape(batch, k * vocab), 2 * k)
        beam, token = best // vocab, (best % vocab).astype(source.dtype)
        tokens = _take(s["alive_tokens"], beam).at[:, :, t].set(token)
        # EOS among the K best finishes a hypothesis (while the source has < K finished ones).
        ends = (token == EOS) & (jnp.arange(2 * k) < k) & jnp.isfinite(log_prob)
        ends = ends & (s["num_done"] < k)[:, None]
        score = jnp.where(ends, normalized_score(log_prob, jnp.full_like(beam, t + 1),
                                                 length_penalty), -jnp.inf)  # fmt: skip
        pool_score = jnp.concatenate([s["done_score"], score], 1)
        _, keep = jax.lax.top_k(pool_score, k)
        done = dict(
            done_tokens=_take(jnp.concatenate([s["done_tokens"], tokens], 1), keep),
            done_log_prob=_take(jnp.concatenate([s["done_log_prob"], log_prob], 1), keep),
            done_score=_take(pool_score, keep),
            done_length=_take(
                jnp.concatenate([s["done_length"], jnp.full_like(beam, t + 1)], 1), keep
            ),
            num_done=s["num_done"] + ends.sum(1),
        )
        # The K best extensions that do not end stay alive.
        alive_log_prob, alive = jax.lax.top_k(jnp.where(token == EOS, -jnp.inf, log_prob), k)
        rows = (jnp.arange(batch)[:, None] * k + _take(beam, alive)).reshape(-1)
        return dict(
            carry=jax.tree.map(lambda a: a[rows], carry),
            previous=_take(token, alive),
            alive_log_prob=alive_log_prob,
            alive_tokens=_take(tokens, alive),
            **done,
        ), None

    s, _ = jax.lax.scan(step, state, jnp.arange(steps))
    # Sources with no finished hypothesis return their unfinished beams (length T + 1).
    any_done = jnp.isfinite(s["done_score"][:, :1])
    alive_length = jnp.full((batch, k), steps, jnp.int32)
    log_prob = jnp.where(any_done, s["done_log_prob"], s["alive_log_prob"])
    length = jnp.where(any_done, s["done_length"], alive_length)
    finished = jnp.where(any_done, jnp.isfinite(s["done_score"]), False)
    tokens = jnp.where(any_done[..., None], s["done_tokens"], s["alive_tokens"])
    # Best first: finished before unfinished, then by normalised score.
    score = normalized_score(log_prob, length, length_penalty)
    order = jnp.lexsort((-score, ~finished), axis=1)
    return Decoded(*(_take(a, order) for a in (tokens, log_prob, length, finished)))


def beam_search(
    model: Seq2Seq,
    params: Params,
    source: Array,
    *,
    beam_size: int = 4,
    length_penalty: float = 1.0,
    return_beams: bool = False,
) -> Decoded:
    """Beam search for the highest ``normalized_score`` (see the module docstring).

    Returns the best hypothesis per source, or with ``return_beams`` every beam, shapes
    ``(B, K, ...)``, best first. Finished hypotheses rank above unfinished ones.
    """
    beam_size = check_int(beam_size, "beam_size", minimum=1)
    if not length_penalty >= 0:
        raise ValidationError(f"length_penalty: expected a number >= 0, got {length_penalty!r}")
    _check_source(model, source)
    beams = _beam_search(model, params, source, beam_size, jnp.float32(length_penalty))
    if return_beams:
        return beams
    return Decoded(*(a[:, 0] for a in beams))


DECODERS = ("greedy", "beam", "sample")


def decode(
    model: Seq2Seq,
    params,
    source,
    *,
    method: str = "greedy",
    beam_size: int = 4,
    length_penalty: float = 1.0,
    temperature: float = 1.0,
    key=None,
) -> Decoded:
    """Decode token sources ``(B, L)`` with one of `DECODERS`."""
    if method == "greedy":
        return greedy_decode(model, params, source)
    if method == "beam":
        return beam_search(
            model, params, source, beam_size=beam_size, length_penalty=length_penalty
        )
    if method == "sample":
        key = jax.random.PRNGKey(0) if key is None else key
        return sample_decode(model, params, source, key, temperature=temperature)
    raise ValidationError(f"method: expected one of {DECODERS}, got {method!r}")


def decode_inputs(
    objective: Any, vocabulary: Vocabulary | None, params, texts: Sequence[str], **options
) -> list[dict[str, Any]]:
    """Decode user-given source texts: ``[{'input', 'output', 'log_prob', 'finished'}, ...]``.

    ``options`` are those of `decode`. Characters outside the vocabulary and texts longer than
    the model's maximum raise `jgen.validation.ValidationError`.
    """
    model = getattr(objective, "model", None)
    if not isinstance(model, Seq2Seq) or vocabulary is None:
        raise ValidationError("inputs: expected a seq2seq experiment, which decodes input texts")
    if not texts:
        raise ValidationError("inputs: expected at least one input text, got none")
    source = jnp.asarray(vocabulary.encode_batch(list(texts), model.max_source_length))
    decoded = decode(model, params, source, **options)
    return [
        {
            "input": text,
            "output": vocabulary.decode(tokens),
            "log_prob": float(log_prob),
            "finished": bool(finished),
        }
        for text, tokens, log_prob, finished in zip(
            texts,
            np.asarray(outputs(decoded)),
            np.asarray(decoded.log_prob),
            np.asarray(decoded.finished),
            strict=True,
        )
    ]
