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
from typing import Any

import jax
import jax.numpy as jnp

from jgen.bijectors.base import Chain
from jgen.cnf import CNF, summarize_stats
from jgen.distributions import Flow, LogitPreprocess, uniform_dequantize
from jgen.flow_matching.coupling import Coupling, Independent, make_coupling
from jgen.flow_matching.diagnostics import integrate
from jgen.flow_matching.paths import LinearGaussianPath, ProbabilityPath
from jgen.flows import DensityObjective
from jgen.typing import Array, PRNGKey
from jgen.validation import ValidationError, check_array, check_finite, check_int

__all__ = ["FlowMatchingObjective"]


def _cnf_of(flow: Flow) -> CNF:
    bijector = flow.bijector
    return bijector if isinstance(bijector, CNF) else bijector.bijectors[-1]


def _velocity(flow: Flow, z: Array, t: Array, context: Array | None = None) -> Array:
    """v_θ(z, t[, context]) on a batch z (B, *event), t (B,), context (B, C), with the CNF's
    own parameters (used as ``apply(method=...)``). The field is applied to one event at a
    time, as the CNF does."""
    vector_field = _cnf_of(flow).vector_field
    if flow.is_initializing():  # create the parameters with one event
        vector_field(z[0], t[0], None if context is None else context[0])
    field, variables = vector_field.unbind()
    if context is None:
        return jax.vmap(lambda z_i, t_i: field.apply(variables, z_i, t_i))(z, t)
    return jax.vmap(lambda z_i, t_i, c_i: field.apply(variables, z_i, t_i, c_i))(z, t, context)


