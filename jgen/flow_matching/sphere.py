"""Flow matching on the sphere S² (Riemannian flow matching, Chen & Lipman 2024) and von
Mises-Fisher mixtures with known density and entropy.

**Model.** Points of S² are unit vectors in R³. The CNF runs in R³ with a field tangent to the
sphere, `TangentField(g)`: v(x, t) = P(x) g(x, t) with P(x) = I − x xᵀ/|x|² (the projection
on the tangent plane, extended 0-homogeneously off the sphere). Its flow keeps |x| = 1, and
since v·x ≡ 0 in a neighbourhood, the ambient divergence on S² equals the Riemannian one
(div_{R³} v = div_{S²} v + ⟨∂_n v, n⟩ and ⟨∂_n v, n⟩ = ∂_n(v·n) = 0 for n = x/|x|). So the
CNF's instantaneous change of variables gives the density with respect to the AREA measure of
S²: log p(x1) = log p0(x0) − ∫ div v dt, with the prior `UniformSphere` (p0 = 1/(4π)).

**Training** (`GeodesicPath`): x0 uniform on S² (the objective's Gaussian noise, normalised: a
normalised standard normal is uniform on S²), x1 from the data, and the geodesic (slerp)

    x_t = (sin((1 − t)θ) x0 + sin(tθ) x1) / sin θ,   θ = arccos(x0·x1),
    u_t = θ (cos(tθ) x1 − cos((1 − t)θ) x0) / sin θ,

the constant-speed geodesic from x0 to x1 and its velocity (tangent at x_t). With
`FlowMatchingObjective(cnf, path=GeodesicPath(), base=UniformSphere())` everything else —
exact likelihood, one-solve sampling — is the Euclidean code.

**Moser flow on S²** (`jgen.flow_matching.moser`): μ = ν − div_{S²} u with ν = 1/(4π) and
u = `SphereField`, s P(x) g(x) for an MLP g on R³. S² has no boundary, so ∫_{S²} div u dA = 0
(divergence theorem) and ∫ μ dA = 1 for every parameter value; div_{S²} u is the ambient trace
of ∂u/∂x on S², as above. `MoserObjective(SphereField(...), prior=UniformSphere())` then trains
with the positivity penalty against uniform draws on S², evaluates −log max(μ, ε) without an
ODE, and samples by the flow of u / ((1 − t) ν + t μ), tangent too, so samples stay on S².

**Data.** `VonMisesFisherMixture(means, concentrations, weights)`: f(x) = Σ_k w_k C(κ_k)
exp(κ_k μ_kᵀx), C(κ) = κ / (4π sinh κ) (closed form on S²), sampled exactly (Wood 1994:
w = μᵀx = 1 + log(u + (1 − u) e^{−2κ})/κ, the rest uniform on the circle), its entropy
H = −∫ f log f dA by `sphere_quadrature` (Gauss–Legendre in z = cos θ, the trapezoidal rule in
φ, which is spectrally accurate for periodic integrands).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.flow_matching.moser import smooth_mlp
from jgen.flow_matching.paths import ProbabilityPath
from jgen.nets import SMOOTH_ACTIVATIONS, resolve_activation
from jgen.typing import Array, PRNGKey
from jgen.validation import ValidationError, check_int, check_number

__all__ = [
    "FOUR_VMF",
    "GeodesicPath",
    "SphereField",
    "TangentField",
    "UniformSphere",
    "VonMisesFisherMixture",
    "sphere_quadrature",
    "tangent_projection",
]


def _unit(x: Array) -> Array:
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def tangent_projection(x: Array, g: Array) -> Array:
    """P(x) g = g − (x·g) x / |x|² (last axis of size 3): the component of g tangent at x."""
    return g - jnp.sum(x * g, axis=-1, keepdims=True) * x / jnp.sum(x * x, axis=-1, keepdims=True)


class TangentField(nn.Module):
    """v(x, t[, context]) = P(x) g(x, t[, context]) for a field g on R³ (e.g. `MLPField`)."""

    field: nn.Module

    @nn.compact
    def __call__(self, z, t, context=None):
        return tangent_projection(z, self.field(z, t, context))


class SphereField(nn.Module):
    """u(x) = s P(x) g(x), g an MLP on R³: a tangent field on S², Moser flow's u (no time).

    hidden_dims:  widths of g's hidden layers.
    output_scale: s (default ν = 1/(4π): div u then starts on the scale of the prior).
    activation:   g's smooth activation ('tanh' default, 'softplus', 'silu', ... or a callable).
    """

    hidden_dims: Sequence[int]
    output_scale: float | None = None
    activation: str | Callable[[Array], Array] = "tanh"

    def __post_init__(self):
        if self.output_scale is not None:
            check_number(self.output_scale, "output_scale", owner="SphereField")
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        resolve_activation("SphereField", self.activation, choices=SMOOTH_ACTIVATIONS)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.shape[-1] != 3:
            raise ValidationError(f"SphereField: points must be (..., 3), got {x.shape}")
        scale = 1.0 / (4.0 * math.pi) if self.output_scale is None else self.output_scale
        g = smooth_mlp("SphereField", self.hidden_dims, 3, self.activation, x.dtype)
        return (scale * tangent_projection(x, g(x))).astype(x.dtype)


class UniformSphere:
    """The uniform distribution on S² (density 1/(4π) w.r.t. area), as a `Flow` base and as
    Moser flow's prior."""

    event_shape = (3,)
    volume = 4.0 * math.pi
    radius_tolerance = 1e-3

    def log_prob(self, z: Array) -> Array:
        return jnp.full(z.shape[:-1], -math.log(self.volume), z.dtype)

    def contains(self, z: Array) -> Array:
        """Whether z is on S² (| |z| − 1 | <= radius_tolerance)."""
        return jnp.abs(jnp.linalg.norm(z, axis=-1) - 1.0) <= self.radius_tolerance

    def sample(self, key: PRNGKey, sample_shape, dtype=jnp.float32) -> Array:
        return _unit(jax.random.normal(key, (*sample_shape, 3), dtype))

    def __repr__(self) -> str:
        return "UniformSphere()"


