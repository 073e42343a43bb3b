"""GAN losses (Goodfellow et al. 2014; the notes' eq. 1.8) and the usual stabilisers.

With D(x) = sigmoid(l(x)) for a discriminator logit l, the value of the minimax game is

    V(D, G) = E_p*[log D(x)] + E_q[log(1 − D(x̃))]
            = E_p*[log σ(l(x))] + E_q[log σ(−l(x̃))],            x̃ = G(z), z ~ N(0, I).

The discriminator maximises V (``discriminator_loss`` = −V). The generator minimises
E_q[log(1 − D(x̃))] (``'minimax'``, eq. 1.8) or, non-saturating, maximises E_q[log D(x̃)]
(``'non_saturating'``: its gradient does not vanish when D rejects the samples early on). At the
optimal discriminator D* = p*/(p* + q), V(D*, G) = 2·JSD(p*, q) − log 4.

``'wasserstein'`` is the WGAN critic game: the critic maximises E_p*[l(x)] − E_q[l(x̃)], the
generator minimises −E_q[l(x̃)]; use it with the WGAN-GP penalty.

Penalties on the discriminator (added to its loss, with a weight λ):
    R1 (Mescheder et al. 2018):  λ/2 · E_p*[‖∇_x l(x)‖²]
    WGAN-GP (Gulrajani et al. 2017):  λ · E[(‖∇_x l(x̂)‖ − 1)²],  x̂ = εx + (1 − ε)x̃, ε ~ U(0, 1)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.typing import Array, PRNGKey

__all__ = [
    "GAN_LOSSES",
    "PENALTIES",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "minimax_value",
    "r1_penalty",
]

GAN_LOSSES = ("minimax", "non_saturating", "wasserstein")
PENALTIES = ("none", "r1", "wgan_gp")


def _mean(values: Array, weights: Array | None) -> Array:
    return jnp.mean(values) if weights is None else jnp.sum(weights * values)


def minimax_value(
    real_logits: Array,
    fake_logits: Array,
    *,
    real_weights: Array | None = None,
    fake_weights: Array | None = None,
) -> Array:
    """V = E_p*[log σ(l(x))] + E_q[log σ(−l(x̃))] (eq. 1.8).

    Expectations are sample means, or weighted sums when weights are given (quadrature: the
    weights are p*(x_i)·Δx and q(x_i)·Δx on a grid).
    """
    return _mean(jax.nn.log_sigmoid(real_logits), real_weights) + _mean(
        jax.nn.log_sigmoid(-fake_logits), fake_weights
    )


def _check_kind(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"GAN loss must be one of {GAN_LOSSES}, got {kind!r}")


def discriminator_loss(real_logits: Array, fake_logits: Array, kind: str) -> Array:
    """The discriminator's loss: −V for the minimax and non-saturating games (both train D the
    same way), E_q[l] − E_p*[l] for the Wasserstein critic."""
    _check_kind(kind)
    if kind == "wasserstein":
        return jnp.mean(fake_logits) - jnp.mean(real_logits)
    return -minimax_value(real_logits, fake_logits)


def generator_loss(fake_logits: Array, kind: str) -> Array:
    """The generator's loss: E_q[log σ(−l)] ('minimax'), −E_q[log σ(l)] ('non_saturating') or
    −E_q[l] ('wasserstein')."""
    _check_kind(kind)
    if kind == "minimax":
        return jnp.mean(jax.nn.log_sigmoid(-fake_logits))
    if kind == "non_saturating":
        return -jnp.mean(jax.nn.log_sigmoid(fake_logits))
    return -jnp.mean(fake_logits)


def _input_gradient_norms(logit_fn: Callable[[Array], Array], x: Array) -> Array:
    """‖∇_x l(x)‖ per example (the logit of each example depends only on that example)."""
    grads = jax.grad(lambda v: jnp.sum(logit_fn(v)))(x)
    return jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1))


def r1_penalty(logit_fn: Callable[[Array], Array], real: Array) -> Array:
    """R1: ½ · E_p*[‖∇_x l(x)‖²] (multiply by the weight λ)."""
    return 0.5 * jnp.mean(_input_gradient_norms(logit_fn, real) ** 2)


def gradient_penalty(
    logit_fn: Callable[[Array], Array], real: Array, fake: Array, key: PRNGKey
) -> Array:
    """WGAN-GP: E[(‖∇_x l(x̂)‖ − 1)²] on random interpolates x̂ of real and fake examples."""
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = jax.random.uniform(key, eps_shape, real.dtype)
    mixed = eps * real + (1.0 - eps) * fake
    return jnp.mean((_input_gradient_norms(logit_fn, mixed) - 1.0) ** 2)