@dataclasses.dataclass(frozen=True)
class FlowMatchingObjective:
    """Flow matching for the field of ``cnf``; the model evaluated and sampled is the CNF itself.

    cnf:         a `jgen.cnf.CNF` with t0 = 0 (noise) < t1 = 1 (data); its solver,
                 tolerances and trace estimator are used for evaluation and sampling.
    path:        a `ProbabilityPath` (default ``LinearGaussianPath(sigma_min=1e-4)``).
    coupling:    a `Coupling` or its name in `COUPLINGS`: 'independent' (default), 'ot'
                 (exact mini-batch OT, `ExactOT`), 'sinkhorn' (entropic OT), 'ot_host'.
    num_levels:  K for discrete data (dequantised and modelled in logit space), else None.
    logit_alpha: α of the `LogitPreprocess` layer for discrete data.
    num_classes: K for class-conditional flow matching (batches carry ``'label'`` ints in
                 [0, K)): the field gets the context c = one_hot(label) and, with probability
                 ``label_dropout``, the null context c = 0, so one field learns v(x, t | y) and
                 v(x, t) (classifier-free guidance, Ho & Salimans 2022; for flows Zheng et al.
                 2023); `sample_guided` samples with a guidance scale. None: unconditional.
    label_dropout: the probability of the null context in training, in [0, 1).
    base:        the distribution at t = 0 for likelihoods and sampling (None: N(0, I); e.g.
                 `sphere.UniformSphere()` with `sphere.GeodesicPath()` on S²). Training's noise
                 is always N(0, I), which a path may map onto the base (GeodesicPath normalises
                 it).
    """

    cnf: CNF
    path: ProbabilityPath = dataclasses.field(default_factory=LinearGaussianPath)
    coupling: str | Coupling = "independent"
    num_levels: int | None = None
    logit_alpha: float = 0.05
    num_classes: int | None = None
    label_dropout: float = 0.1
    base: Any = None

    def __post_init__(self):
        if self.num_classes is not None:
            check_int(self.num_classes, "num_classes", minimum=1, owner="FlowMatchingObjective")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValidationError(
                "FlowMatchingObjective: label_dropout must be in [0, 1), got "
                f"{self.label_dropout!r}"
            )
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
        return Flow(bijector, tuple(self.cnf.event_shape), base=self.base)

    @functools.cached_property
    def density(self) -> DensityObjective:
        """Maximum likelihood of the same flow: its evaluate/log_prob/sample are reused."""
        context_key = None if self.num_classes is None else "context"
        return DensityObjective(self.flow, num_levels=self.num_levels, context_key=context_key)

    @property
    def event_axes(self) -> tuple[int, ...]:
        return tuple(range(-len(self.cnf.event_shape), 0))

    def velocity(self, params, model_state, z: Array, t: Array, context=None) -> Array:
        """v_θ(z, t[, context]) for a batch z (B, *event), times t (B,), context (B, C)."""
        variables = {"params": params, **model_state}
        return self.flow.apply(variables, z, t, context, method=_velocity)

    def label_context(self, labels: Array, keep: Array | None = None) -> Array:
        """c = one_hot(labels, K) (B, K), zero (the null context) where ``keep`` is False."""
        if self.num_classes is None:
            raise ValidationError("FlowMatchingObjective: labels need num_classes")
        context = jax.nn.one_hot(labels, self.num_classes, dtype=jnp.result_type(float))
        return context if keep is None else context * keep[:, None].astype(context.dtype)

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
        context = None
        if self.num_classes is not None:
            context = jnp.zeros((x1.shape[0], self.num_classes), x1.dtype)
        variables = dict(self.flow.init(param_key, x1, t, context, method=_velocity))
        return variables.pop("params"), variables

    def data_in_cnf_space(self, x: Array, key: PRNGKey) -> Array:
        """x1: the data as the CNF sees it (dequantised and in logit space for discrete data)."""
        if self.num_levels is None:
            return x.astype(jnp.result_type(float))
        y = uniform_dequantize(key, x, self.num_levels)
        return self.preprocess.apply({}, y, method="inverse")

    def per_example_loss(
        self,
        params,
        model_state,
        x: Array,
        key: PRNGKey,
        coupling: str | Coupling | None = None,
        x0: Array | None = None,
        context: Array | None = None,
    ) -> Array:
        """||v_θ(x_t, t) − u_t||² per example, for data x (B, *event) and one key; ``coupling``
        overrides the objective's (None: the objective's own). ``x0``: the noise already paired
        with x (e.g. reflow's pairs; continuous data only): no noise is drawn, no coupling.
        ``context`` (B, C): the field's conditioning (class-conditional models)."""
        deq_key, noise_key, time_key, path_key, pair_key = jax.random.split(key, 5)
        x1 = self.data_in_cnf_space(x, deq_key)
        if x0 is None:
            coupling = self.coupling if coupling is None else make_coupling(coupling)
            x0 = coupling(pair_key, jax.random.normal(noise_key, x1.shape, x1.dtype), x1)
        elif self.num_levels is not None or x0.shape != x1.shape:
            raise ValidationError(
                f"FlowMatchingObjective: given noise x0 needs continuous data of the same shape, "
                f"got x0 {tuple(x0.shape)} for data {tuple(x1.shape)} (num_levels="
                f"{self.num_levels})"
            )
        t = jax.random.uniform(time_key, x1.shape[:1], x1.dtype)
        x_t, target = self.path.sample(path_key, x0, x1, t)
        v = self.velocity(params, model_state, x_t, t, context)
        return jnp.sum(jnp.square(v - target), axis=self.event_axes)

    def loss(self, params, model_state, batch, key):
        """The mean flow-matching loss; a batch with an ``'x0'`` entry brings its own noise,
        paired row by row with ``'x'`` (rectified flow's reflow)."""
        x0 = batch.get("x0") if isinstance(batch, Mapping) else None
        context = None
        if self.num_classes is not None:  # classifier-free guidance: drop labels at random
            keep = jax.random.bernoulli(
                jax.random.fold_in(key, 7), 1.0 - self.label_dropout, batch["label"].shape
            )
            context = self.label_context(batch["label"], keep)
        value = jnp.mean(
            self.per_example_loss(params, model_state, batch["x"], key, x0=x0, context=context)
        )
        return value, ({"fm_loss": value}, model_state)

    def evaluate(self, params, model_state, batch, key):
        """Per-example exact ``nll`` (and ``bpd``) through the CNF, and the ``fm_loss`` with the
        independent coupling: an OT coupling would make it depend on the evaluation batch."""
        context = None
        if self.num_classes is not None:  # the class-conditional likelihood log p(x | y)
            context = self.label_context(batch["label"])
            batch = {**batch, "context": context}
        metrics = dict(self.density.evaluate(params, model_state, batch, key))
        fm_key = jax.random.fold_in(key, 2)
        metrics["fm_loss"] = self.per_example_loss(
            params, model_state, batch["x"], fm_key, coupling=Independent(), context=context
        )
        return metrics

    # Likelihoods and samples -----------------------------------------------------------------
    @functools.cached_property
    def joint_flow(self) -> Flow:
        """The same flow with the CNF solved as ONE ODE per batch (FFJORD's way; same params)."""
        cnf = self.cnf.clone(solve_jointly=True)
        bijector = cnf if self.preprocess is None else Chain([self.preprocess, cnf])
        return Flow(bijector, tuple(cnf.event_shape), base=self.base)

    def _flow(self, jointly: bool) -> Flow:
        return self.joint_flow if jointly else self.flow

    def log_prob(
        self,
        params,
        model_state,
        x: Array,
        context: Array | None = None,
        *,
        key: PRNGKey | None = None,
        jointly: bool = False,
    ) -> Array:
        """Exact log p(x) (B,) of continuous (or dequantised, in [0, 1)) data: one inverse solve
        of the augmented ODE from t = 1 to 0. Differentiable w.r.t. the parameters and x (through
        the CNF's adjoint). ``jointly``: one ODE for the whole batch instead of one per example
        (shared steps: faster on accelerators, but log p(x_i) then depends on the batch up to the
        solver's tolerance). ``key`` feeds a stochastic trace estimator. ``context`` (B, C):
        the conditioning of a class-conditional model (`label_context`)."""
        rngs = None if key is None else {"trace": key}
        variables = {"params": params, **model_state}
        return self._flow(jointly).apply(variables, x, context, method=Flow.log_prob, rngs=rngs)

    def _forward(self, params, model_state, key, num_samples, jointly):
        variables = {"params": params, **model_state}
        (x, log_prob), state = self._flow(jointly).apply(
            variables, key, num_samples, method=Flow.sample_and_log_prob,
            mutable=["intermediates"], rngs={"trace": jax.random.fold_in(key, 1)},
        )  # fmt: skip
        return x, log_prob, state

    def sample_and_log_prob(
        self, params, model_state, key: PRNGKey, num_samples: int, *, jointly: bool = False
    ) -> tuple[Array, Array]:
        """``num_samples`` draws and their exact log-likelihoods from ONE forward solve.

        The augmented ODE d/dt (z, a) = (v_θ(z, t), tr ∂v_θ/∂z) runs from z(0) = x0 ~ N(0, I),
        a(0) = 0 to t = 1: x = z(1) and log p(x) = log N(x0; 0, I) − a(1) (the instantaneous
        change of variables), so no second (inverse) solve is needed; the result equals
        `log_prob` of the samples up to the solver's tolerance (a test checks this). The
        log-likelihood is differentiable w.r.t. the parameters (reparametrised through x0).
        For discrete data the samples are in [0, 1) and log p is their dequantised density.
        ``jointly`` as in `log_prob`."""
        x, log_prob, _ = self._forward(params, model_state, key, num_samples, jointly)
        return x, log_prob

    def sample(self, params, model_state, key: PRNGKey, num_samples: int) -> Array:
        """Draws from the CNF (forward solve from N(0, I)); in [0, 1) for discrete data."""
        return self.density.sample(params, model_state, key, num_samples)

    def sample_with_stats(self, params, model_state, key: PRNGKey, num_samples: int):
        """(samples, solver statistics of `jgen.cnf.summarize_stats`: mean ``nfe`` per sample,
        ``num_steps``, ...)."""
        x, _, state = self._forward(params, model_state, key, num_samples, False)
        return x, summarize_stats(state)

    def sample_guided(
        self, params, model_state, key: PRNGKey, labels: Array, guidance: float = 1.0, *,
        rtol: float = 1e-5, atol: float = 1e-5,
    ) -> Array:  # fmt: skip
        """One draw per label (B,) with classifier-free guidance of scale w = ``guidance``:
        the ODE of ṽ = v(x, t) + w (v(x, t | y) − v(x, t)) from N(0, I) at t = 0 to t = 1
        (w = 1: the conditional model, w = 0: the unconditional one, w > 1: sharper classes).
        Continuous data only (no `LogitPreprocess` is applied)."""
        labels = jnp.asarray(labels)
        conditional = self.label_context(labels)

        def guided(z, t, context):
            v_cond = self.velocity(params, model_state, z, t, context)
            v_null = self.velocity(params, model_state, z, t, jnp.zeros_like(context))
            return v_null + guidance * (v_cond - v_null)

        x0 = jax.random.normal(key, (len(labels), *self.cnf.event_shape), jnp.result_type(float))
        return integrate(guided, x0, jnp.ones(1), context=conditional, rtol=rtol, atol=atol)[:, -1]
