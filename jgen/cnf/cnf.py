"""Continuous normalizing flows (Chen et al. 2018, FFJORD: Grathwohl et al. 2019).

A CNF is the time-t1 map of an ODE dz/dt = h(z, t) (eq. 2.18). Along a solution the log-density
evolves by the instantaneous change of variables d log p(z(t))/dt = −tr(∂h/∂z (z(t), t))
(eq. 2.21), and the log-determinant of the Jacobian of the flow map z(t0) ↦ z(t1) is

    log|det ∂z(t1)/∂z(t0)| = ∫_{t0}^{t1} tr(∂h/∂z (z(t), t)) dt.

`CNF` solves the augmented ODE

    d/dt (z, a) = (h(z, t), tr(∂h/∂z (z, t)))

with diffrax. forward (base → data, sampling) starts from (x, 0) at t0 and integrates to t1:
y = z(t1) and log|det ∂f/∂x| = a(t1) (eq. 2.19). inverse (data → base, density) starts from
(y, 0) at t1 and integrates backwards to t0: x = z(t0) and a(t0) = −∫_{t0}^{t1} tr dt =
log|det ∂f⁻¹/∂y| (eq. 2.20). In a `Flow`, log p(y) = log p_Z(x) + a(t0), which is eq. 2.22.

**Batches.** The per-event dynamics are vmapped over the batch. By default every event is its
own ODE solve (``solve_jointly=False``): each gets its own adaptive step sizes, an event's
result does not depend on the other events of the batch (so log p(x) is the same whether x is
evaluated alone or in any batch, and a vmapped call equals the batched one), and the stats are
per event. Under vmap a batch still costs as many steps as its hardest event. With
``solve_jointly=True`` the whole batch is one ODE with shared steps and one error norm over all
events, as in FFJORD/torchdiffeq: the number of steps then depends on the batch.

**Trace estimators** (`jgen.cnf.trace`): ``ExactTrace()`` (default, D products per
evaluation), ``Hutchinson(...)`` or ``HutchPlusPlus(...)``. The probes of a stochastic estimator
are drawn once per solve (independently per event) and kept fixed along the trajectory, as in
FFJORD, so the log-det is an unbiased estimate of the exact one (up to the solver's error). The
key comes from the Flax RNG stream ``'trace'``: call ``apply(variables, x, method=...,
rngs={'trace': key})``; ``init`` falls back on the ``'params'`` key. ``ExactTrace`` needs no key.
Since the variables do not depend on the estimator, a model trained with ``Hutchinson`` can be
evaluated exactly by rebuilding it with ``trace_estimator=ExactTrace()``.

**Solver statistics.** Every solve sows a dict into the ``'intermediates'`` collection under
the name ``'cnf_stats'``: ``num_steps``, ``num_accepted_steps``, ``num_rejected_steps``,
``succeeded`` (bool) and, for Euler and Runge-Kutta solvers, ``nfe`` (evaluations of the
augmented dynamics implied by the solver's tableau: one per stage, minus the stage reused by
first-same-as-last methods; diffrax 0.7 picks the first adaptive step without evaluating the
dynamics; a test counts the real evaluations). Each value has the batch shape (in a joint
solve every event reports the batch's count). They describe the primal solve only (not the
backward pass). Get them with ``out, state = model.apply(variables, x, method=...,
mutable=['intermediates'])``; `summarize_stats(state)` adds them up over every CNF in a model.
Nothing is recorded by ``init``, so initialised variables hold no ``'intermediates'``.

**Regularisers** (RNODE, Finlay et al. 2020, "How to train your neural ODE"). With
``regularizers=('kinetic_energy', 'jacobian_frobenius')`` (either or both) the solve integrates
extra states along the same trajectory,

    E = ∫_{t0}^{t1} ||h(z(t), t)||^2 dt          (kinetic energy)
    F = ∫_{t0}^{t1} ||∂h/∂z (z(t), t)||_F^2 dt   (Jacobian Frobenius norm)

F uses the trace estimator's own products (exact for ``ExactTrace``, unbiased ||A ε||^2 for the
stochastic ones), so it costs no extra evaluations. Both are non-negative whichever the direction
of integration, have the batch shape, and are sown into ``'intermediates'`` under
``'cnf_regularizers'`` (differentiable: a loss adds λ_E E + λ_F F, see `collect_regularizers`
and `jgen.distributions.DensityObjective`'s ``regularization``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.base import Bijector, sow_metrics, trace_rng
from jgen.cnf.trace import ExactTrace, TraceEstimator
from jgen.typing import Array

__all__ = [
    "CNF",
    "REGULARIZERS",
    "REGULARIZERS_NAME",
    "STATS_NAME",
    "collect_nfe",
    "collect_regularizers",
    "collect_stat",
    "summarize_stats",
]

STATS_NAME = "cnf_stats"
REGULARIZERS_NAME = "cnf_regularizers"
REGULARIZERS = ("kinetic_energy", "jacobian_frobenius")
# Solver statistics reported as layer metrics, under these names.
_METRIC_NAMES = {"nfe": "nfe", "num_accepted_steps": "accepted_steps",
                 "num_rejected_steps": "rejected_steps"}  # fmt: skip


class CNF(Bijector):
    """A continuous normalizing flow f = flow map of dz/dt = h(z, t[, context]) from t0 to t1.

    forward:  y = z(t1) with z(t0) = x,   log|det ∂f/∂x| = ∫_{t0}^{t1} tr(∂h/∂z) dt
    inverse:  x = z(t0) with z(t1) = y,   log|det ∂f⁻¹/∂y| = −∫_{t0}^{t1} tr(∂h/∂z) dt

    (see the module docstring for the augmented ODE, batching, keys and statistics).

    vector_field:        a Flax module ``h(z, t, context=None)`` acting on one event (e.g.
                         `MLPField`, `ConcatSquashField`); it must not couple events.
    event_shape:         shape of one event; ``event_ndims = len(event_shape)``. The field sees
                         events of this shape; trace estimators see them flattened.
    t0, t1:              integration interval, t0 < t1.
    solver:              a diffrax solver (default Tsit5).
    stepsize_controller: default ``PIDController(rtol=1e-5, atol=1e-5)``; with
                         ``ConstantStepSize()`` give ``dt0``.
    adjoint:             how gradients are computed: ``RecursiveCheckpointAdjoint()`` (default,
                         discretise-then-optimise), ``BacksolveAdjoint()`` (the continuous
                         adjoint of Chen et al., O(1) memory, approximate gradients) or
                         ``ForwardMode()`` (for jax.jvp/jacfwd).
    trace_estimator:     ``ExactTrace()`` (default), ``Hutchinson(...)``, ``HutchPlusPlus(...)``
                         or another `TraceEstimator` subclass.
    dt0:                 initial step size (None: chosen by the controller), required and
                         fixed for constant step sizes. Always positive; its sign follows the
                         direction of integration.
    max_steps:           the solve fails (an error, or ``succeeded=False`` with ``throw=False``)
                         after this many steps.
    solve_jointly:       solve the batch as one ODE (FFJORD's behaviour) instead of one ODE per
                         event (default).
    throw:               raise on a failed solve (diffrax's ``throw``).
    regularizers:        RNODE terms to integrate along the solve: a tuple of
                         'kinetic_energy' and/or 'jacobian_frobenius' (module docstring).
    """

    vector_field: nn.Module
    event_shape: tuple[int, ...]
    t0: float = 0.0
    t1: float = 1.0
    solver: Any = diffrax.Tsit5()
    stepsize_controller: Any = diffrax.PIDController(rtol=1e-5, atol=1e-5)
    adjoint: Any = diffrax.RecursiveCheckpointAdjoint()
    trace_estimator: Any = ExactTrace()
    dt0: float | None = None
    max_steps: int = 4096
    solve_jointly: bool = False
    throw: bool = True
    regularizers: tuple[str, ...] = ()

    def __post_init__(self):
        self._validate()
        object.__setattr__(self, "event_shape", tuple(self.event_shape))
        object.__setattr__(self, "regularizers", tuple(self.regularizers))
        super().__post_init__()

    def _validate(self) -> None:
        if not isinstance(self.vector_field, nn.Module):
            raise TypeError(
                "CNF: vector_field must be a flax.linen Module h(z, t, context=None), got "
                f"{type(self.vector_field).__name__}"
            )
        shape = self.event_shape
        if isinstance(shape, int) or not isinstance(shape, (tuple, list)) or not shape:
            raise ValueError(f"CNF: event_shape must be a non-empty tuple of ints, got {shape!r}")
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            raise ValueError(f"CNF: event_shape must hold positive ints, got {shape!r}")
        for name in ("t0", "t1"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"CNF: {name} must be a real number, got {value!r}")
        if not self.t0 < self.t1:
            raise ValueError(f"CNF: need t0 < t1, got t0={self.t0}, t1={self.t1}")
        expected = [
            ("solver", diffrax.AbstractSolver),
            ("stepsize_controller", diffrax.AbstractStepSizeController),
            ("adjoint", diffrax.AbstractAdjoint),
            ("trace_estimator", TraceEstimator),
        ]
        for name, cls in expected:
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise TypeError(
                    f"CNF: {name} must be a {cls.__module__}.{cls.__name__}, got "
                    f"{type(value).__name__}"
                )
        if self.dt0 is not None and (
            isinstance(self.dt0, bool) or not isinstance(self.dt0, numbers.Real) or self.dt0 <= 0
        ):
            raise ValueError(f"CNF: dt0 must be None or a positive number, got {self.dt0!r}")
        if isinstance(self.stepsize_controller, diffrax.ConstantStepSize) and self.dt0 is None:
            raise ValueError("CNF: a ConstantStepSize controller needs dt0 (the step size)")
        if isinstance(self.regularizers, str) or not all(
            r in REGULARIZERS for r in self.regularizers
        ):
            raise ValueError(
                f"CNF: regularizers must be a tuple of names from {REGULARIZERS}, got "
                f"{self.regularizers!r}"
            )
        steps = self.max_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"CNF: max_steps must be a positive int, got {steps!r}")

    @property
    def metric_names(self) -> tuple[str, ...]:
        """What a solve reports through `jgen.bijectors.sow_metrics`: solver counts per
        example (``nfe``, ``accepted_steps``, ``rejected_steps``) and the regularisers."""
        return (*_METRIC_NAMES.values(), *self.regularizers)

    @property
    def event_ndims(self) -> int:
        return len(self.event_shape)

    def forward_and_log_det(self, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        return self._transform(x, context, inverse=False)

    def inverse_and_log_det(self, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        return self._transform(y, context, inverse=True)

    # Implementation ------------------------------------------------------------------------
    def _transform(self, x: Array, context: Array | None, inverse: bool) -> tuple[Array, Array]:
        x = jnp.asarray(x)
        batch_shape = self._check_input(x)
        num_events = math.prod(batch_shape)
        dim = math.prod(self.event_shape)
        dtype = x.dtype
        z = x.reshape(num_events, dim)
        flat_context = None
        if context is not None:
            context = jnp.asarray(context)
            if context.ndim < 1 or tuple(context.shape[:-1]) != batch_shape:
                raise ValueError(
                    f"CNF: context must have shape (*batch_shape, C) with batch_shape "
                    f"{batch_shape}, got {tuple(context.shape)}"
                )
            flat_context = context.reshape(num_events, context.shape[-1])

        field, variables = self._unbound_field(dtype, context)
        probes = self._probes(num_events, dim, dtype)
        start, end = (self.t1, self.t0) if inverse else (self.t0, self.t1)
        z_out, log_det, regs, stats = self._solve(
            field, variables, z, flat_context, probes, start, end
        )
        stats = {
            k: jnp.broadcast_to(v, (num_events,)).reshape(batch_shape) for k, v in stats.items()
        }
        if not self.is_initializing():  # init's variables must not carry statistics
            self.sow("intermediates", STATS_NAME, stats)
            values = {
                name: regs[:, i].reshape(batch_shape) for i, name in enumerate(self.regularizers)
            }
            if values:
                self.sow("intermediates", REGULARIZERS_NAME, values)
            # The same arrays as generic layer metrics (jgen.bijectors.collect_metrics).
            renamed = {new: stats[old] for old, new in _METRIC_NAMES.items() if old in stats}
            sow_metrics(self, {**renamed, **values})
        return z_out.reshape(x.shape), log_det.reshape(batch_shape)

    def _check_input(self, x: Array) -> tuple[int, ...]:
        n = self.event_ndims
        if x.ndim < n or tuple(x.shape[x.ndim - n :]) != self.event_shape:
            raise ValueError(
                f"CNF: input must end in the event shape {self.event_shape}, got shape "
                f"{tuple(x.shape)}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"CNF: input must be a floating-point array, got dtype {x.dtype}")
        adaptive = not isinstance(self.stepsize_controller, diffrax.ConstantStepSize)
        if adaptive and jnp.finfo(x.dtype).bits < 32:
            # The error estimate cannot fall below rtol in half precision: the solve would run
            # to max_steps and fail inside diffrax's runtime check.
            raise TypeError(
                f"CNF: input must be float32 or float64 with adaptive step control, got dtype "
                f"{x.dtype}; cast it (x.astype(jnp.float32)) or use a constant step size"
            )
        return tuple(x.shape[: x.ndim - n])

    def _unbound_field(self, dtype, context: Array | None) -> tuple[nn.Module, Any]:
        """The vector field as a pure function: an unbound module and its variables.

        The ODE solve applies the field to variables passed as diffrax ``args`` (so that every
        adjoint, BacksolveAdjoint included, differentiates them); Flax parameters are created
        by one call on a dummy event at initialisation.
        """
        if self.is_initializing():
            example_context = None
            if context is not None:
                example_context = jnp.zeros(context.shape[-1:], context.dtype)
            self.vector_field(
                jnp.zeros(self.event_shape, dtype), jnp.asarray(self.t0, dtype), example_context
            )
        return self.vector_field.unbind()

    def _probes(self, num_events: int, dim: int, dtype) -> Any:
        estimator = self.trace_estimator
        if not estimator.stochastic:
            return None
        needs_key = f"the trace estimator {type(estimator).__name__}"
        keys = jax.random.split(trace_rng(self, needs_key, "ExactTrace()"), num_events)
        probes = jax.vmap(lambda k: estimator.init_probes(k, (dim,), dtype))(keys)
        return jax.lax.stop_gradient(probes)

    def _solve(self, field, variables, z, context, probes, start, end):
        """Solve the augmented ODE for a (N, D) batch from time ``start`` to ``end``."""
        problem = _AugmentedSolve(
            field=field,
            event_shape=self.event_shape,
            dtype=jnp.dtype(z.dtype),
            solver=self.solver,
            stepsize_controller=self.stepsize_controller,
            adjoint=self.adjoint,
            trace_estimator=self.trace_estimator,
            dt0=self.dt0,
            max_steps=self.max_steps,
            solve_jointly=self.solve_jointly,
            throw=self.throw,
            regularizers=self.regularizers,
        )
        # The times are arguments, not constants: forward and inverse share one compilation.
        times = jnp.asarray([start, end], z.dtype)
        try:
            hash(problem)
        except TypeError:  # a vector field with unhashable attributes: no compilation cache
            return problem(variables, z, context, probes, times)
        return _solve_jitted(problem, variables, z, context, probes, times)


@dataclasses.dataclass(frozen=True)
class _AugmentedSolve:
    """Everything static about one solve of the augmented ODE (hashable, a jit cache key).

    Called as ``problem(variables, z, context, probes, times)`` on a (N, D) batch, integrating
    from ``times[0]`` to ``times[1]``; returns the final states (N, D), the log-dets (N,) and
    the regularisers (N, R) and the statistics (per event, or scalars when joint).
    """

    field: nn.Module
    event_shape: tuple[int, ...]
    dtype: Any
    solver: Any
    stepsize_controller: Any
    adjoint: Any
    trace_estimator: Any
    dt0: float | None
    max_steps: int
    solve_jointly: bool
    throw: bool
    regularizers: tuple[str, ...] = ()

    def event_dynamics(self, t, z, probes, context, variables):
        """(dz/dt, tr ∂h/∂z, regulariser rates (R,)) for one flat event z of shape (D,)."""
        t = jnp.asarray(t, self.dtype)

        def field_fn(v):
            out = self.field.apply(variables, v.reshape(self.event_shape), t, context)
            return out.reshape(-1).astype(self.dtype)

        frobenius = "jacobian_frobenius" in self.regularizers
        dz, trace, frob = self.trace_estimator.estimate(field_fn, z, probes, frobenius=frobenius)
        rates = {"kinetic_energy": lambda: jnp.sum(dz**2), "jacobian_frobenius": lambda: frob}
        reg = (
            jnp.stack([rates[name]() for name in self.regularizers])
            if self.regularizers
            else (jnp.zeros((0,), self.dtype))
        )
        return dz, jnp.asarray(trace, self.dtype), reg.astype(self.dtype)

    def dynamics(self, t, state, args):
        variables, probes, context = args
        if self.solve_jointly:
            batched = jax.vmap(self.event_dynamics, in_axes=(None, 0, 0, 0, None))
            rates = batched(t, state[0], probes, context, variables)
        else:
            rates = self.event_dynamics(t, state[0], probes, context, variables)
        return _batched_like_state(rates, state[0])

    def solve(self, z0, probes, context, variables, times):
        start, end = times[0], times[1]
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(self.dynamics),
            self.solver,
            t0=start,
            t1=end,
            # diffrax takes dt0 with the sign of t1 - t0.
            dt0=None if self.dt0 is None else jnp.sign(end - start) * self.dt0,
            y0=(
                z0,
                jnp.zeros(z0.shape[:-1], self.dtype),
                jnp.zeros((*z0.shape[:-1], len(self.regularizers)), self.dtype),
            ),
            args=(variables, probes, context),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=self.stepsize_controller,
            adjoint=self.adjoint,
            max_steps=self.max_steps,
            throw=self.throw,
        )
        z1, log_det, regs = (leaf[0] for leaf in sol.ys)
        # Integrating backwards accumulates −∫ of the (non-negative) rates.
        regs = jnp.sign(end - start) * regs
        return z1, log_det, regs, self.stats(sol)

    def stats(self, sol: diffrax.Solution) -> dict[str, Array]:
        num_steps = sol.stats["num_steps"]
        stats = {
            "num_steps": num_steps,
            "num_accepted_steps": sol.stats["num_accepted_steps"],
            "num_rejected_steps": sol.stats["num_rejected_steps"],
            "succeeded": sol.result == diffrax.RESULTS.successful,
        }
        evals = _evaluations_per_step(self.solver)
        if evals is not None:
            per_step, once = evals
            stats["nfe"] = once + per_step * num_steps
        return stats

    def __call__(self, variables, z, context, probes, times):
        if self.solve_jointly:
            return self.solve(z, probes, context, variables, times)
        per_event = jax.vmap(self.solve, in_axes=(0, 0, 0, None, None))
        return per_event(z, probes, context, variables, times)


def _batched_like_state(rates, z: Array):
    """``rates``, unchanged in value, but carrying every vmap batch axis that ``z`` carries.

    A workaround for a JAX defect (jax 0.10.2, seen through diffrax 0.7.2; issue #23 and
    ``tests/cnf/test_vmap_gradient.py``). Under ``jax.vmap`` a value that does not depend on
    the mapped inputs stays *unbatched*: with an affine field the trace tr(∂h/∂z) depends only
    on the parameters, and with a constant step size so does its increment dt·tr. Diffrax's
    loops are ``custom_vjp`` functions (equinox's checkpointed while loop for the recursive
    adjoint and for every Runge-Kutta stage loop, the backsolve adjoint's solve). JAX batches a
    ``custom_vjp`` by giving each unbatched primal output an unbatched cotangent, which holds
    the SUM of the B events' cotangents, and then maps the backward rule over the batch; when
    that rule's cotangent for an unbatched input (the field's parameters) comes out batched
    (it also depends on the batched state), `batching._match_axes_and_sum` sums B copies of
    the already-summed term: that gradient is B times too large (off by -B(B-1) per entry in
    the issue's test). Adaptive steps hid it (dt depends on the state, so dt·tr is batched),
    joint solves too (no vmap around the solve).

    Selecting with a constant False predicate between each rate and the (stop-gradient) state
    makes every rate batched whenever the state is, so no loop output is unbatched and each
    event's cotangent reaches the backward rule on its own. Values and gradients are unchanged
    and XLA folds the constant select away (no run-time cost); outside vmap it is a no-op.
    """
    anchor = jax.lax.stop_gradient(z.reshape(-1)[0])

    def tie(rate):
        return jnp.where(False, anchor.astype(rate.dtype), rate)

    return jax.tree_util.tree_map(tie, rates)


# Compiled once per static problem, so eager (un-jitted) calls do not recompile the solver.
_solve_jitted = jax.jit(lambda problem, *arrays: problem(*arrays), static_argnums=0)


def _evaluations_per_step(solver) -> tuple[int, int] | None:
    """(evaluations per step, evaluations once per solve) of a diffrax solver, if known.

    An explicit Runge-Kutta method evaluates every stage of its tableau; a first-same-as-last
    (FSAL) method reuses the last stage of a step as the first of the next, so it pays
    num_stages − 1 per step plus one evaluation at the very first step. A rejected step keeps
    the FSAL value (its start point is unchanged).
    """
    tableau = getattr(solver, "tableau", None)
    if isinstance(tableau, diffrax.ButcherTableau) and not tableau.implicit:
        return tableau.num_stages - int(tableau.fsal), int(tableau.fsal)
    if isinstance(solver, diffrax.Euler):
        return 1, 0
    return None


def summarize_stats(intermediates: Mapping) -> dict[str, Array]:
    """Solver statistics of every CNF solve found in ``intermediates``, summed over solves.

    ``intermediates`` is the mutable state returned by ``apply(..., mutable=['intermediates'])``
    (with or without its top-level ``'intermediates'`` key). Every statistic is averaged over
    the batch, then summed over the solves (e.g. the CNF blocks of a multi-block model):
    ``nfe`` is then the number of function evaluations one example costs on average.
    ``num_solves`` counts the solves and ``all_succeeded`` says whether all of them succeeded.
    """
    found: list[Mapping[str, Array]] = _find(intermediates, STATS_NAME)
    summary: dict[str, Array] = {"num_solves": jnp.asarray(len(found))}
    if not found:
        return summary
    for name in ("num_steps", "num_accepted_steps", "num_rejected_steps", "nfe"):
        if all(name in s for s in found):
            summary[name] = sum(jnp.mean(s[name].astype(jnp.float32)) for s in found)
    summary["all_succeeded"] = jnp.all(jnp.stack([jnp.all(s["succeeded"]) for s in found]))
    return summary


def _find(tree, name: str) -> list:
    found: list = []

    def walk(node):
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == name:
                    found.extend(value)
                else:
                    walk(value)

    walk(tree)
    return found


def collect_stat(intermediates: Mapping, name: str) -> Array | None:
    """One solver statistic (e.g. ``'nfe'``, ``'num_rejected_steps'``) per example (batch
    shape) of every CNF solve in ``intermediates``, summed over solves; None when no solve
    reported it."""
    found = [s[name] for s in _find(intermediates, STATS_NAME) if name in s]
    return sum(found[1:], found[0]) if found else None


def collect_nfe(intermediates: Mapping) -> Array | None:
    """Function evaluations per example of every CNF solve in ``intermediates`` (summed over
    solves); None when no solve reported an NFE."""
    return collect_stat(intermediates, "nfe")


def collect_regularizers(intermediates: Mapping) -> dict[str, Array]:
    """The RNODE regularisers of every CNF solve in ``intermediates``, per example (batch
    shape), summed over solves (e.g. the blocks of a multi-block model). Empty when no CNF
    integrated any."""
    totals: dict[str, Array] = {}
    for values in _find(intermediates, REGULARIZERS_NAME):
        for name, value in values.items():
            totals[name] = totals[name] + value if name in totals else value
    return totals
