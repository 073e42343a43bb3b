"""The LSTM encoder-decoder (Sutskever et al. 2014) with the exact likelihood of eq. 1.9.

Sequences are int arrays ``(B, L)`` of token ids padded on the right with ``PAD = 0`` (see
`jgen.data.sequences`); the length of a sequence is the position of its first ``PAD`` (``L`` if
there is none). The model adds ``BOS``/``EOS`` itself.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.data.sequences import BOS, EOS, NUM_SPECIAL_TOKENS, PAD
from jgen.typing import Array
from jgen.validation import (
    ValidationError,
    ValidationTypeError,
    check_array,
    check_int,
    is_concrete,
)

__all__ = ["Carry", "Seq2Seq", "StackedLSTM", "check_tokens", "sequence_lengths", "target_tokens"]

Carry = tuple[tuple[Array, Array], ...]  # one LSTM (c, h) per layer, each (B, hidden)


def sequence_lengths(tokens: Array) -> Array:
    """Position of the first ``PAD`` of each row of ``(B, L)`` tokens, ``L`` if there is none
    (a numpy array for numpy input: host-side checks stay on the host)."""
    xp = np if isinstance(tokens, np.ndarray) else jnp
    is_pad = tokens == PAD
    return xp.where(is_pad.any(-1), xp.argmax(is_pad, -1), tokens.shape[-1])


def target_tokens(target: Array) -> tuple[Array, Array, Array]:
    """Decoder inputs, outputs and mask for a ``(B, T)`` target y_1..y_n (n <= T).

    inputs  = BOS, y_1, ..., y_T                (B, T + 1)
    outputs = y_1, ..., y_n, EOS, PAD, ...      (B, T + 1)
    mask    = position <= n                     (B, T + 1): the n + 1 predicted tokens
    """
    batch, length = target.shape
    n = sequence_lengths(target)[:, None]
    position = jnp.arange(length + 1)[None, :]
    padded = jnp.concatenate([target, jnp.full((batch, 1), PAD, target.dtype)], axis=1)
    outputs = jnp.where(position < n, padded, jnp.where(position == n, EOS, PAD))
    inputs = jnp.concatenate([jnp.full((batch, 1), BOS, target.dtype), target], axis=1)
    return inputs, outputs.astype(target.dtype), position <= n


def check_tokens(tokens: Any, name: str, *, vocab_size: int, max_length: int) -> None:
    """``tokens`` must be an integer array ``(B, L)`` of content ids padded with ``PAD``.

    Static checks (rank, integer dtype, non-empty) always run; on concrete arrays also: ids in
    ``0..vocab_size - 1``, no ``BOS``/``EOS`` (the model adds them), nothing but ``PAD`` after
    the first ``PAD``, and at most ``max_length`` content tokens per sequence (the array may be
    wider: trailing padding is allowed). Raises `jgen.validation.ValidationError`.
    """
    check_array(tokens, name, min_ndim=2, floating=False)
    if tokens.ndim != 2:
        raise ValidationError(
            f"{name}: expected token ids of shape (batch, length), got shape {tuple(tokens.shape)}"
        )
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValidationTypeError(f"{name}: expected integer token ids, got dtype {tokens.dtype}")
    if not is_concrete(tokens):
        return
    ids = np.asarray(tokens)
    bad = ids[(ids < 0) | (ids >= vocab_size)]
    if bad.size:
        raise ValidationError(
            f"{name}: expected token ids in 0..{vocab_size - 1} (the vocabulary), got "
            f"{bad.size} id(s) outside it, e.g. {bad.flat[0]}"
        )
    special = ids[(ids > PAD) & (ids < NUM_SPECIAL_TOKENS)]
    if special.size:
        raise ValidationError(
            f"{name}: expected content ids >= {NUM_SPECIAL_TOKENS} padded with PAD={PAD}, got the "
            f"special id {special.flat[0]} (BOS={BOS}, EOS={EOS} are added by the model)"
        )
    lengths = sequence_lengths(ids)
    after_pad = np.arange(ids.shape[1])[None, :] >= lengths[:, None]
    if np.any(after_pad & (ids != PAD)):
        row = int(np.argmax(np.any(after_pad & (ids != PAD), axis=1)))
        raise ValidationError(
            f"{name}: expected padding only at the end of each sequence, got content after PAD "
            f"in row {row}: {ids[row].tolist()}"
        )
    if lengths.size and lengths.max() > max_length:
        raise ValidationError(
            f"{name}: expected sequences of at most {max_length} tokens (the model's maximum), "
            f"got one of {int(lengths.max())} (row {int(np.argmax(lengths))})"
        )


class StackedLSTM(nn.Module):
    """One time step of ``num_layers`` stacked LSTM cells: layer i reads layer i - 1's output."""

    features: int
    num_layers: int

    @nn.compact
    def __call__(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        new_carry = []
        for i in range(self.num_layers):
            cell_carry, x = nn.OptimizedLSTMCell(self.features, name=f"layer_{i}")(carry[i], x)
            new_carry.append(cell_carry)
        return tuple(new_carry), x


def _scan(body):
    """``nn.scan`` over time (axis 0 of the inputs) with the parameters shared by every step."""
    return nn.scan(body, variable_broadcast="params", split_rngs={"params": False})


class Seq2Seq(nn.Module):
    """LSTM encoder-decoder: p(y | x) = prod_{t=1}^{n+1} p(y_t | nu, y_1..y_{t-1}), y_{n+1} = EOS.

    Eq. 1.9 of the notes: the encoder reads the source x_1..x_m (embedded tokens through
    ``num_layers`` LSTM layers); its final (c, h) per layer, nu, is the initial state of the
    decoder, which reads BOS, y_1, ..., y_n and predicts y_1, ..., y_n, EOS with a softmax over
    the vocabulary. The likelihood is exact; positions after EOS are masked and contribute
    exactly nothing, and encoder steps on padding leave its state unchanged, so extra padding
    changes nothing. With ``reverse_source`` the encoder reads x_m..x_1 (Sutskever et al.).

    Attributes:
      vocab_size: number of token ids (special tokens included).
      max_source_length, max_target_length: the longest sequences the model accepts (checked in
        `log_prob`); decoding runs ``max_target_length + 1`` steps.
      embed_dim, hidden_dim, num_layers: sizes; the embedding is shared by encoder and decoder.
    """

    vocab_size: int
    max_source_length: int
    max_target_length: int
    embed_dim: int = 64
    hidden_dim: int = 256
    num_layers: int = 2
    reverse_source: bool = False

    def __post_init__(self):
        check_int(self.vocab_size, "vocab_size", minimum=NUM_SPECIAL_TOKENS + 1, owner="Seq2Seq")
        for name in ("max_source_length", "max_target_length", "embed_dim", "hidden_dim"):
            check_int(getattr(self, name), name, minimum=1, owner="Seq2Seq")
        check_int(self.num_layers, "num_layers", minimum=1, owner="Seq2Seq")
        super().__post_init__()

    def setup(self):
        self.embed = nn.Embed(self.vocab_size, self.embed_dim)
        self.encoder = StackedLSTM(self.hidden_dim, self.num_layers)
        self.decoder = StackedLSTM(self.hidden_dim, self.num_layers)
        self.readout = nn.Dense(self.vocab_size)

    def initial_carry(self, batch: int, dtype=jnp.float32) -> Carry:
        zeros = jnp.zeros((batch, self.hidden_dim), dtype)
        return tuple((zeros, zeros) for _ in range(self.num_layers))

    def encode(self, source: Array) -> Carry:
        """nu: the encoder's (c, h) per layer after the last token of each source."""
        lengths = sequence_lengths(source)
        steps = jnp.arange(source.shape[1])
        if self.reverse_source:  # x_m..x_1 then padding
            index = jnp.where(steps[None] < lengths[:, None], lengths[:, None] - 1 - steps, steps)
            source = jnp.take_along_axis(source, index, axis=1)
        inputs = jnp.swapaxes(self.embed(source), 0, 1)  # time-major (L, B, E)
        valid = jnp.swapaxes(steps[None] < lengths[:, None], 0, 1)

        def body(encoder, carry, step):
            x, keep = step
            new_carry, _ = encoder(carry, x)
            # Padding steps leave the state as it is, so nu is the state after the last token.
            carry = jax.tree.map(lambda n, o: jnp.where(keep[:, None], n, o), new_carry, carry)
            return carry, None

        carry = self.initial_carry(source.shape[0], inputs.dtype)
        carry, _ = _scan(body)(self.encoder, carry, (inputs, valid))
        return carry

    def logits(self, hidden: Array) -> Array:
        """Next-token logits; ``PAD`` and ``BOS`` are never outputs (their logits are -inf), so
        the model is a distribution over content tokens and ``EOS``."""
        logits = self.readout(hidden)
        never = (jnp.arange(self.vocab_size) == PAD) | (jnp.arange(self.vocab_size) == BOS)
        return jnp.where(never, -jnp.inf, logits)

    def decode_step(self, carry: Carry, tokens: Array) -> tuple[Carry, Array]:
        """One decoder step: the previous tokens ``(B,)`` -> (new state, next-token logits)."""
        carry, h = self.decoder(carry, self.embed(tokens))
        return carry, self.logits(h)

    def token_log_probs(self, source: Array, target: Array) -> tuple[Array, Array]:
        """log p(y_t | nu, y_<t) for t = 1..T+1 by teacher forcing, 0 where masked; and the mask.

        Shapes ``(B, T + 1)`` for a ``(B, T)`` target; the mask marks y_1..y_n and EOS.
        """
        inputs, outputs, mask = target_tokens(target)

        def body(decoder, carry, x):
            carry, h = decoder(carry, x)
            return carry, h

        carry = self.encode(source)
        _, hidden = _scan(body)(self.decoder, carry, jnp.swapaxes(self.embed(inputs), 0, 1))
        log_probs = jax.nn.log_softmax(self.logits(jnp.swapaxes(hidden, 0, 1)))
        # Masked positions pick EOS (a finite entry) and are then zeroed.
        picked = jnp.where(mask, outputs, EOS)
        picked = jnp.take_along_axis(log_probs, picked[..., None], axis=-1)[..., 0]
        return jnp.where(mask, picked, 0.0), mask

    def __call__(self, source: Array, target: Array) -> tuple[Array, Array]:
        return self.token_log_probs(source, target)

    def log_prob(self, source: Array, target: Array) -> Array:
        """Exact log p(target | source) (nats), shape ``(B,)``; inputs checked (`check_tokens`)."""
        check_tokens(
            source, "source", vocab_size=self.vocab_size, max_length=self.max_source_length
        )
        check_tokens(
            target, "target", vocab_size=self.vocab_size, max_length=self.max_target_length
        )
        if source.shape[0] != target.shape[0]:
            raise ValidationError(
                f"target: expected the batch size of source ({source.shape[0]}), got "
                f"{target.shape[0]}"
            )
        log_probs, _ = self.token_log_probs(source, target)
        return log_probs.sum(-1)


def num_decode_steps(model: Seq2Seq) -> int:
    """Decoding length: the longest target plus its EOS."""
    return model.max_target_length + 1
