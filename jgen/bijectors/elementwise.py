"""Elementwise bijectors: learnable and fixed affine maps, sigmoid, logit and tanh.

Each acts independently on every element, so its Jacobian is diagonal and the log-det of an
event is the sum of the per-element log-derivatives over the ``event_ndims`` trailing axes.

Numerical safety at the edges of bounded domains: the inverses of `Sigmoid` and `Tanh` and the
forward of `Logit` first clip their input to the open interval, to the largest float strictly
below 1 (``1 - eps/2`` with ``eps = finfo(dtype).eps``) and, for the unit interval, to the
smallest normal float ``finfo(dtype).tiny`` above 0. They therefore return finite values (and
finite log-dets) even at the interval's closed edges, where the exact map is infinite. Inputs of
the unbounded side beyond ``logit(1 - eps/2)`` (about 16.6 in float32, 36.7 in float64) or
``artanh(1 - eps/2)`` (8.7 / 18.7; XLA's float32 tanh already returns ±1 from |x| ≈ 8)
saturate in the forward direction and do not round-trip; their log-dets stay finite (they are
computed from x with softplus, never as the log of a rounded derivative).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.base import Bijector, sum_rightmost
from jgen.typing import Array
from jgen.validation import check_int

__all__ = ["Affine", "Logit", "ScalarAffine", "Sigmoid", "Tanh"]

Initializer = Callable[..., Array]


def _event_log_det(per_element: Array, x: Array, event_ndims: int) -> Array:
    """Broadcast a per-element log-derivative to ``x`` and sum it over the event axes."""
    return sum_rightmost(jnp.broadcast_to(per_element, x.shape), event_ndims)


def _below_one(dtype) -> Array:
    """The largest float of ``dtype`` strictly below 1."""
    return jnp.asarray(1.0 - jnp.finfo(dtype).eps / 2, dtype)


def _clip_unit_interval(u: Array) -> Array:
    """Clip to [tiny, 1 - eps/2]: strictly inside (0, 1) so that logs stay finite."""
    return jnp.clip(u, jnp.finfo(u.dtype).tiny, _below_one(u.dtype))


def _sigmoid_log_derivative(x: Array) -> Array:
    # log σ'(x) = log σ(x) + log σ(-x) = -softplus(-x) - softplus(x), finite for any finite x.
    return -jax.nn.softplus(-x) - jax.nn.softplus(x)


def _tanh_log_derivative(x: Array) -> Array:
    # log(1 - tanh²x) = 2 (log 2 - x - softplus(-2x)), stable for large |x|.
    return 2.0 * (math.log(2.0) - x - jax.nn.softplus(-2.0 * x))


def _logit_and_log_derivative(u: Array) -> tuple[Array, Array]:
    """logit(u) and log|d logit/du| = -log u - log(1 - u), with u clipped into (0, 1)."""
    u = _clip_unit_interval(u)
    log_u, log_1mu = jnp.log(u), jnp.log1p(-u)
    return log_u - log_1mu, -(log_u + log_1mu)


class Affine(Bijector):
    """Learnable elementwise affine map y = x · exp(log_scale) + shift.

    ``shift`` and ``log_scale`` are parameters of shape ``event_shape`` that broadcast against
    the trailing axes of x (so ``event_shape=(C,)`` with ``event_ndims=3`` is a per-channel map of
    NHWC images). Both are initialised by ``shift_init``/``log_scale_init`` (zeros by default,
    i.e. the identity map).

        log|det ∂y/∂x| = Σ_event log_scale  (broadcast over the event, summed over its axes).
    """

    event_shape: tuple[int, ...]
    event_ndims: int = 1
    shift_init: Initializer = nn.initializers.zeros
    log_scale_init: Initializer = nn.initializers.zeros

    def __post_init__(self):
        shape = self.event_shape
        if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            raise ValueError(f"Affine: event_shape must be a tuple of positive ints, got {shape!r}")
        check_int(self.event_ndims, "event_ndims", minimum=0, owner="Affine")
        super().__post_init__()

    def setup(self):
        dtype = jax.dtypes.canonicalize_dtype(float)
        self.shift = self.param("shift", self.shift_init, self.event_shape, dtype)
        self.log_scale = self.param("log_scale", self.log_scale_init, self.event_shape, dtype)

    def forward_and_log_det(self, x, context=None):
        y = x * jnp.exp(self.log_scale) + self.shift
        return y, _event_log_det(self.log_scale, x, self.event_ndims)

    def inverse_and_log_det(self, y, context=None):
        x = (y - self.shift) * jnp.exp(-self.log_scale)
        return x, -_event_log_det(self.log_scale, y, self.event_ndims)


class ScalarAffine(Bijector):
    """Fixed (non-learnable) elementwise affine map y = scale · x + shift, scale ≠ 0.

    log|det ∂y/∂x| = n · log|scale|, with n the number of elements of one event.
    """

    parameter_free: ClassVar[bool] = True

    shift: float = 0.0
    scale: float = 1.0
    event_ndims: int = 1

    def __post_init__(self):
        for name in ("shift", "scale"):
            value = getattr(self, name)
            try:
                if isinstance(value, (str, bytes)):
                    raise TypeError
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"ScalarAffine: {name} must be a real number, got {type(value).__name__}"
                ) from None
            if not math.isfinite(number):
                raise ValueError(f"ScalarAffine: {name} must be finite, got {number}")
            object.__setattr__(self, name, number)
        if self.scale == 0.0:
            raise ValueError(
                "ScalarAffine: scale must be nonzero (the map is not invertible), got 0"
            )
        check_int(self.event_ndims, "event_ndims", minimum=0, owner="ScalarAffine")
        super().__post_init__()

    def _log_abs_scale(self, x: Array) -> Array:
        return _event_log_det(
            jnp.log(jnp.abs(jnp.asarray(self.scale, x.dtype))), x, self.event_ndims
        )

    def forward_and_log_det(self, x, context=None):
        y = x * jnp.asarray(self.scale, x.dtype) + jnp.asarray(self.shift, x.dtype)
        return y, self._log_abs_scale(x)

    def inverse_and_log_det(self, y, context=None):
        x = (y - jnp.asarray(self.shift, y.dtype)) / jnp.asarray(self.scale, y.dtype)
        return x, -self._log_abs_scale(y)


class Sigmoid(Bijector):
    """y = σ(x) = 1 / (1 + e^{-x}), mapping ℝ to (0, 1).

    log|det ∂y/∂x| = Σ_event [log σ(x) + log σ(-x)] = -Σ_event [softplus(x) + softplus(-x)],
    which is finite for every finite x (no log of a rounded-to-zero σ).
    Inverse: x = logit(y) = log y - log(1 - y), with y clipped to [tiny, 1 - eps/2] first (see
    the module docstring); its log-det is -Σ_event [log y + log(1 - y)] at the clipped y.
    """

    parameter_free: ClassVar[bool] = True

    event_ndims: int = 1

    def __post_init__(self):
        check_int(self.event_ndims, "event_ndims", minimum=0, owner="Sigmoid")
        super().__post_init__()

    def forward_and_log_det(self, x, context=None):
        return jax.nn.sigmoid(x), sum_rightmost(_sigmoid_log_derivative(x), self.event_ndims)

    def inverse_and_log_det(self, y, context=None):
        x, log_derivative = _logit_and_log_derivative(y)
        return x, sum_rightmost(log_derivative, self.event_ndims)


class Logit(Bijector):
    """y = logit(x) = log x - log(1 - x), mapping (0, 1) to ℝ (the inverse of `Sigmoid`).

    log|det ∂y/∂x| = -Σ_event [log x + log(1 - x)], with x clipped to [tiny, 1 - eps/2] first
    (see the module docstring), so inputs on the edges 0 and 1 give finite outputs.
    Inverse: x = σ(y), log-det Σ_event [log σ(y) + log σ(-y)] computed with softplus.
    """

    parameter_free: ClassVar[bool] = True

    event_ndims: int = 1

    def __post_init__(self):
        check_int(self.event_ndims, "event_ndims", minimum=0, owner="Logit")
        super().__post_init__()

    def forward_and_log_det(self, x, context=None):
        y, log_derivative = _logit_and_log_derivative(x)
        return y, sum_rightmost(log_derivative, self.event_ndims)

    def inverse_and_log_det(self, y, context=None):
        return jax.nn.sigmoid(y), sum_rightmost(_sigmoid_log_derivative(y), self.event_ndims)


class Tanh(Bijector):
    """y = tanh(x), mapping ℝ to (-1, 1).

    log|det ∂y/∂x| = Σ_event log(1 - tanh²x) = Σ_event 2 (log 2 - x - softplus(-2x)),
    the stable form (no cancellation in 1 - tanh²x, finite for every finite x).
    Inverse: x = artanh(y) with y clipped to [-(1 - eps/2), 1 - eps/2] first (see the module
    docstring); its log-det is minus the forward formula at that x.
    """

    parameter_free: ClassVar[bool] = True

    event_ndims: int = 1

    def __post_init__(self):
        check_int(self.event_ndims, "event_ndims", minimum=0, owner="Tanh")
        super().__post_init__()

    def forward_and_log_det(self, x, context=None):
        return jnp.tanh(x), sum_rightmost(_tanh_log_derivative(x), self.event_ndims)

    def inverse_and_log_det(self, y, context=None):
        edge = _below_one(y.dtype)
        x = jnp.arctanh(jnp.clip(y, -edge, edge))
        return x, -sum_rightmost(_tanh_log_derivative(x), self.event_ndims)
