"""Maximum likelihood for an exact autoregressive model (`MADE`) through the shared trainer."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from jgen.autoregressive.made import MADE
from jgen.typing import Array, Batch, Metrics, ModelState, Params, PRNGKey

__all__ = ["AutoregressiveObjective"]


@dataclasses.dataclass(frozen=True)
class AutoregressiveObjective:
    """loss = mean over the batch of -log p(x) / D (nats per dimension).

    ``evaluate`` returns per example ``nll`` (-log p(x), nats) and ``bpd`` = -log2 p(x) / D, the
    exact code length of the discrete data (no dequantisation: a flow's dequantised bits/dim is
    an upper bound on the same quantity, so the two are comparable).
    """

    model: MADE

    def init(self, key: PRNGKey, batch: Batch) -> tuple[Params, ModelState]:
        return self.model.init(key, batch["x"])["params"], {}

    def _nll(self, params: Params, batch: Batch) -> Array:
        return -self.log_prob(params, {}, batch["x"])

    def _metrics(self, nll: Array) -> Metrics:
        return {"nll": nll, "bpd": nll / (self.model.num_dims * math.log(2.0))}

    def loss(self, params, model_state: ModelState, batch: Batch, key: PRNGKey):
        del key
        metrics = {k: jnp.mean(v) for k, v in self._metrics(self._nll(params, batch)).items()}
        return metrics["nll"] / self.model.num_dims, (metrics, model_state)

    def evaluate(self, params, model_state: ModelState, batch: Batch, key: PRNGKey) -> Metrics:
        del model_state, key
        return self._metrics(self._nll(params, batch))

    def log_prob(self, params: Params, model_state: ModelState, x: Array) -> Array:
        """The exact log p(x), shape (B,), of discrete data x (N, *event_shape) in nats."""
        del model_state
        return self.model.apply({"params": params}, x, method=MADE.log_prob)

    def sample(self, params: Params, model_state, key: PRNGKey, num_samples: int) -> Array:
        """``num_samples`` draws (D passes of MADE); ``model_state`` is ``{}``."""
        del model_state
        return self.model.apply({"params": params}, key, num_samples, method=MADE.sample)
