"""Moser flow (Rozen, Grover, Nickel & Lipman 2021) on the box B = [−L, L]^D.

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
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.cnf import CNF, ExactTrace, summarize_stats
from jgen.nets import MLP, SMOOTH_ACTIVATIONS, resolve_activation
from jgen.typing import Array, PRNGKey
from jgen.validation import check_number

__all__ = ["BoxField", "MoserObjective", "MoserVelocity", "field_and_divergence"]


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
        act = resolve_activation("BoxField", self.activation, choices=SMOOTH_ACTIVATIONS)
        g = MLP(self.hidden_dims, dim, activation=act, param_dtype=x.dtype, name="net")
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
class MoserObjective:
    """Moser flow on [−L, L]^dim with a uniform prior (see the module docstring).

    field:    the network u (a `BoxField` with the same L, or any module whose normal component
              vanishes on the box: otherwise μ is not normalised).
    dim:      D, the event size (events are flat vectors (D,)).
    eps:      ε of μ₊ and μ₋.
    penalty:  λ, the weight of the positivity penalty λ ∫ μ₋.
    rtol, atol: tolerances of the sampling solve (Tsit5, adaptive).
    max_steps: of the sampling solve. v_t is stiff where μ_t is near 0 (a trained μ has
              such regions between modes), so a solve may fail: it does not raise, its sample
              is dropped (see `sample_with_stats`).
    """

    field: nn.Module
    dim: int = 2
    eps: float = 1e-5
    penalty: float = 1.0
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = 1000

    def __post_init__(self):
        if not isinstance(getattr(self.field, "half_width", None), numbers.Real):
            raise TypeError("MoserObjective: field must have a half_width (e.g. a BoxField)")
        check_number(self.eps, "eps", owner="MoserObjective")
        if isinstance(self.penalty, bool) or not self.penalty >= 0:
            raise ValueError(f"MoserObjective: penalty must be >= 0, got {self.penalty!r}")

    @property
    def half_width(self) -> float:
        return float(self.field.half_width)

    @property
    def volume(self) -> float:
        return (2 * self.half_width) ** self.dim

    @property
    def prior_density(self) -> float:
        return 1.0 / self.volume

    # Densities -------------------------------------------------------------------------------
    def density(self, params, x: Array) -> Array:
        """μ(x) = ν − div u(x) inside the box, 0 outside; x: (..., D) -> (...)."""
        _, div = field_and_divergence(lambda z: self.field.apply({"params": params}, z), x)
        inside = jnp.all(jnp.abs(x) <= self.half_width, axis=-1)
        return jnp.where(inside, self.prior_density - div, 0.0)

    def log_density(self, params, x: Array) -> Array:
        """log μ₊(x) = log max(μ(x), ε): the model log-density where μ >= ε."""
        return jnp.log(jnp.maximum(self.density(params, x), self.eps))

    def sample_prior(self, key: PRNGKey, num: int, dtype=None) -> Array:
        dtype = jnp.result_type(float) if dtype is None else dtype
        L = self.half_width
        return jax.random.uniform(key, (num, self.dim), dtype, -L, L)

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
        return {"nll": -self.log_density(params, x)}

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
