"""Monotone rational-quadratic splines (Durkan et al. 2019) and their circular variant
(Rezende et al. 2020), as pure functions and as an elementwise bijector.

**The spline.** K bins with knots low = x_0 < ... < x_K = high and y_0 < ... < y_K (y_0 = low,
y_K = high), and positive derivatives d_0..d_K at the knots. In bin k, with w = x_{k+1} − x_k,
h = y_{k+1} − y_k, s = h / w and ξ = (x − x_k) / w ∈ [0, 1]:

    f(x)  = y_k + h (s ξ² + d_k ξ(1 − ξ)) / (s + (d_k + d_{k+1} − 2s) ξ(1 − ξ))
    f'(x) = s² (d_{k+1} ξ² + 2s ξ(1 − ξ) + d_k (1 − ξ)²) / (s + (d_k + d_{k+1} − 2s) ξ(1 − ξ))²

The denominator is ≥ s/2 > 0 (ξ(1 − ξ) ≤ 1/4 and d > 0), so both are finite for any
parameters. **Inverse:** for y in bin k, with δ = y − y_k and Σ = d_k + d_{k+1} − 2s, ξ solves
a ξ² + b ξ + c = 0 with a = h(s − d_k) + δΣ, b = h d_k − δΣ, c = −sδ; the root in [0, 1] is
2c / (−b − √(b² − 4ac)) when b ≥ 0 and (−b + √(b² − 4ac)) / (2a) when b < 0 (the two forms of
the same root, each free of cancellation on its side; a = hs − b > 0 when b < 0).

**Linear boundary** (``circular=False``): the interval is [−B, B], d_0 = d_K = 1 and f is the
identity outside, so f is C¹ on the real line. **Circular boundary** (``circular=True``): the
interval is [−π, π] by default, d_K = d_0 (learned) and f is extended periodically,
f(x + 2πn) = f(x) + 2πn: a monotone bijection of the real line whose log-derivative is
2π-periodic, i.e. a diffeomorphism of the circle (angles) lifted to R.

**Parameters** are unconstrained (``spline_knots``): K width logits, K height logits and the
free derivatives (K − 1 interior ones for the linear boundary, K for the circular one), in that
order on the last axis (``num_spline_params``). Widths (and heights) are
``min_bin_size + (high − low − K·min_bin_size)·softmax(logits)`` and derivatives
``min_derivative + softplus(u + log(e^{1 − min_derivative} − 1))``, so all-zero parameters
give the identity map (a zero-initialised conditioner starts as the identity). This is
distrax's parametrisation (``boundary_slopes='identity'`` / ``'circular'``).

Numerics: the input is clipped to the interval before the spline is evaluated and ξ to [0, 1],
the square root's argument is kept ≥ the smallest normal float, and both root forms have
guarded denominators, so values, log-dets and gradients are finite for every finite input and
parameter (inputs exactly at ±B, outside, or 1e4 away; parameters of magnitude 1e4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.base import Bijector, sum_rightmost
from jgen.typing import Array
from jgen.validation import check_int, check_number

__all__ = [
    "RationalQuadraticSpline",
    "SplineKnots",
    "apply_spline",
    "num_spline_params",
    "rational_quadratic_forward",
    "rational_quadratic_inverse",
    "spline_knots",
]


class SplineKnots(NamedTuple):
    """Knots of monotone rational-quadratic splines, each ``(..., K + 1)`` (batch axes
    broadcast against the input): positions ``x`` and ``y`` and the derivatives there. With
    ``circular=True`` the spline is extended periodically with period ``x[-1] − x[0]``."""

    x: Array
    y: Array
    derivatives: Array
    circular: bool = False


def num_spline_params(num_bins: int, circular: bool = False) -> int:
    """Unconstrained parameters per element: K widths, K heights, K − 1 (linear boundary) or
    K (circular) derivatives."""
    return 3 * num_bins + (0 if circular else -1)


def check_spline_options(
    owner: str, num_bins: int, low: float, high: float, min_bin_size: float, min_derivative: float
) -> None:
    """Clear errors for spline hyper-parameters that cannot define a spline."""
    check_int(num_bins, "num_bins", minimum=1, owner=owner)
    check_number(min_bin_size, "min_bin_size", owner=owner)
    check_number(min_derivative, "min_derivative", interval="open_unit", owner=owner)
    if not high > low:
        raise ValueError(f"{owner}: the interval must have low < high, got [{low}, {high}]")
    if num_bins * min_bin_size >= high - low:
        raise ValueError(
            f"{owner}: num_bins * min_bin_size must be below the interval's width {high - low}, "
            f"got {num_bins} * {min_bin_size}"
        )


def spline_knots(
    raw: Array,
    *,
    num_bins: int,
    low: float,
    high: float,
    min_bin_size: float = 1e-3,
    min_derivative: float = 1e-3,
    circular: bool = False,
) -> SplineKnots:
    """Knots from unconstrained parameters ``raw`` of shape ``(..., num_spline_params(K))``
    (see the module docstring for the layout and the maps)."""
    expected = num_spline_params(num_bins, circular)
    if raw.shape[-1:] != (expected,):
        raise ValueError(
            f"spline_knots: expected parameters of shape (..., {expected}) for num_bins="
            f"{num_bins}, circular={circular}, got {raw.shape}"
        )
    k = num_bins
    free = high - low - k * min_bin_size

    def knots_of(logits):
        sizes = min_bin_size + free * jax.nn.softmax(logits, axis=-1)
        inner = low + jnp.cumsum(sizes[..., :-1], axis=-1)
        edge = jnp.ones((*logits.shape[:-1], 1), raw.dtype)
        return jnp.concatenate([low * edge, inner, high * edge], axis=-1)

    offset = math.log(math.expm1(1.0 - min_derivative))
    derivatives = min_derivative + jax.nn.softplus(raw[..., 2 * k :] + offset)
    if circular:
        derivatives = jnp.concatenate([derivatives, derivatives[..., :1]], axis=-1)
    else:
        one = jnp.ones((*raw.shape[:-1], 1), raw.dtype)
        derivatives = jnp.concatenate([one, derivatives, one], axis=-1)
    return SplineKnots(knots_of(raw[..., :k]), knots_of(raw[..., k : 2 * k]), derivatives, circular)


def _gather(a: Array, index: Array) -> Array:
    return jnp.take_along_axis(a, index[..., None], axis=-1)[..., 0]


class _Bin(NamedTuple):
    x: Array  # x_k
    y: Array  # y_k
    width: Array
    height: Array
    d0: Array  # d_k
    d1: Array  # d_{k+1}


def _bin_of(v: Array, edges: Array, knots: SplineKnots) -> _Bin:
    """The bin of every element of ``v`` (already inside the interval) along ``edges`` (the
    knots' x or y): k = #{interior edges ≤ v}. ``v`` and the knots are broadcast."""
    shape = jnp.broadcast_shapes(v.shape, edges.shape[:-1])
    full = lambda a: jnp.broadcast_to(a, (*shape, a.shape[-1]))
    xs, ys, ds, edges = full(knots.x), full(knots.y), full(knots.derivatives), full(edges)
    k = jnp.sum(jnp.broadcast_to(v, shape)[..., None] >= edges[..., 1:-1], axis=-1)
    x0, y0, d0 = _gather(xs, k), _gather(ys, k), _gather(ds, k)
    x1, y1, d1 = _gather(xs, k + 1), _gather(ys, k + 1), _gather(ds, k + 1)
    return _Bin(x0, y0, x1 - x0, y1 - y0, d0, d1)


def _log_derivative(b: _Bin, xi: Array) -> Array:
    """log f'(x) at position ξ of bin ``b`` (module docstring)."""
    s = b.height / b.width
    t = xi * (1 - xi)
    numerator = b.d1 * xi**2 + 2 * s * t + b.d0 * (1 - xi) ** 2
    denominator = s + (b.d0 + b.d1 - 2 * s) * t
    return 2 * jnp.log(s) + jnp.log(numerator) - 2 * jnp.log(denominator)


def _wrap(v: Array, knots: SplineKnots) -> tuple[Array, Array]:
    """(v reduced to [low, high), the shift 2πn taken off) for circular splines; else (v, 0)."""
    if not knots.circular:
        return v, jnp.zeros((), v.dtype)
    low, period = knots.x[..., 0], knots.x[..., -1] - knots.x[..., 0]
    shift = period * jnp.floor((v - low) / period)
    return v - shift, shift


def _locate(v: Array, edges: Array, knots: SplineKnots):
    """(v wrapped if circular, the periodic shift, v inside the interval, v clipped into it,
    its bin) along ``edges`` (the knots' x for the forward, y for the inverse)."""
    low, high = edges[..., 0], edges[..., -1]
    v, shift = _wrap(v, knots)
    inside = (v >= low) & (v <= high)
    clipped = jnp.clip(v, low, high)
    return v, shift, inside, clipped, _bin_of(clipped, edges, knots)


def rational_quadratic_forward(x: Array, knots: SplineKnots) -> tuple[Array, Array]:
    """y = f(x) and log f'(x) elementwise (shape of x broadcast with the knots' batch)."""
    x, shift, inside, xc, b = _locate(x, knots.x, knots)
    xi = jnp.clip((xc - b.x) / b.width, 0.0, 1.0)
    s = b.height / b.width
    t = xi * (1 - xi)
    y = b.y + b.height * (s * xi**2 + b.d0 * t) / (s + (b.d0 + b.d1 - 2 * s) * t)
    y = jnp.clip(y, b.y, b.y + b.height)  # monotone under rounding
    log_det = jnp.where(inside, _log_derivative(b, xi), 0.0)
    return jnp.where(inside, y, x) + shift, log_det


def _root(a: Array, b: Array, c: Array) -> Array:
    """The root in [0, 1] of a ξ² + b ξ + c (module docstring), with guarded denominators so
    that neither form's gradient is poisoned by the other's."""
    sqrt = jnp.sqrt(jnp.maximum(b * b - 4 * a * c, jnp.finfo(b.dtype).tiny))
    positive = b >= 0
    tiny = jnp.finfo(b.dtype).tiny
    den_positive = jnp.where(positive, jnp.minimum(-b - sqrt, -tiny), -1.0)
    den_negative = jnp.where(positive, 1.0, jnp.maximum(2 * a, tiny))
    return jnp.where(positive, 2 * c / den_positive, (sqrt - b) / den_negative)


def rational_quadratic_inverse(y: Array, knots: SplineKnots) -> tuple[Array, Array]:
    """x = f⁻¹(y) and log |df⁻¹/dy| = −log f'(x) elementwise."""
    y, shift, inside, yc, b = _locate(y, knots.y, knots)
    s = b.height / b.width
    delta = jnp.clip(yc - b.y, 0.0, b.height)
    slopes = b.d0 + b.d1 - 2 * s
    a = b.height * (s - b.d0) + delta * slopes
    bb = b.height * b.d0 - delta * slopes
    xi = jnp.clip(_root(a, bb, -s * delta), 0.0, 1.0)
    x = jnp.clip(b.x + b.width * xi, b.x, b.x + b.width)
    log_det = jnp.where(inside, -_log_derivative(b, xi), 0.0)
    return jnp.where(inside, x, y) + shift, log_det


class RationalQuadraticSpline(Bijector):
    """Elementwise monotone rational-quadratic spline with learned knots (module docstring).

    event_shape:    shape of the parameter array (one spline per element), broadcast against
                    the trailing axes of x; ``()`` is one spline for every element.
    event_ndims:    trailing axes summed in the log-det; None (default) is len(event_shape).
    num_bins:       K.
    bound:          B of the interval [−B, B]; None is 3 (linear) or π (circular).
    circular:       periodic spline on [−B, B] (angles) instead of linear tails.
    min_bin_size, min_derivative: floors of the bin widths/heights and knot derivatives.
    context_dim:    with a context, the parameters are ``base + Dense(context)`` (a conditional
                    spline); None infers the context's size when one is passed.
    params_init:    initialiser of the base parameters and of the context layer's kernel;
                    zeros (default) make the spline the identity at initialisation.
    """

    event_shape: Sequence[int] = ()
    event_ndims: int | None = None
    num_bins: int = 8
    bound: float | None = None
    circular: bool = False
    min_bin_size: float = 1e-3
    min_derivative: float = 1e-3
    context_dim: int | None = None
    params_init: Any = nn.initializers.zeros

    def __post_init__(self):
        shape = self.event_shape
        if isinstance(shape, int) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            raise ValueError(
                f"RationalQuadraticSpline: event_shape must be a tuple of positive ints, got "
                f"{shape!r}"
            )
        object.__setattr__(self, "event_shape", tuple(shape))
        if self.event_ndims is None:
            object.__setattr__(self, "event_ndims", len(self.event_shape))
        check_int(self.event_ndims, "event_ndims", minimum=0, owner="RationalQuadraticSpline")
        if self.bound is None:
            object.__setattr__(self, "bound", math.pi if self.circular else 3.0)
        check_number(self.bound, "bound", owner="RationalQuadraticSpline")
        check_spline_options(
            "RationalQuadraticSpline",
            self.num_bins,
            -self.bound,
            self.bound,
            self.min_bin_size,
            self.min_derivative,
        )
        if self.context_dim is not None:
            check_int(self.context_dim, "context_dim", minimum=1, owner="RationalQuadraticSpline")
        super().__post_init__()

    @property
    def num_params(self) -> int:
        return num_spline_params(self.num_bins, self.circular)

    @nn.compact
    def _raw(self, x: Array, context: Array | None) -> Array:
        dtype = jax.dtypes.canonicalize_dtype(float)
        raw = self.param("raw", self.params_init, (*self.event_shape, self.num_params), dtype)
        raw = raw.astype(x.dtype)
        if context is not None or self.context_dim is not None:
            raw = raw + self._from_context(x, context)
        return raw

    def _from_context(self, x: Array, context: Array | None) -> Array:
        if (
            context is None
            or context.ndim < 1
            or (self.context_dim is not None and context.shape[-1] != self.context_dim)
        ):
            given = "none" if context is None else f"shape {tuple(context.shape)}"
            raise ValueError(
                "RationalQuadraticSpline: expected a context of shape (*batch, "
                f"{self.context_dim or 'K'}), got {given}"
            )
        size = math.prod(self.event_shape) * self.num_params
        dtype = jax.dtypes.canonicalize_dtype(float)
        dense = nn.Dense(size, kernel_init=self.params_init, name="context", param_dtype=dtype)
        out = dense(context.astype(x.dtype))
        # (*batch, *event_shape, P), with size-1 axes for event axes the parameters broadcast over
        padding = (1,) * (self.event_ndims - len(self.event_shape))
        return out.reshape((*context.shape[:-1], *padding, *self.event_shape, self.num_params))

    def _apply(self, v: Array, context: Array | None, inverse: bool) -> tuple[Array, Array]:
        out, log_det = apply_spline(
            v,
            self._raw(v, context),
            inverse=inverse,
            num_bins=self.num_bins,
            bound=self.bound,
            circular=self.circular,
            min_bin_size=self.min_bin_size,
            min_derivative=self.min_derivative,
        )
        return out, sum_rightmost(jnp.broadcast_to(log_det, out.shape), self.event_ndims)

    def forward_and_log_det(self, x, context=None):
        return self._apply(x, context, inverse=False)

    def inverse_and_log_det(self, y, context=None):
        return self._apply(y, context, inverse=True)


def apply_spline(
    v: Array,
    raw: Array,
    *,
    inverse: bool,
    num_bins: int,
    bound: float,
    circular: bool = False,
    min_bin_size: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Array, Array]:
    """The spline on [−bound, bound] with unconstrained parameters ``raw`` (..., P), applied to
    ``v`` (forward or inverse): (output, per-element log-derivative). The transformer of spline
    couplings and autoregressive layers."""
    knots = spline_knots(
        raw,
        num_bins=num_bins,
        low=-bound,
        high=bound,
        min_bin_size=min_bin_size,
        min_derivative=min_derivative,
        circular=circular,
    )
    return (rational_quadratic_inverse if inverse else rational_quadratic_forward)(v, knots)
