"""Reverse-KL fitting of a flow q_K to an unnormalised density p ∝ exp(-E), as a trainer
`Objective`.

With z_0 ~ q_0 and z_K = f(z_0) the flow's forward map (eq. 2.16, 2.17):

    KL(q_K ‖ p) = E_{q_0}[log q_0(z_0) - Σ_k log|det ∂f_k/∂z_{k-1}| + E(z_K)] + log Z.

The loss is a Monte-Carlo estimate of it with fresh base samples from the step key; log Z (a
constant, from quadrature) is added so that the loss reads as the KL itself (≥ 0, in nats).
There is no data: the batch only gives the number of samples (its leading size). `evaluate`
returns one sample's term log q_K(z_K) + E(z_K) + log Z per row of the batch, so the trainer's
mean over the test split is a Monte-Carlo KL estimate with as many samples as the split has rows.

Annealing (Rezende & Mohamed, section 6.1, β_t = min(1, 0.01 + t/anneal_steps)): the training
loss weighs the energy by β_t; the step counter t lives in ``model_state['anneal_step']``.
Reported metrics (``kl``) always use β = 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp

from jgen.distributions import Flow
from jgen.typing import Array, Batch, ModelState, Params, PRNGKey
from jgen.validation import check_int

__all__ = ["ReverseKL"]


@dataclasses.dataclass(frozen=True)
class ReverseKL:
    """Trainer objective for KL(q_K ‖ p), q_K = ``flow``, p ∝ exp(-``energy``).

    energy:        maps (..., D) to (...), vectorised.
    log_z:         log ∫ exp(-energy); 0 reports the free energy KL - log Z instead of the KL.
    anneal_steps:  length of the linear β warm-up from 0.01 to 1 (0: no annealing).
    """

    flow: Flow
    energy: Callable[[Array], Array]
    log_z: float = 0.0
    anneal_steps: int = 0

    def __post_init__(self):
        check_int(self.anneal_steps, "anneal_steps", owner="ReverseKL")

    def sample_terms(
        self, params: Params, key: PRNGKey, num_samples: int, *, train: bool = False
    ) -> tuple[Array, Array]:
        """(log q_K(z_K), E(z_K)) of ``num_samples`` fresh draws (layers in the mode ``train``)."""
        z, log_q = self.flow.apply(
            {"params": params}, key, num_samples, train=train, method=Flow.sample_and_log_prob
        )
        return log_q, self.energy(z)

    def init(self, key: PRNGKey, batch: Batch) -> tuple[Params, ModelState]:
        num_samples = batch["x"].shape[0]
        variables = self.flow.init(key, key, num_samples, method=Flow.sample_and_log_prob)
        return variables["params"], {"anneal_step": jnp.zeros((), jnp.int32)}

    def loss(self, params, model_state, batch, key):
        log_q, energy = self.sample_terms(params, key, batch["x"].shape[0], train=True)
        step = model_state["anneal_step"]
        beta = 1.0
        if self.anneal_steps:
            beta = jnp.minimum(1.0, 0.01 + step / self.anneal_steps)
        kl = jnp.mean(log_q + energy) + self.log_z
        loss = jnp.mean(log_q + beta * energy) + self.log_z
        metrics = {"kl": kl, "beta": jnp.asarray(beta, kl.dtype), "entropy": -jnp.mean(log_q)}
        return loss, (metrics, {"anneal_step": step + 1})

    def evaluate(self, params, model_state, batch, key):
        log_q, energy = self.sample_terms(params, key, batch["x"].shape[0])
        return {"kl": log_q + energy + self.log_z, "energy": energy, "log_q": log_q}

    def sample(self, params: Params, model_state, key: PRNGKey, num_samples: int) -> Array:
        """``num_samples`` draws of q_K (``model_state``, the annealing step, plays no part)."""
        del model_state
        return self.flow.apply({"params": params}, key, num_samples, method=Flow.sample)

    def log_prob(self, params: Params, model_state, z: Array) -> Array:
        """log q_K(z), shape (B,), through the flow's inverse (evaluation mode; ``model_state``,
        the annealing step, plays no part)."""
        del model_state
        return self.flow.apply({"params": params}, z)
