"""Conditional probability paths for flow matching: x_t and the target field u_t.

Time runs from noise (t = 0, x0 ~ N(0, I)) to data (t = 1, x1 ~ data), the direction of
`jgen.cnf.CNF`'s forward (sampling) solve with t0 = 0, t1 = 1. Each path is a frozen dataclass

    x_t, u_t = path.sample(key, x0, x1, t)        # x0, x1: (B, *event), t: (B,)

giving a point of the conditional path and the conditional target field at it. Flow matching
regresses a vector field v_θ(x_t, t) on u_t; the minimiser of E||v_θ − u_t||² over all fields
is the marginal field E[u_t | x_t], whose flow carries N(0, I) to the data (Lipman et al. 2023,
Theorem 2; Tong et al. 2023, Theorem 3.2).

``LinearGaussianPath(sigma_min)`` — Lipman et al. (2023), eq. 20-23 (their "OT path"),
conditioned on x1 with x0 ~ N(0, I):

    x_t = (1 − (1 − σ_min) t) x0 + t x1,        u_t = x1 − (1 − σ_min) x0,

so p_t(x | x1) = N(t x1, (1 − (1 − σ_min) t)² I): N(0, I) at t = 0, N(x1, σ_min² I) at t = 1.
u_t is deterministic given (x0, x1): the conditional loss is exactly 0 at the conditional field.

``InterpolantPath(sigma)`` — Tong et al. (2023), I-CFM / OT-CFM, conditioned on the pair
(x0, x1):

    x_t = (1 − t) x0 + t x1 + σ ε,   ε ~ N(0, I),        u_t = x1 − x0,

a Gaussian tube of constant width σ around the straight segment (σ = 0: rectified flow).

``BrownianBridgePath(sigma)`` — SB-CFM (Tong et al. 2023, "Simulation-free Schrödinger
bridges"), the Brownian bridge between x0 and x1 with diffusion σ:

    x_t = (1 − t) x0 + t x1 + σ_t ε,   σ_t = σ √(t(1 − t)),
    u_t = x1 − x0 + σ_t' ε,            σ_t' = σ (1 − 2t) / (2 √(t(1 − t))),

the probability-flow field of the bridge's marginals (u_t = x1 − x0 + (σ_t'/σ_t)(x_t − μ_t)).
Paired with the entropic OT plan at ε = 2σ² (`coupling.SchrodingerBridge(sigma)`), the
marginal flow is that of the Schrödinger bridge from the noise to the data. t is kept in
[δ, 1 − δ] with δ = 1e-5 where σ_t' is evaluated (it is integrably singular at the ends).

**Affine schedules** x_t = α_t x1 + σ_t x0, u_t = α_t' x1 + σ_t' x0 (`AffinePath`, the
"Gaussian paths" of Lipman et al. 2023 §4 conditioned on (x0, x1); α_0 ≈ 0, σ_0 = 1,
α_1 = 1, σ_1 ≈ 0):

``CosinePath()`` — α_t = sin(πt/2), σ_t = cos(πt/2) (the trigonometric interpolant of Albergo &
Vanden-Eijnden 2023; variance preserving: α² + σ² = 1).

``VariancePreservingPath(beta_min, beta_max)`` — the VP diffusion's marginals run as a flow
(Song et al. 2021; Lipman et al. 2023, eq. 18-19): with s = 1 − t and
T(s) = ∫_0^s β(r) dr = β_min s + (β_max − β_min) s²/2,

    α_t = exp(−T(1 − t)/2),   σ_t = √(1 − α_t²),
    α_t' = α_t β(1 − t)/2,    σ_t' = −α_t α_t' / σ_t,

t kept ≤ 1 − 1e-5 (σ_t → 0 at t = 1). ``LinearGaussianPath`` is the affine path with α_t = t,
σ_t = 1 − (1 − σ_min) t. A test checks every path's u_t against the autodiff derivative
d x_t/dt at fixed (x0, x1, ε).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from jgen.typing import Array, PRNGKey

__all__ = [
    "AffinePath",
    "BrownianBridgePath",
    "CosinePath",
    "InterpolantPath",
    "LinearGaussianPath",
    "ProbabilityPath",
    "VariancePreservingPath",
]


def _time_like(t: Array, x: Array) -> Array:
    """t (B,) broadcast against x (B, *event)."""
    t = jnp.asarray(t, x.dtype)
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def _check_sigma(owner: str, name: str, value, *, upper: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    if value < 0 or (upper is not None and value >= upper):
        bound = f"[0, {upper})" if upper is not None else "[0, inf)"
        raise ValueError(f"{owner}: {name} must lie in {bound}, got {value}")


class ProbabilityPath:
    """Interface: ``sample(key, x0, x1, t) -> (x_t, u_t)`` (see the module docstring)."""

    def sample(self, key: PRNGKey, x0: Array, x1: Array, t: Array) -> tuple[Array, Array]:
        raise NotImplementedError


class AffinePath(ProbabilityPath):
    """x_t = α_t x1 + σ_t x0,  u_t = α_t' x1 + σ_t' x0, from ``schedule(t) -> (α, σ, α', σ')``."""

    def schedule(self, t: Array) -> tuple[Array, Array, Array, Array]:
        raise NotImplementedError

    def sample(self, key, x0, x1, t):
        alpha, sigma, d_alpha, d_sigma = self.schedule(_time_like(t, x0))
        return alpha * x1 + sigma * x0, d_alpha * x1 + d_sigma * x0


@dataclasses.dataclass(frozen=True)
class LinearGaussianPath(AffinePath):
    """x_t = (1 − (1 − σ_min) t) x0 + t x1,  u_t = x1 − (1 − σ_min) x0  (Lipman et al. 2023).

    sigma_min: the width of p_1(x | x1) = N(x1, σ_min² I), in [0, 1).
    """

    sigma_min: float = 1e-4

    def __post_init__(self):
        _check_sigma("LinearGaussianPath", "sigma_min", self.sigma_min, upper=1.0)

    def schedule(self, t):
        shrink = 1.0 - self.sigma_min
        return t, 1.0 - shrink * t, jnp.ones_like(t), jnp.full_like(t, -shrink)


@dataclasses.dataclass(frozen=True)
class CosinePath(AffinePath):
    """α_t = sin(πt/2), σ_t = cos(πt/2)."""

    def schedule(self, t):
        angle = 0.5 * math.pi * t
        sin, cos = jnp.sin(angle), jnp.cos(angle)
        return sin, cos, 0.5 * math.pi * cos, -0.5 * math.pi * sin


@dataclasses.dataclass(frozen=True)
class VariancePreservingPath(AffinePath):
    """The VP diffusion's marginals as a flow: α_t = exp(−T(1 − t)/2), σ_t = √(1 − α_t²).

    beta_min, beta_max: the linear noise rate β(s) = β_min + (β_max − β_min) s (> 0).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        _check_sigma("VariancePreservingPath", "beta_min", self.beta_min)
        _check_sigma("VariancePreservingPath", "beta_max", self.beta_max)
        if not 0 < self.beta_min <= self.beta_max:
            raise ValueError(
                f"VariancePreservingPath: need 0 < beta_min <= beta_max, got "
                f"{self.beta_min}, {self.beta_max}"
            )

    def schedule(self, t):
        s = 1.0 - jnp.minimum(t, 1.0 - 1e-5)
        rate = self.beta_min + (self.beta_max - self.beta_min) * s
        integral = self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2
        alpha = jnp.exp(-0.5 * integral)
        sigma = jnp.sqrt(1.0 - alpha**2)
        d_alpha = 0.5 * alpha * rate
        return alpha, sigma, d_alpha, -alpha * d_alpha / sigma