@dataclasses.dataclass(frozen=True)
class GeodesicPath(ProbabilityPath):
    """The geodesic from x0 (normalised onto S²) to x1 ∈ S² and its velocity (module docs)."""

    def sample(self, key, x0, x1, t):
        x0 = _unit(x0)
        t = jnp.asarray(t, x0.dtype)[:, None]
        cos = jnp.clip(jnp.sum(x0 * x1, axis=-1, keepdims=True), -1.0 + 1e-6, 1.0 - 1e-6)
        theta = jnp.arccos(cos)
        sin = jnp.sin(theta)
        x_t = (jnp.sin((1.0 - t) * theta) * x0 + jnp.sin(t * theta) * x1) / sin
        u_t = theta * (jnp.cos(t * theta) * x1 - jnp.cos((1.0 - t) * theta) * x0) / sin
        return x_t, u_t


def sphere_quadrature(num_z: int = 128, num_phi: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3), area weights (N,)) with Σ w f(x) ≈ ∫_{S²} f dA for smooth f:
    Gauss–Legendre nodes in z = cos θ times equispaced φ (dA = dz dφ)."""
    check_int(num_z, "num_z", minimum=1, owner="sphere_quadrature")
    check_int(num_phi, "num_phi", minimum=1, owner="sphere_quadrature")
    z, wz = np.polynomial.legendre.leggauss(num_z)
    phi = 2.0 * np.pi * np.arange(num_phi) / num_phi
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1.0 - zz**2)
    points = np.stack([r * np.cos(pp), r * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    weights = np.repeat(wz, num_phi) * (2.0 * np.pi / num_phi)
    return points, weights


@dataclasses.dataclass(frozen=True)
class VonMisesFisherMixture:
    """Σ_k w_k vMF(μ_k, κ_k) on S²: means (K, 3) (normalised here), concentrations (K,) > 0,
    weights (K,) (normalised here; default uniform)."""

    means: tuple
    concentrations: tuple
    weights: tuple | None = None

    def __post_init__(self):
        means = np.asarray(self.means, np.float64)
        kappa = np.asarray(self.concentrations, np.float64)
        if means.ndim != 2 or means.shape[1] != 3 or kappa.shape != (len(means),):
            raise ValidationError(
                f"VonMisesFisherMixture: means must be (K, 3) and concentrations (K,), got "
                f"{means.shape} and {kappa.shape}"
            )
        if np.any(kappa <= 0):
            raise ValidationError(f"VonMisesFisherMixture: concentrations must be > 0, got {kappa}")
        weights = np.ones(len(means)) if self.weights is None else np.asarray(self.weights, float)
        if weights.shape != kappa.shape or np.any(weights <= 0):
            raise ValidationError(
                f"VonMisesFisherMixture: weights must be (K,) and positive, got {weights}"
            )
        object.__setattr__(self, "means", means / np.linalg.norm(means, axis=-1, keepdims=True))
        object.__setattr__(self, "concentrations", kappa)
        object.__setattr__(self, "weights", weights / weights.sum())

    def log_prob(self, x) -> np.ndarray:
        """log f(x) (w.r.t. area) for x (..., 3) on S² (numpy, float64)."""
        x = np.asarray(x, np.float64)
        kappa = self.concentrations
        # log C(κ) = log κ − log 2π − κ − log(1 − e^{−2κ}), stable for large κ.
        log_c = np.log(kappa) - np.log(2 * np.pi) - kappa - np.log1p(-np.exp(-2 * kappa))
        terms = np.log(self.weights) + log_c + kappa * (x @ self.means.T)
        top = terms.max(axis=-1, keepdims=True)
        return (top + np.log(np.exp(terms - top).sum(axis=-1, keepdims=True)))[..., 0]

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n exact draws (n, 3), float32 (Wood's algorithm for S²)."""
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        kappa, mu = self.concentrations[component], self.means[component]
        u = rng.uniform(size=n)
        w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
        v = rng.standard_normal((n, 3))
        v -= np.sum(v * mu, axis=-1, keepdims=True) * mu  # uniform on the circle ⟂ μ
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        x = w[:, None] * mu + np.sqrt(np.clip(1.0 - w**2, 0.0, None))[:, None] * v
        return x.astype(np.float32)

    def entropy(self, num_z: int = 512, num_phi: int = 512) -> float:
        """H = −∫ f log f dA by `sphere_quadrature` (nats)."""
        points, weights = sphere_quadrature(num_z, num_phi)
        log_f = self.log_prob(points)
        return float(-np.sum(weights * np.exp(log_f) * log_f))


# The 4-component mixture of the tests and benchmarks/sphere_flow_matching.py (entropy ≈ 1.813).
FOUR_VMF = VonMisesFisherMixture(
    means=((1, 0, 0), (0, 1, 0), (0, 0, 1), (-1, -1, -1)),
    concentrations=(8.0, 15.0, 4.0, 30.0),
    weights=(0.3, 0.2, 0.3, 0.2),
)
