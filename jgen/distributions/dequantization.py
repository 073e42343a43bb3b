"""Dequantisation of discrete data, RealNVP's logit pre-processing, and bits per dimension.

Discrete data x ∈ {0, …, K−1}^D is made continuous by uniform dequantisation,
y = (x + u) / K with u ~ U[0, 1)^D, so y ∈ [0, 1)^D. For any density p_Y on the unit cube,
Jensen's inequality gives the bound used by every published flow

    log P(x) ≥ E_u[ log p_Y((x + u)/K) ] − D log K,

so the reported bits/dim, (−log p_Y(y) + D log K) / (D log 2), upper-bounds the discrete model's
code length and is comparable with published numbers.

Before a flow, RealNVP maps y to logit space: y' = α + (1 − 2α) y, z = logit(y').
`LogitPreprocess` is that map written as a bijector in the base → data direction,
f(z) = (σ(z) − α)/(1 − 2α), so its log-det enters the flow's log p_Y like any other layer.
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from jgen.bijectors.base import Bijector, sum_rightmost
from jgen.bijectors.elementwise import _logit_and_log_derivative
from jgen.typing import Array, PRNGKey

__all__ = ["LogitPreprocess", "bits_per_dim", "uniform_dequantize"]


def uniform_dequantize(key: PRNGKey, x: Array, num_levels: int, dtype=None) -> Array:
    """y = (x + u)/K, u ~ U[0, 1): integer levels in {0..K−1} to points of [0, 1).

    ``dtype`` defaults to the default float type (float64 under x64). In floating point
    (K − 1 + u)/K can round up to 1; the result is clipped to the largest value below 1.
    """
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an int >= 2, got {num_levels!r}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    u = jax.random.uniform(key, x.shape, dtype)
    y = (x.astype(dtype) + u) / num_levels
    return jnp.minimum(y, jnp.nextafter(jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype)))


def bits_per_dim(log_prob_unit_cube: Array, num_dims: int, num_levels: int) -> Array:
    """Bits/dim of discrete data from the log-density of its dequantised version on [0, 1)^D.

    bpd = (−log p_Y(y) + D log K) / (D log 2).
    """
    return (-log_prob_unit_cube + num_dims * math.log(num_levels)) / (num_dims * math.log(2.0))


class LogitPreprocess(Bijector):
    """f(z) = (σ(z) − α)/(1 − 2α): logit space → the unit interval (RealNVP's pre-processing).

    Inverse: f⁻¹(y) = logit(p) with p = α + (1 − 2α) y, defined for p ∈ (0, 1), i.e. on
    (−α/(1 − 2α), (1 − α)/(1 − 2α)), which contains [0, 1] when α > 0.
    log|f'(z)| = log σ(z) + log σ(−z) − log(1 − 2α), summed over the event axes;
    the inverse's log-det is −log p − log(1 − p) + log(1 − 2α).

    Edges: as in `jgen.bijectors.Logit`, the inverse clips p to [tiny, 1 − eps/2] (the smallest
    normal float and the largest float below 1) before the logit, so it returns finite values,
    log-dets and gradients even at p = 0 or 1 (y = 0 and y = 1 when α = 0) and at subnormal p.
    The forward saturates like σ: σ(z) rounds to 1 for z ≳ 16.6 in float32 (36.7 in float64).
    """

    parameter_free: ClassVar[bool] = True

    alpha: float = 0.05
    event_ndims: int = 3

    def __post_init__(self):
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise TypeError(f"LogitPreprocess: alpha must be a number, got {self.alpha!r}")
        if not 0.0 <= self.alpha < 0.5:
            raise ValueError(f"LogitPreprocess: alpha must lie in [0, 0.5), got {self.alpha}")
        if self.event_ndims not in (0, 1, 2, 3):
            raise ValueError(f"LogitPreprocess: event_ndims must be 0-3, got {self.event_ndims!r}")
        super().__post_init__()

    def _check(self, x: Array) -> None:
        if x.ndim < self.event_ndims:
            raise ValueError(
                f"LogitPreprocess(event_ndims={self.event_ndims}) needs inputs with at least "
                f"{self.event_ndims} axes, got shape {x.shape}"
            )

    def _log_det(self, z: Array) -> Array:
        per_elem = -jax.nn.softplus(-z) - jax.nn.softplus(z) - math.log1p(-2 * self.alpha)
        return sum_rightmost(per_elem, self.event_ndims)

    def forward_and_log_det(self, x, context=None):
        self._check(x)
        y = (jax.nn.sigmoid(x) - self.alpha) / (1 - 2 * self.alpha)
        return y, self._log_det(x)

    def inverse_and_log_det(self, y, context=None):
        self._check(y)
        p = self.alpha + (1 - 2 * self.alpha) * y
        # logit(p) and -log p - log(1 - p) with p clipped into [tiny, 1 - eps/2], as in `Logit`:
        # finite on the closed edges p = 0 and p = 1 (y = 0 and y = 1 when α = 0) and at
        # subnormal p, which the CPU flushes to zero.
        z, log_derivative = _logit_and_log_derivative(p)
        per_elem = log_derivative + math.log1p(-2 * self.alpha)
        return z, sum_rightmost(per_elem, self.event_ndims)
