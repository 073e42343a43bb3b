"""Issue #23: the gradient of a vmapped (per-event) CNF solve with constant steps.

JAX batches a ``custom_vjp`` by handing each UNBATCHED primal output an unbatched cotangent (the
sum of the B events' cotangents) and then mapping the backward rule over the batch: when that
rule's cotangent for an unbatched input comes out batched, the already-summed term is summed
B more times. Diffrax's loops are custom_vjps (equinox's checkpointed while loop, the backsolve
adjoint), and with a constant step and a field whose divergence does not depend on z the
log-det increment dt·tr(∂h/∂z) is unbatched: the parameters' gradient came out B times too
large on those entries. The first two tests are the upstream cases (strict xfails: they fail
as long as JAX has the defect and will report when it is fixed); the third checks jgen's
workaround (`jgen.cnf.cnf._batched_like_state`) on it; `test_gradient_grid.py` checks every
jgen CNF configuration against finite differences.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

B = 3
UPSTREAM = (
    "JAX defect (jax 0.10.2): BatchTrace.process_custom_vjp_call gives an unbatched primal "
    "output an unbatched (batch-summed) cotangent, and batch_custom_vjp_bwd's "
    "_match_axes_and_sum sums the mapped backward rule's batched result once more"
)


@jax.custom_vjp
def _scale_and_copy(z, theta):
    return theta * z, theta


def _scale_and_copy_fwd(z, theta):
    return _scale_and_copy(z, theta), (z, theta)


def _scale_and_copy_bwd(residuals, cotangents):
    z, theta = residuals
    ct_scaled, ct_copy = cotangents
    return ct_scaled * theta, ct_scaled * z + ct_copy


_scale_and_copy.defvjp(_scale_and_copy_fwd, _scale_and_copy_bwd)


@pytest.mark.xfail(strict=True, reason=UPSTREAM)
def test_upstream_jax_custom_vjp_with_an_unbatched_output():
    # f(z, θ) = (θ z, θ) vmapped over z: d/dθ Σ_b (θ z_b + θ) = Σ z_b + B. JAX gives Σ z_b + B².
    z = jnp.arange(1.0, B + 1.0)
    loss = lambda theta: jnp.sum(sum(jax.vmap(_scale_and_copy, (0, None))(z, theta)))
    np.testing.assert_allclose(jax.grad(loss)(0.5), float(jnp.sum(z)) + B)


def _diffrax_log_det(z0, theta, tie: bool):
    """d(z, a)/dt = (θ z, θ) with Tsit5 and a constant step: a(1) = θ for every event."""

    def rates(t, y, theta):
        out = (theta * y[0], theta * jnp.ones((), y[0].dtype))
        if tie:  # jgen's workaround: both rates batched like the state
            anchor = jax.lax.stop_gradient(y[0])
            out = tuple(jnp.where(False, anchor, r) for r in out)
        return out

    y0 = (z0, jnp.zeros((), z0.dtype))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rates), diffrax.Tsit5(), 0.0, 1.0, 0.1, y0, args=theta,
        stepsize_controller=diffrax.ConstantStepSize(),
    )  # fmt: skip
    return sol.ys[1][-1]


def _vmapped_diffrax_gradient(tie: bool):
    z0 = jnp.arange(1.0, B + 1.0)
    solves = jax.vmap(_diffrax_log_det, in_axes=(0, None, None))
    return jax.grad(lambda theta: jnp.sum(solves(z0, theta, tie)))(0.5)


@pytest.mark.xfail(strict=True, reason=UPSTREAM + " (here through diffrax 0.7.2)")
def test_upstream_diffrax_vmap_constant_step():
    # d/dθ Σ_b a_b(1) = B; diffrax under vmap gives B² (the 9 for 3).
    np.testing.assert_allclose(_vmapped_diffrax_gradient(tie=False), B, rtol=1e-12)


def test_the_workaround_fixes_the_plain_diffrax_case():
    np.testing.assert_allclose(_vmapped_diffrax_gradient(tie=True), B, rtol=1e-12)
