"""Moser flow (Rozen, Grover, Nickel & Lipman 2021) on the box B = [−L, L]^D, and on any domain
with a uniform prior that has no boundary (the sphere S²: `jgen.flow_matching.sphere`).

The model density is the prior minus a divergence,

    μ(x) = ν(x) − div u(x),        ν = (2L)^(−D) uniform on B,

with u = `BoxField`, a network whose normal component vanishes on ∂B (u_i carries the factor
1 − (x_i/L)², which is 0 on the faces x_i = ±L). By the divergence theorem

    ∫_B μ dx = 1 − ∮_∂B u·n dS = 1

for every parameter value: μ is normalised by construction (no ODE, no partition function).
Outside B the model density is 0. div u = tr ∂u/∂x is computed exactly (`jgen.cnf.ExactTrace`:
D forward-mode products).

**Loss** (the paper's eq. 10-11): with μ₊ = max(ε, μ) and μ₋ = ε − min(ε, μ) = relu(ε − μ),

    l(θ) = −E_data[log μ₊(x)] + λ ∫_B μ₋(x) dx,

the integral estimated by Monte Carlo with prior (uniform) samples y_j ~ ν:
∫_B μ₋ dx = E_ν[μ₋/ν] ≈ vol(B) · mean_j μ₋(y_j). The penalty pushes μ ≥ ε, where μ₊ = μ is a
normalised density.

**Sampling** (Moser's construction, the paper's eq. 4-6): with μ_t = (1 − t) ν + t μ and
v_t = u / μ_t, the continuity equation ∂_t μ_t + div(μ_t v_t) = (μ − ν) + div u = 0 holds,
so the flow of v_t from t = 0 to t = 1 carries ν to μ. `MoserVelocity` is v_t as a CNF vector
field (μ_t clamped below at ε where μ < 0); samples are `jgen.cnf.CNF`'s forward solve of
uniform draws on B, whose log-det also gives log μ(x1) = log ν − log|det ∂x1/∂x0| (a test
checks this against μ itself).

**Other domains.** The construction needs a uniform prior ν = 1/vol(M) on a domain M and a
field u whose flux through ∂M vanishes; then ∫_M μ = 1 − ∮_∂M u·n = 1. ``prior`` is that
uniform distribution (`UniformBox`, the default, or `sphere.UniformSphere`): it gives ν, the
draws of the penalty and of sampling, and the support outside which μ = 0. On S² (no boundary)
any tangent field does, e.g. `sphere.SphereField`; the divergence is then the Riemannian one,
which for a field tangent in a neighbourhood of S² equals the ambient trace computed here (see
`jgen.flow_matching.sphere`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.cnf import CNF, ExactTrace, summarize_stats
from jgen.nets import MLP, SMOOTH_ACTIVATIONS, resolve_activation
from jgen.typing import Array, PRNGKey
from jgen.validation import check_int, check_number

__all__ = [
    "BoxField",
    "MoserObjective",
    "MoserVelocity",
    "UniformBox",
    "field_and_divergence",
    "smooth_mlp",
]


def smooth_mlp(owner: str, hidden_dims: Sequence[int], out_dim: int, activation, dtype) -> MLP:
    """The network g of a Moser field: an `MLP` with a smooth activation (μ involves the first
    derivatives of u, and sampling their derivatives)."""
    act = resolve_activation(owner, activation, choices=SMOOTH_ACTIVATIONS)
    return MLP(tuple(hidden_dims), out_dim, activation=act, param_dtype=dtype, name="net")


def field_and_divergence(f: Callable[[Array], Array], x: Array) -> tuple[Array, Array]:
    """(f(x), div f(x)) for a batch x (..., D) and f acting on one event (D,) (exact trace)."""
    flat = x.reshape(-1, x.shape[-1])
    values, traces = jax.vmap(lambda z: ExactTrace()(f, z, None))(flat)
    return values.reshape(x.shape), traces.reshape(x.shape[:-1])


class BoxField(nn.Module):
    """u(x) = s ⊙ (1 − (x/L)²) ⊙ g(x/L), g an MLP: u·n = 0 on the faces of [−L, L]^D.

    hidden_dims:  widths of g's hidden layers.
    half_width:   L.
    output_scale: s (default ν·L = L/(2L)^D: then div u starts on the scale of ν).
    activation:   g's activation; it must be smooth (μ involves the first derivatives of u and
                  sampling their derivatives): 'tanh' (default; softplus learned far more
                  slowly in our runs), 'softplus', 'silu' or a callable.
    """

    hidden_dims: Sequence[int]
    half_width: float
    output_scale: float | None = None
    activation: str | Callable[[Array], Array] = "tanh"

    def __post_init__(self):
        check_number(self.half_width, "half_width", owner="BoxField")
        if self.output_scale is not None:
            check_number(self.output_scale, "output_scale", owner="BoxField")
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        resolve_activation("BoxField", self.activation, choices=SMOOTH_ACTIVATIONS)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        dim = x.shape[-1]
        scale = self.output_scale
        if scale is None:
            scale = self.half_width / (2 * self.half_width) ** dim
        g = smooth_mlp("BoxField", self.hidden_dims, dim, self.activation, x.dtype)
        s = x / self.half_width
        return (scale * (1.0 - jnp.square(s)) * g(s)).astype(x.dtype)


class MoserVelocity(nn.Module):
    """v_t(x) = u(x) / max((1 − t) ν + t μ(x), ε),  μ = ν − div u: Moser's field, for a CNF.

    Its parameters are the ``field``'s (under the name ``'field'``).
    """

    field: nn.Module
    prior_density: float
    eps: float = 1e-5

    @nn.compact
    def __call__(self, z: Array, t: Array, context: Array | None = None) -> Array:
        if self.is_initializing():
            self.field(z)
        field, variables = self.field.unbind()
        u, div = field_and_divergence(lambda x: field.apply(variables, x), z)
        t = jnp.asarray(t, z.dtype)
        mu = self.prior_density - div
        mu_t = jnp.maximum((1 - t) * self.prior_density + t * mu, self.eps)
        return u / mu_t[..., None]


@dataclasses.dataclass(frozen=True)
class UniformBox:
    """The uniform distribution on [−L, L]^dim: Moser flow's default prior."""

    half_width: float
    dim: int

    def __post_init__(self):
        check_number(self.half_width, "half_width", owner="UniformBox")
        check_int(self.dim, "dim", minimum=1, owner="UniformBox")

    @property
    def event_shape(self) -> tuple[int]:
        return (self.dim,)

    @property
    def volume(self) -> float:
        return (2.0 * self.half_width) ** self.dim

    def log_prob(self, x: Array) -> Array:
        inside = self.contains(x)
        return jnp.where(inside, -math.log(self.volume), -jnp.inf).astype(x.dtype)

    def contains(self, x: Array) -> Array:
        return jnp.all(jnp.abs(x) <= self.half_width, axis=-1)

    def sample(self, key: PRNGKey, sample_shape, dtype=jnp.float32) -> Array:
        L = self.half_width
        return jax.random.uniform(key, (*sample_shape, self.dim), dtype, -L, L)


