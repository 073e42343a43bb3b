"""Issue #23: CNF gradients against finite differences over solvers, step control, batching,
adjoints and trace estimators (float64, a batch of 3 events in 2-D).

Each cell checks the gradient of  Σ log p(x)  (in the ``tsit5`` product below, plus a fixed
random projection of the forward (sampling) direction's outputs (y, log|det ∂f/∂x|): the same
solve with the times swapped), with respect to the field's parameters and to the inputs x,
along 2 + 2 random unit directions against central differences. One function
is compiled per cell (``jax.value_and_grad``); the perturbed values for the differences come
from calling that same compiled function (`tests.gradcheck.directional_errors`).

**Cells (a covering design; the full product is 48 cells with the exact trace alone).** The
code paths that decide whether a gradient is right are jgen's and diffrax's, not the tableau:
per-event (``jax.vmap`` around the whole solve, the case of the JAX custom_vjp defect) or joint
(vmap inside the dynamics); the recursive-checkpoint adjoint (equinox's checkpointed while
loop) or the backsolve adjoint (its own custom_vjp); a constant step (dt unbatched under vmap)
or PID control (dt depends on the state); and the trace estimator (probes batched per event).
So:

- ``tsit5`` with the exact trace: the full product step control × per-event/joint × adjoint;
- every other solver: the defect's path (constant step, per event, recursive adjoint) through
  that solver's own step and stage loops; the other levels are the same jgen and diffrax code
  for every explicit Runge-Kutta tableau (Euler included), checked with ``tsit5``;
- Hutchinson and Hutch++ on ``tsit5``: the defect's path, and its opposite in every factor
  (PID control, joint, backsolve); the estimator only changes the rates, whose batching under
  each path the exact-trace cells already check.

The field is affine (``MLPField(())``: its divergence does not depend on z, the case that
exposed the defect) everywhere, and has a tanh hidden layer in the estimator cells (there a
z-dependent Jacobian makes the estimators' products matter).

**Fixed probes.** The 'trace' key is the same in every call, so a stochastic estimator is a
deterministic function of (parameters, x) and its finite differences are meaningful. Hutch++
treats its sketch basis Q as a constant under autodiff (`jgen.cnf.trace.HutchPlusPlus`): its
gradient is then unbiased, but it is not the derivative of the estimate unless Q spans the
event space, where the estimate is tr A for every Q. Hence 6 products in 2-D (a sketch of 2).

**Tolerances.** With the recursive adjoint, autodiff differentiates the same discrete solve
that the differences evaluate, so the solver's error cancels: both agree to round-off and
differencing error (rtol 1e-7 of the gradient's norm, with steps of 1e-6). PID control makes
the discrete map piecewise smooth (the accepted step sequence); with steps of 1e-6 no step
decision flips, and dt itself is a smooth function of the error estimate. The backsolve adjoint
solves the adjoint ODE backwards, so its gradient carries the solver's error: O(dt^p) for a
solver of order p with a constant step dt, O(rtol) with PID control; its tolerance says so.
The defect made entries wrong by a factor of up to B = 3, far outside every tolerance here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.cnf import MLPField, make_cnf
from jgen.distributions import Flow
from tests.gradcheck import directional_errors, random_projection

NUM_EVENTS = 3
STEP = 0.1
PID_TOLERANCE = 1e-5
ORDERS = {"euler": 1, "heun": 2, "midpoint": 2, "bosh3": 3, "tsit5": 5, "dopri5": 5, "dopri8": 8}
RECURSIVE_RTOL = 1e-7

# (solver, adaptive, solve_jointly, adjoint, trace)
CORE = [
    ("tsit5", adaptive, joint, adjoint, "exact")
    for adaptive in (False, True)
    for joint in (False, True)
    for adjoint in ("recursive", "backsolve")
]
SOLVERS = [(solver, False, False, "recursive", "exact") for solver in ORDERS if solver != "tsit5"]
ESTIMATORS = [
    ("tsit5", adaptive, joint, adjoint, trace)
    for trace in ("hutchinson", "hutch++")
    for adaptive, joint, adjoint in ((False, False, "recursive"), (True, True, "backsolve"))
]
CELLS = CORE + SOLVERS + ESTIMATORS


def _cell_id(cell) -> str:
    solver, adaptive, joint, adjoint, trace = cell
    step = "pid" if adaptive else "constant"
    return f"{solver}-{step}-{'joint' if joint else 'per_event'}-{adjoint}-{trace}"


def _tolerance(solver: str, adaptive: bool, adjoint: str) -> float:
    """Relative to the gradient's norm (module docstring)."""
    if adjoint == "recursive":
        return RECURSIVE_RTOL
    solver_error = 100 * PID_TOLERANCE if adaptive else STEP ** ORDERS[solver]
    return max(RECURSIVE_RTOL, 0.5 * solver_error)


def _flow(solver, adaptive, joint, adjoint, trace) -> Flow:
    options = {"rtol": PID_TOLERANCE, "atol": PID_TOLERANCE} if adaptive else {"step_size": STEP}
    if trace == "hutch++":
        options["num_probes"] = 6  # a sketch that spans R^2 (module docstring)
    hidden = () if trace == "exact" else (4,)
    cnf = make_cnf(
        MLPField(hidden), (2,), solver=solver, adjoint=adjoint, trace=trace, solve_jointly=joint,
        **options,
    )  # fmt: skip
    return Flow(cnf, (2,))


def _directional_check(flow: Flow, with_forward: bool):
    x = jax.random.normal(jax.random.key(0), (NUM_EVENTS, 2), jnp.float64)
    rngs = {"trace": jax.random.key(7)}  # the same probes in every call
    params = flow.init({"params": jax.random.key(1), **rngs}, x, method=flow.log_prob)["params"]
    forward = lambda module, x: module.bijector.forward_and_log_det(x)

    def objective(tree):
        variables = {"params": tree["params"]}
        log_prob = flow.apply(variables, tree["x"], method=flow.log_prob, rngs=rngs)
        if not with_forward:
            return jnp.sum(log_prob)
        sampled = flow.apply(variables, tree["x"], method=forward, rngs=rngs)
        return jnp.sum(log_prob) + random_projection(jax.random.key(3), sampled)

    tree = {"params": params, "x": x}
    return directional_errors(
        objective, tree, [["params"], ["x"]], jax.random.key(2), per_group=2, eps=1e-6
    )


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_cnf_gradient_matches_finite_differences(cell):
    solver, adaptive, _, adjoint, _ = cell
    with jax.enable_x64(True):
        autodiff, differences, scale = _directional_check(_flow(*cell), cell in CORE)
    tol = _tolerance(solver, adaptive, adjoint)
    np.testing.assert_allclose(autodiff, differences, rtol=tol, atol=tol * scale)
