"""Conditional flow matching (Lipman et al. 2023; Tong et al. 2023) as a trainer `Objective`.

Training is simulation-free: no ODE is solved. For data x1, noise x0 ~ N(0, I) (re-paired with
the data by the coupling: independent or mini-batch OT, `jgen.flow_matching.coupling`) and
t ~ U[0, 1], a `ProbabilityPath` gives x_t and the conditional target u_t, and

    loss = (1/B) Σ_b ||v_θ(x_t^b, t^b) − u_t^b||²        (squared norm summed over the event)

regresses the CNF's vector field v_θ = h(z, t) on it. The field is the ``vector_field`` of a
`jgen.cnf.CNF` with t0 = 0 (noise) and t1 = 1 (data), so the trained model IS that CNF:

* sampling is the CNF's forward solve (diffrax) from N(0, I) at t = 0 to t = 1;
* evaluation is the EXACT log-likelihood of the CNF (its inverse solve with the trace
  estimator the CNF was built with: `ExactTrace`, or `Hutchinson` for an unbiased estimate),
  through `jgen.distributions.Flow` and `DensityObjective` — per-example ``nll`` in nats, and
  ``bpd`` for discrete data, with the same convention as every jgen flow.

Discrete data (``num_levels`` = K) is dequantised, y = (x + u)/K, and mapped to logit space by
`LogitPreprocess` (the flow's data-side layer, its log-det counted in log p): the CNF, and so
flow matching, works on z = LogitPreprocess⁻¹(y). Training draws y with the step key exactly as
`DensityObjective` does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jgen.bijectors.base import Chain
from jgen.cnf import CNF, summarize_stats
from jgen.distributions import DensityObjective, Flow, LogitPreprocess, uniform_dequantize
from jgen.flow_matching.coupling import Coupling, Independent, make_coupling
from jgen.flow_matching.paths import LinearGaussianPath, ProbabilityPath
from jgen.typing import Array, PRNGKey
from jgen.validation import ValidationError, check_array, check_finite

__all__ = ["FlowMatchingObjective"]


def _cnf_of(flow: Flow) -> CNF:
    bijector = flow.bijector
    return bijector if isinstance(bijector, CNF) else bijector.bijectors[-1]


def _velocity(flow: Flow, z: Array, t: Array) -> Array:
    """v_θ(z, t) on a batch z (B, *event), t (B,), with the CNF's own parameters (used as
    ``apply(method=...)``). The field is applied to one event at a time, as the CNF does."""
    vector_field = _cnf_of(flow).vector_field
    if flow.is_initializing():  # create the parameters with one event
        vector_field(z[0], t[0])
    field, variables = vector_field.unbind()
    return jax.vmap(lambda z_i, t_i: field.apply(variables, z_i, t_i))(z, t)


@dataclasses.dataclass(frozen=True)
class FlowMatchingObjective:
    """Flow matching for the field of ``cnf``; the model evaluated and sampled is the CNF itself.

    cnf:         a `jgen.cnf.CNF` with t0 = 0 (noise) < t1 = 1 (data) and no context; its
                 solver, tolerances and trace estimator are used for evaluation and sampling.
    path:        a `ProbabilityPath` (default ``LinearGaussianPath(sigma_min=1e-4)``).
    coupling:    a `Coupling` or its name in `COUPLINGS`: 'independent' (default), 'ot'
                 (exact mini-batch OT on the device), 'sinkhorn' (entropic OT), 'ot_host'.
    num_levels:  K for discrete data (dequantised and modelled in logit space), else None.
    logit_alpha: α of the `LogitPreprocess` layer for discrete data.
    """

    cnf: CNF
    path: ProbabilityPath = dataclasses.field(default_factory=LinearGaussianPath)
    coupling: str | Coupling = "independent"
    num_levels: int | None = None
    logit_alpha: float = 0.05

    def __post_init__(self):
        if not isinstance(self.cnf, CNF):
            raise TypeError(
                f"FlowMatchingObjective: cnf must be a jgen.cnf.CNF, got {type(self.cnf).__name__}"
            )
        if (self.cnf.t0, self.cnf.t1) != (0.0, 1.0):
            raise ValueError(
                "FlowMatchingObjective: the CNF must run from noise at t0=0 to data at t1=1, got "
                f"t0={self.cnf.t0}, t1={self.cnf.t1}"
            )
        if not isinstance(self.path, ProbabilityPath):
            raise TypeError(
                f"FlowMatchingObjective: path must be a ProbabilityPath, got {self.path!r}"
            )
        try:
            object.__setattr__(self, "coupling", make_coupling(self.coupling))
        except ValidationError as error:
            raise ValidationError(f"FlowMatchingObjective: {error}") from None

    # The model -------------------------------------------------------------------------------
    @functools.cached_property
    def preprocess(self) -> LogitPreprocess | None:
        if self.num_levels is None:
            return None
        return LogitPreprocess(self.logit_alpha, event_ndims=len(self.cnf.event_shape))

    @functools.cached_property
    def flow(self) -> Flow:
        """The distribution: N(0, I) pushed through the CNF (and `LogitPreprocess`)."""
        bijector = self.cnf if self.preprocess is None else Chain([self.preprocess, self.cnf])
        return Flow(bijector, tuple(self.cnf.event_shape))

    @functools.cached_property
    def density(self) -> DensityObjective:
        """Maximum likelihood of the same flow: its evaluate/log_prob/sample are reused."""
        return DensityObjective(self.flow, num_levels=self.num_levels)

    @property
    def event_axes(self) -> tuple[int, ...]:
        return tuple(range(-len(self.cnf.event_shape), 0))

    def velocity(self, params, model_state, z: Array, t: Array) -> Array:
        """v_θ(z, t) for a batch z (B, *event) and times t (B,)."""
        return self.flow.apply({"params": params, **model_state}, z, t, method=_velocity)

    # Objective -------------------------------------------------------------------------------
    def init(self, key: PRNGKey, batch):
        """Parameters of the field, created by one call of it on the batch (no ODE solve)."""
        if not isinstance(batch, Mapping) or "x" not in batch:
            raise ValidationError(f"batch: expected a dict with an 'x' entry, got {batch!r:.80}")
        x = jnp.asarray(batch["x"])
        check_array(x, "batch['x']", event_shape=self.cnf.event_shape, floating=False)
        check_finite(x, "batch['x']")
        data_key, param_key = jax.random.split(key)
        x1 = self.data_in_cnf_space(x, data_key)
        t = jnp.zeros(x1.shape[:1], x1.dtype)
        variables = dict(self.flow.init(param_key, x1, t, method=_velocity))
        return variables.pop("params"), variables

    def data_in_cnf_space(self, x: Array, key: PRNGKey) -> Array:
        """x1: the data as the CNF sees it (dequantised and in logit space for discrete data)."""
        if self.num_levels is None:
            return x.astype(jnp.result_type(float))
        y = uniform_dequantize(key, x, self.num_levels)
        return self.preprocess.apply({}, y, method="inverse")

    def per_example_loss(
        self, params, model_state, x: Array, key: PRNGKey, coupling: str | Coupling | None = None
    ) -> Array:
        """||v_θ(x_t, t) − u_t||² per example, for data x (B, *event) and one key; ``coupling``
        overrides the objective's (None: the objective's own)."""
        deq_key, noise_key, time_key, path_key, pair_key = jax.random.split(key, 5)
        x1 = self.data_in_cnf_space(x, deq_key)
        coupling = self.coupling if coupling is None else make_coupling(coupling)
        x0 = coupling(pair_key, jax.random.normal(noise_key, x1.shape, x1.dtype), x1)
        t = jax.random.uniform(time_key, x1.shape[:1], x1.dtype)
        x_t, target = self.path.sample(path_key, x0, x1, t)
        v = self.velocity(params, model_state, x_t, t)
        return jnp.sum(jnp.square(v - target), axis=self.event_axes)

    def loss(self, params, model_state, batch, key):
        value = jnp.mean(self.per_example_loss(params, model_state, batch["x"], key))
        return value, ({"fm_loss": value}, model_state)

    def evaluate(self, params, model_state, batch, key):
        """Per-example exact ``nll`` (and ``bpd``) through the CNF, and the ``fm_loss`` with the
        independent coupling: an OT coupling would make it depend on the evaluation batch."""
        metrics = dict(self.density.evaluate(params, model_state, batch, key))
        fm_key = jax.random.fold_in(key, 2)
        metrics["fm_loss"] = self.per_example_loss(
            params, model_state, batch["x"], fm_key, coupling=Independent()
        )
        return metrics

    def log_prob(self, params, model_state, x: Array, key: PRNGKey | None = None):
        """log p(x) of continuous (or already dequantised, in [0, 1)) data through the CNF."""
        return self.density.log_prob(params, model_state, x, key=key)[0]

    def sample(self, params, model_state, key: PRNGKey, num_samples: int) -> Array:
        """Draws from the CNF (forward solve from N(0, I)); in [0, 1) for discrete data."""
        return self.density.sample(params, model_state, key, num_samples)

    def sample_with_stats(self, params, model_state, key: PRNGKey, num_samples: int):
        """(samples, solver statistics of `jgen.cnf.summarize_stats`: mean ``nfe`` per sample,
        ``num_steps``, ...)."""
        variables = {"params": params, **model_state}
        x, state = self.flow.apply(
            variables, key, num_samples, method=Flow.sample, mutable=["intermediates"],
            rngs={"trace": jax.random.fold_in(key, 1)},
        )  # fmt: skip
        return x, summarize_stats(state)