@dataclasses.dataclass(frozen=True)
class MoserObjective:
    """Moser flow with a uniform prior (see the module docstring).

    field:    the network u: a `BoxField` with the same L as the box, or any module whose flux
              through the domain's boundary vanishes (otherwise μ is not normalised); on S² a
              tangent field (`sphere.SphereField`).
    dim:      D, the event size (events are flat vectors (D,)); default: the prior's (2 for
              the default box).
    eps:      ε of μ₊ and μ₋.
    penalty:  λ, the weight of the positivity penalty λ ∫ μ₋.
    rtol, atol: tolerances of the sampling solve (Tsit5, adaptive).
    max_steps: of the sampling solve. v_t is stiff where μ_t is near 0 (a trained μ has
              such regions between modes), so a solve may fail: it does not raise, its sample
              is dropped (see `sample_with_stats`).
    """

    field: nn.Module
    dim: int | None = None
    eps: float = 1e-5
    penalty: float = 1.0
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = 1000
    prior: Any = None
    """The uniform prior on the domain (``volume``, ``contains``, ``sample(key, shape,
    dtype)``, ``event_shape``); default `UniformBox` (the field's half_width, ``dim``)."""

    def __post_init__(self):
        if self.prior is None:
            if not isinstance(getattr(self.field, "half_width", None), numbers.Real):
                raise TypeError(
                    "MoserObjective: field must have a half_width (e.g. a BoxField), or give "
                    "the prior (e.g. sphere.UniformSphere() with a sphere.SphereField)"
                )
            box = UniformBox(float(self.field.half_width), 2 if self.dim is None else self.dim)
            object.__setattr__(self, "prior", box)
        prior_dim = self.prior.event_shape[-1]
        if self.dim is not None and self.dim != prior_dim:
            raise ValueError(
                f"MoserObjective: dim must be the prior's event size {prior_dim}, got {self.dim}"
            )
        object.__setattr__(self, "dim", prior_dim)
        check_number(self.eps, "eps", owner="MoserObjective")
        if isinstance(self.penalty, bool) or not self.penalty >= 0:
            raise ValueError(f"MoserObjective: penalty must be >= 0, got {self.penalty!r}")

    @property
    def half_width(self) -> float:
        """L of the box prior (an AttributeError for other domains)."""
        return float(self.prior.half_width)

    @property
    def volume(self) -> float:
        return float(self.prior.volume)

    @property
    def prior_density(self) -> float:
        return 1.0 / self.volume

    # Densities -------------------------------------------------------------------------------
    def density(self, params, x: Array) -> Array:
        """μ(x) = ν − div u(x) on the domain, 0 outside; x: (..., D) -> (...)."""
        _, div = field_and_divergence(lambda z: self.field.apply({"params": params}, z), x)
        return jnp.where(self.prior.contains(x), self.prior_density - div, 0.0)

    def log_density(self, params, x: Array) -> Array:
        """log μ₊(x) = log max(μ(x), ε): the model log-density where μ >= ε."""
        return jnp.log(jnp.maximum(self.density(params, x), self.eps))

    def log_prob(self, params, model_state, x: Array) -> Array:
        """`log_density` under the objectives' ``log_prob`` convention, shape (B,)."""
        del model_state
        return self.log_density(params, x)

    def sample_prior(self, key: PRNGKey, num: int, dtype=None) -> Array:
        dtype = jnp.result_type(float) if dtype is None else dtype
        return self.prior.sample(key, (num,), dtype)

    # Objective -------------------------------------------------------------------------------
    def init(self, key: PRNGKey, batch):
        x = jnp.asarray(batch["x"], jnp.result_type(float))
        if x.ndim != 2 or x.shape[-1] != self.dim:
            raise ValueError(
                f"MoserObjective: expected data of shape (B, {self.dim}), got {x.shape}"
            )
        return self.field.init(key, x[:1])["params"], {}

    def loss(self, params, model_state, batch, key):
        x = batch["x"].astype(jnp.result_type(float))
        mu_data = self.density(params, x)
        mu_prior = self.density(params, self.sample_prior(key, x.shape[0], x.dtype))
        nll = -jnp.mean(jnp.log(jnp.maximum(mu_data, self.eps)))
        negative_mass = self.volume * jnp.mean(jax.nn.relu(self.eps - mu_prior))
        value = nll + self.penalty * negative_mass
        metrics = {
            "loss": value, "nll": nll, "negative_mass": negative_mass,
            "frac_negative": jnp.mean(mu_prior < self.eps),
        }  # fmt: skip
        return value, (metrics, model_state)

    def evaluate(self, params, model_state, batch, key):
        x = batch["x"].astype(jnp.result_type(float))
        return {"nll": -self.log_prob(params, model_state, x)}

    # Sampling --------------------------------------------------------------------------------
    def cnf(self) -> CNF:
        """The CNF of v_t from t = 0 (prior) to t = 1 (model); its parameters are
        ``{'vector_field': {'field': params}}``."""
        velocity = MoserVelocity(self.field, self.prior_density, self.eps)
        return CNF(
            velocity, (self.dim,), t0=0.0, t1=1.0,
            stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            max_steps=self.max_steps, throw=False,
        )  # fmt: skip

    def cnf_variables(self, params) -> dict:
        return {"params": {"vector_field": {"field": params}}}

    def sample_with_stats(self, params, model_state, key: PRNGKey, num_samples: int):
        """(samples, log ν − forward log-det = their log μ, solver statistics).

        The statistics are `summarize_stats`' plus ``succeeded_fraction``; samples whose solve
        failed (max_steps reached) are dropped, so fewer than ``num_samples`` may come back
        (hence eager only: not for use under jit).
        """
        x0 = self.sample_prior(key, num_samples)
        (x1, log_det), state = self.cnf().apply(
            self.cnf_variables(params), x0, method="forward_and_log_det",
            mutable=["intermediates"],
        )  # fmt: skip
        log_prob = math.log(self.prior_density) - log_det
        succeeded = state["intermediates"]["cnf_stats"][0]["succeeded"]
        succeeded = succeeded & jnp.all(jnp.isfinite(x1), axis=-1)
        stats = {**summarize_stats(state), "succeeded_fraction": jnp.mean(succeeded)}
        keep = np.asarray(succeeded)
        return x1[keep], log_prob[keep], stats

    def sample(self, params, model_state, key: PRNGKey, num_samples: int) -> Array:
        return self.sample_with_stats(params, model_state, key, num_samples)[0]
