"""Maximum likelihood for `Seq2Seq` through the shared trainer (`jgen.train.Objective`)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jgen.data.sequences import PAD
from jgen.seq2seq.decoding import greedy_decode_fn, outputs
from jgen.seq2seq.model import Seq2Seq
from jgen.typing import Array, Batch, Metrics, ModelState, Params, PRNGKey
from jgen.validation import ValidationError

__all__ = ["Seq2SeqObjective", "split_pairs"]


def split_pairs(x: Array) -> tuple[Array, Array]:
    """``(B, 2, L)`` pairs -> ``(source, target)``, each ``(B, L)`` (`jgen.data.sequences`)."""
    if x.ndim != 3 or x.shape[1] != 2:
        raise ValidationError(
            f"batch['x']: expected (source, target) pairs of shape (batch, 2, length), got shape "
            f"{tuple(x.shape)}"
        )
    return x[:, 0], x[:, 1]


def _pad_to(tokens: Array, width: int) -> Array:
    return jnp.pad(tokens, ((0, 0), (0, width - tokens.shape[1])), constant_values=PAD)


@dataclasses.dataclass(frozen=True)
class Seq2SeqObjective:
    """Teacher-forced exact negative log-likelihood of the targets (eq. 1.9).

    loss = sum over the batch of -log p(y | x) / number of predicted tokens (the n + 1 tokens
    y_1..y_n, EOS of each pair; padding counts for nothing), i.e. the per-token NLL in nats.
    ``evaluate`` returns per pair: ``nll`` (-log p(y | x), nats), ``nll_per_token``
    (``nll / (n + 1)``) and ``exact_match`` (1 if greedy decoding gives y exactly, with its EOS).
    """

    model: Seq2Seq

    def init(self, key: PRNGKey, batch: Batch) -> tuple[Params, ModelState]:
        source, target = split_pairs(batch["x"])
        return self.model.init(key, source, target)["params"], {}

    def _token_log_probs(self, params: Params, batch: Batch) -> tuple[Array, Array]:
        source, target = split_pairs(batch["x"])
        return self.model.apply({"params": params}, source, target)

    def log_prob(self, params: Params, model_state: ModelState, x: Array) -> Array:
        """log p(y | x) per pair, shape (B,), of packed pairs ``x`` (B, 2, L) (the data's
        format: ``x[:, 0]`` sources, ``x[:, 1]`` targets), EOS included."""
        del model_state
        log_probs, _ = self._token_log_probs(params, {"x": x})
        return log_probs.sum(-1)

    def loss(
        self, params: Params, model_state: ModelState, batch: Batch, key: PRNGKey
    ) -> tuple[Array, tuple[Metrics, ModelState]]:
        del key
        log_probs, mask = self._token_log_probs(params, batch)
        nll = -log_probs.sum(-1)
        loss = nll.sum() / mask.sum()
        return loss, ({"nll": nll.mean(), "nll_per_token": loss}, model_state)

    def evaluate(
        self, params: Params, model_state: ModelState, batch: Batch, key: PRNGKey
    ) -> Metrics:
        del model_state, key
        log_probs, mask = self._token_log_probs(params, batch)
        nll = -log_probs.sum(-1)
        source, target = split_pairs(batch["x"])
        decoded = greedy_decode_fn(self.model, params, source)
        predicted = outputs(decoded)
        width = max(target.shape[1], predicted.shape[1])
        # Exact match: the same tokens and EOS right after them (padding compared as PAD).
        same = jnp.all(_pad_to(predicted, width) == _pad_to(target, width), axis=1)
        exact = same & decoded.finished
        return {
            "nll": nll,
            "nll_per_token": nll / mask.sum(-1),
            "exact_match": exact.astype(nll.dtype),
        }
