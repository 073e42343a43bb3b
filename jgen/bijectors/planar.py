"""Planar and radial flows (Rezende & Mohamed 2015, section 4.1 and appendix A).

Both are residual maps of a vector z ∈ R^d (``event_ndims=1``) whose Jacobian determinant costs
O(d) through the matrix determinant lemma. The forward direction is the flow direction
q_0 → q_K of variational inference (the direction a sample of the base takes).

Parameters are either the module's own (``amortized=False``: shared by every input) or, with
``amortized=True``, read from ``context``: unconstrained vectors of shape
``(*batch, num_context_params(dim))`` that an encoder emits per example (the module then has no
parameters of its own). The layouts of ``context`` are

    Planar: [w (d), u (d), b (1)]              num_context_params(d) = 2d + 1
    Radial: [z0 (d), α̂ (1), β̂ (1)]             num_context_params(d) = d + 2

Invertibility is built in through the reparametrisations of appendix A, so every parameter
value is valid and gradient steps need no projection. Neither map has a closed-form inverse in
its original form, but both reduce to a monotone scalar equation: along w for the planar flow
(Newton safeguarded by bisection), in the radius for the radial flow (a quadratic).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.base import Bijector
from jgen.bijectors.elementwise import _tanh_log_derivative
from jgen.typing import Array
from jgen.validation import ValidationError, ValidationTypeError, check_int, check_trailing_shape

__all__ = ["ROOT_ITERATIONS", "Planar", "Radial", "flow_layer_class", "solve_planar_root"]

# Iterations of the planar root find. Newton steps converge quadratically near the root; the
# bisection fallback halves the bracket of width 2|wᵀû| whenever a Newton step would leave it or
# would not shrink fast enough, so 60 steps reach float64 round-off even for |wᵀû| ~ 1e3, and
# for wᵀû → -1, where g'(a) = 1 + wᵀû sech²(a) vanishes at a = 0 (see the tests).
ROOT_ITERATIONS = 60


class _PlanarOrRadial(Bijector):
    """Fields and argument checks shared by `Planar` and `Radial` (z ∈ R^dim, one event axis)."""

    dim: int
    amortized: bool = False
    init_scale: float = 0.1
    event_ndims: int = 1

    def __post_init__(self):
        owner = type(self).__name__
        check_int(self.dim, "dim", minimum=1, owner=owner)
        if not isinstance(self.amortized, bool):
            raise ValidationTypeError(f"{owner}: amortized must be a bool, got {self.amortized!r}")
        scale = self.init_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise ValidationTypeError(f"{owner}: init_scale must be a number, got {scale!r}")
        if not scale >= 0:
            raise ValidationError(f"{owner}: init_scale must be >= 0, got {scale}")
        super().__post_init__()


def _split_context(
    owner: str, context: Array | None, sizes: tuple[int, ...], z: Array
) -> list[Array]:
    """Cut the last axis of ``context`` into pieces of ``sizes`` (cast to z's dtype)."""
    total = sum(sizes)
    if context is None:
        raise ValidationError(
            f"{owner}(amortized=True): expected a context of shape (*batch, {total}) with the "
            "flow's unconstrained parameters, got None"
        )
    if context.ndim < 1 or context.shape[-1] != total:
        raise ValidationError(
            f"{owner}(amortized=True): expected a context of shape (*batch, {total}), got "
            f"{tuple(context.shape)}"
        )
    context = context.astype(z.dtype)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(context[..., start : start + size])
        start += size
    return pieces


def _sech2(a: Array) -> Array:
    """sech²(a) = 1 - tanh²(a), from its logarithm (no cancellation for large |a|)."""
    return jnp.exp(_tanh_log_derivative(a))


def _safe_norm(x: Array) -> Array:
    """‖x‖ over the last axis, with gradient 0 (not NaN) at x = 0."""
    squared = jnp.sum(jnp.square(x), axis=-1)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


class Planar(_PlanarOrRadial):
    """Planar flow f(z) = z + û h(wᵀz + b), h = tanh, with w, u ∈ R^d and b ∈ R.

    Invertibility (appendix A.1): f is invertible iff wᵀû ≥ -1 (h' ≤ 1). The free parameter u
    is mapped to

        û = u + (m(wᵀu) - wᵀu) w / ‖w‖²,   m(x) = -1 + softplus(x),

    so that wᵀû = m(wᵀu) > -1 for every u.

    Log-det (matrix determinant lemma; ψ(z) = h'(wᵀz + b) w):

        log|det ∂f/∂z| = log|1 + ûᵀψ(z)| = log(1 + m h'(a)),   a = wᵀz + b,

    computed as log(tanh²(a) + softplus(wᵀu) sech²(a)): a sum of two non-negative terms, so
    there is no cancellation as wᵀû → -1. At w = 0 (e.g. ``init_scale=0``) f is the
    translation z + u tanh(b), û = u, and the log-det is 0.

    Inverse: with c = wᵀy + b, the projection of y = f(z) on w gives the scalar equation

        g(a) = a + m tanh(a) = c,   g'(a) = 1 + m sech²(a) > 0,

    whose root lies in [c - |m|, c + |m|] (|tanh| ≤ 1). It is found by Newton's method
    safeguarded by bisection on that bracket (`solve_planar_root`) in `ROOT_ITERATIONS` steps;
    then
    z = y - û tanh(a). Gradients of the inverse come from the implicit function theorem (one
    Newton step from the stopped root), not from differentiating the iterations.

    ``init_scale``: standard deviation of the normal initialisation of w, u and b (not used
    when ``amortized``).
    """

    @staticmethod
    def num_context_params(dim: int) -> int:
        """Size of ``context``'s last axis with ``amortized=True``: w, u and b."""
        return 2 * check_int(dim, "dim", minimum=1, owner="Planar") + 1

    def setup(self):
        if self.amortized:
            return
        dtype = jax.dtypes.canonicalize_dtype(float)
        init = nn.initializers.normal(self.init_scale)
        self.w = self.param("w", init, (self.dim,), dtype)
        self.u = self.param("u", init, (self.dim,), dtype)
        self.b = self.param("b", init, (), dtype)

    def _parameters(self, z: Array, context: Array | None) -> tuple[Array, Array, Array, Array]:
        """(w, û, b, 1 + wᵀû) in z's dtype, broadcastable against z (w, û) and z[..., 0];
        1 + wᵀû = softplus(wᵀu), or 1 when w = 0."""
        check_trailing_shape(z, f"Planar(dim={self.dim}): input", (self.dim,))
        if self.amortized:
            w, u, b = _split_context("Planar", context, (self.dim, self.dim, 1), z)
            b = b[..., 0]
        else:
            w, u, b = (p.astype(z.dtype) for p in (self.w, self.u, self.b))
        wu = jnp.sum(w * u, axis=-1, keepdims=True)
        slack = jax.nn.softplus(wu)  # m(wᵀu) + 1 > 0
        w_squared = jnp.sum(w * w, axis=-1, keepdims=True)
        # w = 0 (or ‖w‖² flushed to 0): f is the translation z + u tanh(b), with log-det 0.
        nonzero = w_squared > 0
        u_hat = jnp.where(
            nonzero, u + (slack - 1.0 - wu) * w / jnp.where(nonzero, w_squared, 1.0), u
        )
        # With w = 0, wᵀû = 0: slack 1 makes the log-det below log(tanh² + sech²) = 0.
        return w, u_hat, b, jnp.where(nonzero, slack, 1.0)[..., 0]

    @staticmethod
    def _log_det(a: Array, slack: Array) -> Array:
        """log(1 + wᵀû sech²(a)) = log(tanh²(a) + slack sech²(a)), slack = 1 + wᵀû > 0."""
        return jnp.log(jnp.square(jnp.tanh(a)) + slack * _sech2(a))

    def forward_and_log_det(self, z, context=None):
        w, u_hat, b, slack = self._parameters(z, context)
        a = jnp.sum(w * z, axis=-1) + b
        return z + u_hat * jnp.tanh(a)[..., None], self._log_det(a, slack)

    def inverse_and_log_det(self, y, context=None):
        w, u_hat, b, slack = self._parameters(y, context)
        m = jnp.sum(w * u_hat, axis=-1)
        c = jnp.sum(w * y, axis=-1) + b
        m, c = jnp.broadcast_arrays(m, c)
        a = solve_planar_root(jax.lax.stop_gradient(m), jax.lax.stop_gradient(c))
        # Implicit differentiation: one Newton step from the stopped root carries the exact
        # first derivatives da = (dc - tanh(a) dm) / g'(a) and leaves the value unchanged.
        a = a - (a + m * jnp.tanh(a) - c) / (1.0 + m * _sech2(a))
        return y - u_hat * jnp.tanh(a)[..., None], -self._log_det(a, slack)


def solve_planar_root(m: Array, c: Array, iterations: int = ROOT_ITERATIONS) -> Array:
    """The root a of g(a) = a + m tanh(a) = c for m > -1 (elementwise): Newton's method
    safeguarded by bisection ("rtsafe").

    The root lies in [c - |m|, c + |m|] (|tanh| ≤ 1). A step is a Newton step when it lands
    inside the current bracket and is at most half the step before it, and a bisection
    otherwise; the bracket shrinks with the sign of the residual. Plain Newton is not enough:
    where tanh saturates g is nearly linear, and for large m Newton can bounce between the
    saturated side and the steep middle without ever leaving the bracket. A fixed number of
    steps keeps it a plain ``fori_loop``; the iterate with the smallest |residual| is returned
    (once converged to round-off, a rejected Newton step bisects the bracket and moves away).
    """
    spread = jnp.abs(m)

    def step(_, state):
        a, low, high, step_before, best, best_residual = state
        residual = a + m * jnp.tanh(a) - c
        improved = jnp.abs(residual) < best_residual
        best = jnp.where(improved, a, best)
        best_residual = jnp.where(improved, jnp.abs(residual), best_residual)
        low = jnp.where(residual < 0, a, low)
        high = jnp.where(residual > 0, a, high)
        newton_step = residual / (1.0 + m * _sech2(a))
        newton = a - newton_step
        use_newton = (newton > low) & (newton < high) & (jnp.abs(newton_step) <= 0.5 * step_before)
        next_a = jnp.where(use_newton, newton, 0.5 * (low + high))
        next_step = jnp.where(use_newton, jnp.abs(newton_step), 0.5 * (high - low))
        return next_a, low, high, next_step, best, best_residual

    inf = jnp.full_like(c, jnp.inf)
    start = (c, c - spread, c + spread, 2 * spread + 1, c, inf)
    *_, best, _ = jax.lax.fori_loop(0, iterations, step, start)
    return best


class Radial(_PlanarOrRadial):
    """Radial flow f(z) = z + β h(α, r) (z - z0), h(α, r) = 1/(α + r), r = ‖z - z0‖.

    Parameters z0 ∈ R^d and unconstrained α̂, β̂ ∈ R. Invertibility (appendix A.2) needs α > 0
    and β ≥ -α; they are built in as

        α = softplus(α̂),   β = -α + softplus(β̂).

    Log-det (h' = -1/(α + r)²):

        log|det ∂f/∂z| = (d - 1) log(1 + βh) + log(1 + βh + βh' r)
                       = (d - 1) log((r + softplus(β̂)) / (α + r))
                         + log((r² + 2αr + α softplus(β̂)) / (α + r)²),

    written with positive terms only (α + β = softplus(β̂)).

    Inverse: y - z0 = (1 + βh(r)) (z - z0) with a positive factor, so s = ‖y - z0‖ satisfies
    s = r (α + β + r)/(α + r), i.e. the quadratic r² + (α + β - s) r - αs = 0 whose root
    r ≥ 0 is taken in the form without cancellation; then z = z0 + (y - z0)(α + r)/(α + β + r).

    ``init_scale``: standard deviation of the normal initialisation of z0, α̂ and β̂ (not used
    when ``amortized``).
    """

    @staticmethod
    def num_context_params(dim: int) -> int:
        """Size of ``context``'s last axis with ``amortized=True``: z0, α̂ and β̂."""
        return check_int(dim, "dim", minimum=1, owner="Radial") + 2

    def setup(self):
        if self.amortized:
            return
        dtype = jax.dtypes.canonicalize_dtype(float)
        init = nn.initializers.normal(self.init_scale)
        self.z0 = self.param("z0", init, (self.dim,), dtype)
        self.alpha_raw = self.param("alpha_raw", init, (), dtype)
        self.beta_raw = self.param("beta_raw", init, (), dtype)

    def _parameters(self, z: Array, context: Array | None) -> tuple[Array, Array, Array]:
        """(z0, α, α + β) in z's dtype; α and α + β broadcast against z[..., 0]."""
        check_trailing_shape(z, f"Radial(dim={self.dim}): input", (self.dim,))
        if self.amortized:
            z0, alpha_raw, beta_raw = _split_context("Radial", context, (self.dim, 1, 1), z)
            alpha_raw, beta_raw = alpha_raw[..., 0], beta_raw[..., 0]
        else:
            z0, alpha_raw, beta_raw = (
                p.astype(z.dtype) for p in (self.z0, self.alpha_raw, self.beta_raw)
            )
        return z0, jax.nn.softplus(alpha_raw), jax.nn.softplus(beta_raw)

    def _log_det(self, r: Array, alpha: Array, alpha_plus_beta: Array) -> Array:
        log_denominator = jnp.log(alpha + r)
        radial = jnp.log(r * r + 2.0 * alpha * r + alpha * alpha_plus_beta) - 2 * log_denominator
        tangential = jnp.log(r + alpha_plus_beta) - log_denominator
        return (self.dim - 1) * tangential + radial

    def forward_and_log_det(self, z, context=None):
        z0, alpha, alpha_plus_beta = self._parameters(z, context)
        diff = z - z0
        r = _safe_norm(diff)
        beta = alpha_plus_beta - alpha
        y = z + (beta / (alpha + r))[..., None] * diff
        return y, self._log_det(r, alpha, alpha_plus_beta)

    def inverse_and_log_det(self, y, context=None):
        z0, alpha, alpha_plus_beta = self._parameters(y, context)
        diff = y - z0
        s = _safe_norm(diff)
        linear = alpha_plus_beta - s
        # q > 0 always: q = 0 would need s = 0 and α + β = 0, excluded by softplus > 0.
        q = jnp.abs(linear) + jnp.sqrt(linear * linear + 4.0 * alpha * s)
        r = jnp.where(linear >= 0, 2.0 * alpha * s / q, 0.5 * q)
        z = z0 + ((alpha + r) / (r + alpha_plus_beta))[..., None] * diff
        return z, -self._log_det(r, alpha, alpha_plus_beta)


def flow_layer_class(kind: str, what: str = "flow") -> type[Planar] | type[Radial]:
    """`Planar` or `Radial` by name ('planar' or 'radial'), for configs (VAE posteriors, VI);
    ``what`` names the setting in the error message."""
    layers = {"planar": Planar, "radial": Radial}
    if kind not in layers:
        raise ValueError(f"{what} must be one of {sorted(layers)}, got {kind!r}")
    return layers[kind]
