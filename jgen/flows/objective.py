"""Maximum-likelihood training of a `Flow`, as a trainer `Objective`.

loss = −(1/B) Σ_b log p(x_b), in nats. Discrete data (``num_levels`` = K) is dequantised on the
fly, y = (x + u)/K, and also reported in bits/dim, (−log p_Y(y) + D log K)/(D log 2): the flow
then models the unit cube, typically through `LogitPreprocess` as its outermost layer.
Layers run in train mode in `loss` and `init` and in evaluation mode in `evaluate`, `log_prob`
and `sample` (``train=`` of `Flow.log_prob`); non-parameter collections
(``batch_stats``, ``spectral``) are written in training only.

Layers may report per-example metrics (`jgen.bijectors.sow_metrics`, through Flax's
``'intermediates'``); they join the metrics, summed over layers: e.g. a `jgen.cnf.CNF` reports
``nfe``, ``accepted_steps``, ``rejected_steps`` of its density solve (the backward pass is not
counted here, see benchmarks/cnf_step.py) and its RNODE regularisers. ``regularization={name:
λ}`` adds λ·mean(metric) to the training loss for metrics the flow's layers declare
(`jgen.bijectors.metric_names`; a CNF must integrate them: ``CNF(..., regularizers=...)``).
This module knows no layer's metric names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.base import collect_metrics, metric_names
from jgen.distributions.dequantization import bits_per_dim, uniform_dequantize
from jgen.distributions.flow import Flow
from jgen.typing import Array, PRNGKey
from jgen.validation import ValidationError, ValidationTypeError, check_array, check_finite

__all__ = ["DensityObjective"]


@dataclasses.dataclass(frozen=True)
class DensityObjective:
    flow: Flow
    num_levels: int | None = None
    context_key: str | None = None  # batch entry to condition on (e.g. one-hot labels)
    regularization: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        weights = dict(self.regularization)
        if any(not (isinstance(w, int | float) and w >= 0) for w in weights.values()):
            raise ValueError(
                f"DensityObjective: regularization weights must be >= 0, got {weights}"
            )
        reported = tuple(sorted(metric_names(self.flow)))
        unknown = sorted(set(weights) - set(reported))
        if unknown:
            raise ValueError(
                "DensityObjective: regularization keys must be among the metrics the flow's "
                f"layers report {reported}, got {unknown}"
            )
        object.__setattr__(self, "regularization", weights)

    @property
    def num_dims(self) -> int:
        return math.prod(self.flow.event_shape)

    def _inputs(self, batch, key: PRNGKey) -> tuple[Array, Array | None]:
        x = batch["x"]
        if self.num_levels is not None:
            x = uniform_dequantize(key, x, self.num_levels)
        else:
            x = x.astype(jnp.result_type(float))
        context = None if self.context_key is None else batch[self.context_key]
        return x, context

    def _check_batch(self, batch) -> None:
        """The batch given to `init`: a dict with ``'x'`` (and the context entry) whose ``x``
        has shape (N, *event_shape) (one example axis: the training loop's metrics are per
        example), N >= 1, a real dtype and, if concrete, finite values."""
        if not isinstance(batch, Mapping):
            raise ValidationTypeError(
                f"batch: expected a dict with an 'x' entry, got {type(batch).__name__}"
            )
        for key, what in (("x", "the data"), (self.context_key, "context_key")):
            if key is not None and key not in batch:
                raise ValidationError(
                    f"batch: expected an entry {key!r} ({what}), got keys {sorted(batch)}"
                )
        x = batch["x"]
        x = x if hasattr(x, "shape") else np.asarray(x)
        event_shape = tuple(self.flow.event_shape)
        check_array(x, "batch['x']", event_shape=event_shape, floating=False)
        if x.ndim != len(event_shape) + 1:
            expected = ", ".join(map(str, ("N", *event_shape)))
            raise ValidationError(
                f"batch['x']: expected shape ({expected}): one example axis before the event "
                f"shape {event_shape}, got shape {tuple(x.shape)} ({x.ndim - len(event_shape)} "
                "example axes); reshape the data to (N, *event_shape)"
            )
        check_finite(x, "batch['x']")

    def init(self, key: PRNGKey, batch):
        """Parameters and model state, initialised on ``batch`` (checked first: see
        ``_check_batch``; value checks only when the batch is concrete, not under jit)."""
        self._check_batch(batch)
        data_key, param_key = jax.random.split(key)
        x, context = self._inputs(jax.tree.map(jnp.asarray, batch), data_key)
        # Initialising through log_prob runs the data → noise direction, which is what
        # data-dependent initialisers (ActNorm) need.
        variables = self.flow.init(param_key, x, context, train=True, method=Flow.log_prob)
        variables = dict(variables)
        params = variables.pop("params", {})
        return params, variables

    def log_prob(self, params, model_state, x, context=None, *, key=None) -> Array:
        """log p(x), shape (B,), in evaluation mode (the objectives' ``log_prob`` convention:
        docs/architecture.md). For dequantised data (``num_levels``) ``x`` is already in
        [0, 1). Training-mode densities with their state updates are what `loss` computes; call
        ``jgen.bind(self.flow, variables).log_prob(x, train=True)`` for one.

        ``key`` feeds the ``'trace'`` RNG stream that stochastic layers draw from (e.g. a CNF with
        a Hutchinson trace estimator); deterministic flows ignore it.
        """
        lp, _, _ = self._log_prob(params, model_state, x, context, train=False, key=key)
        return lp

    def _log_prob(self, params, model_state, x, context, *, train: bool, key):
        """(log p(x), model state, the ``'intermediates'`` the layers sowed)."""
        variables = {"params": params, **model_state}
        rngs = None if key is None else {"trace": key}
        mutable = [*model_state, "intermediates"] if train else ["intermediates"]
        lp, updates = self.flow.apply(
            variables, x, context, train=train, method=Flow.log_prob, mutable=mutable, rngs=rngs
        )
        updates = dict(updates)
        intermediates = updates.pop("intermediates", {})
        if train:
            model_state = {**model_state, **updates}
        return lp, model_state, intermediates

    def _layer_metrics(self, intermediates) -> dict[str, Any]:
        """Per-example values sown by the layers (`jgen.bijectors.sow_metrics`), as floats."""
        real = jnp.result_type(float)
        return {
            name: v if jnp.issubdtype(v.dtype, jnp.floating) else v.astype(real)
            for name, v in collect_metrics(intermediates).items()
        }

    def _metrics(self, log_prob: Array) -> dict[str, Array]:
        metrics = {"nll": -log_prob}
        if self.num_levels is not None:
            metrics["bpd"] = bits_per_dim(log_prob, self.num_dims, self.num_levels)
        return metrics

    def loss(self, params, model_state, batch, key):
        x, context = self._inputs(batch, key)
        lp, model_state, intermediates = self._log_prob(
            params, model_state, x, context, train=True, key=_layer_key(key)
        )
        metrics = {k: jnp.mean(v) for k, v in self._metrics(lp).items()}
        layer_metrics = {k: jnp.mean(v) for k, v in self._layer_metrics(intermediates).items()}
        loss = metrics["nll"]
        for name, weight in self.regularization.items():
            if name not in layer_metrics:
                raise ValueError(
                    f"DensityObjective: regularization {name!r} is weighted but no layer "
                    f"reported it (a CNF integrates it with regularizers=({name!r}, ...))"
                )
            loss = loss + weight * layer_metrics[name]
        metrics.update(layer_metrics)
        return loss, (metrics, model_state)

    def evaluate(self, params, model_state, batch, key):
        x, context = self._inputs(batch, key)
        lp, _, intermediates = self._log_prob(
            params, model_state, x, context, train=False, key=_layer_key(key)
        )
        metrics = self._metrics(lp)
        metrics.update(self._layer_metrics(intermediates))
        return metrics

    def sample(self, params, model_state, key, num_samples: int, context=None):
        """``num_samples`` draws; ``key`` also feeds the ``'trace'`` stream of stochastic layers
        (a Hutchinson CNF's log-det along the way, which the samples do not depend on)."""
        variables = {"params": params, **model_state}
        rngs = {"trace": _layer_key(key)}
        return self.flow.apply(variables, key, num_samples, context, method=Flow.sample, rngs=rngs)


def _layer_key(key: PRNGKey) -> PRNGKey:
    # The step key itself dequantises the data; stochastic layers get a key derived from it.
    return jax.random.fold_in(key, 1)