@dataclasses.dataclass(frozen=True)
class InterpolantPath(ProbabilityPath):
    """x_t = (1 − t) x0 + t x1 + σ ε,  u_t = x1 − x0  (Tong et al. 2023; σ = 0: rectified flow).

    sigma: the constant width σ >= 0 of the tube around the segment.
    """

    sigma: float = 0.0

    def __post_init__(self):
        _check_sigma("InterpolantPath", "sigma", self.sigma)

    def sample(self, key, x0, x1, t):
        t = _time_like(t, x0)
        x_t = (1.0 - t) * x0 + t * x1
        if self.sigma > 0:
            x_t = x_t + self.sigma * jax.random.normal(key, x0.shape, x0.dtype)
        return x_t, x1 - x0


@dataclasses.dataclass(frozen=True)
class BrownianBridgePath(ProbabilityPath):
    """x_t = (1 − t) x0 + t x1 + σ√(t(1 − t)) ε,  u_t = x1 − x0 + σ_t' ε  (SB-CFM).

    sigma: the bridge's diffusion σ > 0 (use ``SchrodingerBridge(sigma)`` as the coupling).
    """

    sigma: float = 1.0

    def __post_init__(self):
        _check_sigma("BrownianBridgePath", "sigma", self.sigma)

    def sample(self, key, x0, x1, t):
        t = jnp.clip(_time_like(t, x0), 1e-5, 1.0 - 1e-5)
        root = jnp.sqrt(t * (1.0 - t))
        noise = jax.random.normal(key, x0.shape, x0.dtype)
        x_t = (1.0 - t) * x0 + t * x1 + self.sigma * root * noise
        return x_t, x1 - x0 + self.sigma * (1.0 - 2.0 * t) / (2.0 * root) * noise
