"""Gradients of every registry bijector against central finite differences (float64).

For each case of the registry (`registry.py`), on a batch of 3 events: the scalar
s = w₁·y + w₂·log|det ∂f/∂x|(x) + w₃·f⁻¹(y₀) + w₄·log|det ∂f⁻¹/∂y|(y₀) (fixed random weights w,
y₀ = f(x) at the initial parameters) is differentiated along random unit directions in the
parameters and, separately, in the inputs (x, y₀ and the context), and compared with central
differences. Bijectors with non-parameter collections (batch statistics, power-iteration
vectors) are checked in both modes: evaluation (immutable apply) and training (the collections
mutable, which e.g. differentiates through the spectral normalisation's power iteration).
Reverse mode (what training uses) everywhere, except for code built on diffrax's
``ForwardMode`` adjoint, which supports forward mode only. Every CNF solver, step control,
adjoint and trace estimator is in `tests/cnf/test_gradient_grid.py`.
"""

from __future__ import annotations

import zlib

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.bijectors.registry import all_cases, init_variables, make_inputs
from tests.gradcheck import directional_errors, random_projection

# Composites whose every member has its own case here (and Chain too): their gradients follow
# by the chain rule, and they are the most expensive to compile.
COMPOSITES = {"multiscale_realnvp_digits", "glow_two_levels"}
CASES = [c for c in all_cases() if c.name not in COMPOSITES]
RTOL = 1e-6
# A rational-quadratic spline is C1 but its log-det is only C0 at the knots, so a central
# difference whose stencil straddles a knot errs by O(h x the jump of the second derivative):
# seen at 1.5e-5 relative on neural_spline_flow_half_with_context's input directions.
SPLINE_RTOL = 1e-4


def _forward_mode_only(bijector) -> bool:
    return isinstance(getattr(bijector, "adjoint", None), diffrax.ForwardMode)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_gradients_match_finite_differences(name):
    case = next(c for c in CASES if c.name == name)
    rtol = SPLINE_RTOL if "spline" in name else RTOL
    key = jax.random.key(zlib.crc32(name.encode()))
    with jax.enable_x64(True):
        x, context = make_inputs(case, jnp.float64)
        bijector = case.make()
        variables = init_variables(case, bijector, x, context)
        state = {k: v for k, v in variables.items() if k != "params"}
        y0 = bijector.apply(variables, x, context, method="forward")
        # Parameters declared float32 (e.g. residual blocks) are differentiated in float64: a
        # float32 copy would round the finite-difference perturbations away.
        params = jax.tree_util.tree_map(
            lambda p: p.astype(jnp.float64), variables.get("params", {})
        )
        tree = {"params": params, "x": x, "y": y0}
        if context is not None:
            tree["context"] = context
        for mutable in [[], list(state)] if state else [[]]:

            def apply(params, *args, method, mutable=mutable):
                out = bijector.apply(
                    {"params": params, **state}, *args, method=method, mutable=mutable
                )
                return out[0] if mutable else out

            def scalar(tree, apply=apply):
                c = tree.get("context")
                outputs = (
                    apply(tree["params"], tree["x"], c, method="forward_and_log_det"),
                    apply(tree["params"], tree["y"], c, method="inverse_and_log_det"),
                )
                return random_projection(key, outputs)

            autodiff, differences, scale = directional_errors(
                scalar,
                tree,
                [["params"], ["x", "y", "context"]],
                jax.random.fold_in(key, 1),
                reverse=not _forward_mode_only(bijector),
            )
            err = f"{'training' if mutable else 'evaluation'} mode"
            np.testing.assert_allclose(
                autodiff, differences, rtol=rtol, atol=rtol * scale, err_msg=err
            )
