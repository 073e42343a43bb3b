"""Monte-Carlo estimators of ∇_φ E_{q_φ(z)}[f_φ(z)] (section 1.1 of the notes: the
reparametrisation gradient against REINFORCE).

A variational family is a pair of functions (`Family`):

    sample(φ, key, n) -> z of shape (n, ...)   z = g_φ(ε), differentiable in φ (reparametrised)
    log_prob(φ, z)    -> log q_φ(z), shape (n,)

and the integrand is ``f(φ, z) -> (n,)`` (it may depend on φ, as the ELBO's -log q_φ term does;
a φ-free f simply ignores it). With z_i = g_φ(ε_i), i = 1..n, the estimators are

* reparametrisation:   (1/n) Σ_i d/dφ f_φ(g_φ(ε_i))                       (total derivative)
* REINFORCE (score):   (1/n) Σ_i [f_φ(z_i) ∇_φ log q_φ(z_i) + ∂_φ f_φ(z_i)]   (z_i held fixed)
* REINFORCE with the leave-one-out baseline (Kool et al. 2019, "RLOO"): f_φ(z_i) in the score
  term is replaced by f_φ(z_i) - b_i, b_i = (1/(n-1)) Σ_{j≠i} f_φ(z_j), the mean of the *other*
  samples. b_i does not depend on z_i and E[∇ log q] = 0, so it stays unbiased; it needs n ≥ 2.

Independent problems sharing φ (a minibatch of a VAE: q_φ(z|x) = Π_b q_φ(z_b|x_b) and
f = Σ_b f_b(z_b)) are written with trailing batch axes: z (n, B, ...), log_prob and f (n, B).
The estimators then return ∇_φ Σ_b E[f_b], and the score term pairs each f_b with its own
log q_φ(z_b|x_b) (and its own leave-one-out baseline over the n samples of that b), which is
valid because f_b depends on z_b only.

All three are unbiased (the score form by ∇E_q[f] = E_q[f ∇ log q] + E_q[∂_φ f], the
reparametrised form because the expectation over ε does not depend on φ). Each returns a pytree
like φ. `estimates` draws many independent estimates for variance studies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jgen.typing import Array, PRNGKey
from jgen.validation import check_int

__all__ = [
    "ESTIMATORS",
    "Family",
    "diagonal_gaussian",
    "estimates",
    "reinforce_gradient",
    "reinforce_leave_one_out_gradient",
    "reparam_gradient",
    "total_variance",
]

Integrand = Callable[..., Array]


class Family(NamedTuple):
    """A reparametrisable variational family: ``sample(φ, key, n)``, ``log_prob(φ, z)``."""

    sample: Callable[..., Array]
    log_prob: Callable[..., Array]


def diagonal_gaussian() -> Family:
    """q_φ = N(mean, diag(exp(log_scale))²), φ = {'mean', 'log_scale'} (arrays of shape (d,))."""

    def sample(phi, key, n):
        eps = jax.random.normal(key, (n, *phi["mean"].shape), phi["mean"].dtype)
        return phi["mean"] + jnp.exp(phi["log_scale"]) * eps

    def log_prob(phi, z):
        standard = (z - phi["mean"]) * jnp.exp(-phi["log_scale"])
        per_dim = -0.5 * jnp.square(standard) - phi["log_scale"] - 0.5 * jnp.log(2 * jnp.pi)
        return jnp.sum(per_dim, axis=-1)

    return Family(sample, log_prob)


def reparam_gradient(f: Integrand, family: Family, phi, key: PRNGKey, num_samples: int):
    """(1/n) Σ_i d/dφ f_φ(g_φ(ε_i)): differentiate through the sample."""
    check_int(num_samples, "num_samples", minimum=1)
    return jax.grad(lambda p: jnp.sum(f(p, family.sample(p, key, num_samples))) / num_samples)(phi)


def _score_gradient(f, family, phi, key, num_samples, baseline: Callable[[Array], Array]):
    z = jax.lax.stop_gradient(family.sample(phi, key, num_samples))
    values = jax.lax.stop_gradient(f(phi, z))
    weights = values - baseline(values)

    def surrogate(p):
        # d/dφ of the surrogate: the score term, plus f's own φ-dependence at fixed z.
        return jnp.sum(weights * family.log_prob(p, z) + f(p, z)) / num_samples

    return jax.grad(surrogate)(phi)


def reinforce_gradient(f: Integrand, family: Family, phi, key: PRNGKey, num_samples: int):
    """The score-function (REINFORCE) estimator without a baseline."""
    check_int(num_samples, "num_samples", minimum=1)
    return _score_gradient(f, family, phi, key, num_samples, jnp.zeros_like)


def _leave_one_out_mean(values: Array) -> Array:
    """b_i = mean of the other samples' values (along the sample axis 0)."""
    n = values.shape[0]
    return (jnp.sum(values, axis=0, keepdims=True) - values) / (n - 1)


def reinforce_leave_one_out_gradient(
    f: Integrand, family: Family, phi, key: PRNGKey, num_samples: int
):
    """REINFORCE with the leave-one-out baseline b_i = mean of f over the other samples."""
    check_int(num_samples, "num_samples", minimum=2)
    return _score_gradient(f, family, phi, key, num_samples, _leave_one_out_mean)


ESTIMATORS: dict[str, Callable] = {
    "reparam": reparam_gradient,
    "reinforce": reinforce_gradient,
    "reinforce_loo": reinforce_leave_one_out_gradient,
}


def estimates(
    estimator: Callable, f: Integrand, family: Family, phi, key: PRNGKey, *,
    num_samples: int, num_estimates: int,
):  # fmt: skip
    """``num_estimates`` independent estimates (each from ``num_samples`` draws), stacked on a
    leading axis of every leaf. Jit the caller: this is a ``vmap`` over keys."""
    check_int(num_estimates, "num_estimates", minimum=2)
    keys = jax.random.split(key, num_estimates)
    return jax.vmap(lambda k: estimator(f, family, phi, k, num_samples))(keys)


def total_variance(stacked) -> Array:
    """tr Cov of a stack of gradient estimates: Σ over every coordinate of its sample variance
    (ddof = 1) along the leading axis."""
    leaves = jax.tree_util.tree_leaves(stacked)
    return sum(jnp.sum(jnp.var(leaf, axis=0, ddof=1)) for leaf in leaves)
