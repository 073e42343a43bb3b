"""The maths of section 1.2: the optimal discriminator, the JSD identity, the losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from jgen.gan import (
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    minimax_value,
    r1_penalty,
)

GRID = np.linspace(-15.0, 15.0, 60_001)
DX = GRID[1] - GRID[0]


def _jsd(p, q):
    """JSD by quadrature, written from its definition: ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2."""
    m = 0.5 * (p + q)
    kl = lambda a: np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / m), 0.0)) * DX
    return 0.5 * kl(p) + 0.5 * kl(q)


@pytest.mark.parametrize("q_loc,q_scale", [(0.0, 1.0), (1.0, 1.0), (2.0, 0.5), (-3.0, 2.0)])
def test_optimal_discriminator_value_is_2jsd_minus_log4(q_loc, q_scale):
    jax.config.update("jax_enable_x64", True)
    try:
        log_p, log_q = norm.logpdf(GRID), norm.logpdf(GRID, q_loc, q_scale)
        p, q = np.exp(log_p), np.exp(log_q)
        # D* = p/(p + q): its logit is log p − log q.
        d_star = jnp.asarray(log_p - log_q)
        value = float(minimax_value(d_star, d_star, real_weights=p * DX, fake_weights=q * DX))
        assert value == pytest.approx(2 * _jsd(p, q) - np.log(4.0), abs=1e-7)
        # D* maximises V: any other discriminator scores less.
        for other in (d_star + 0.5, 0.7 * d_star, jnp.zeros_like(d_star)):
            worse = minimax_value(other, other, real_weights=p * DX, fake_weights=q * DX)
            assert float(worse) <= value + 1e-12
    finally:
        jax.config.update("jax_enable_x64", False)
    if q_loc == 0.0 and q_scale == 1.0:
        assert value == pytest.approx(-np.log(4.0), abs=1e-7)  # p = q: JSD = 0


def test_generator_losses_saturate_as_stated():
    """Minimax: ∂/∂l log σ(−l) = −σ(l) → 0 where D rejects the samples (l → −∞);
    non-saturating: ∂/∂l (−log σ(l)) = −σ(−l) → −1 there."""
    logits = jnp.array([-8.0])
    minimax = jax.grad(lambda v: generator_loss(v, "minimax"))(logits)
    non_sat = jax.grad(lambda v: generator_loss(v, "non_saturating"))(logits)
    assert abs(float(minimax[0])) < 1e-3 and float(non_sat[0]) < -0.99
    real, fake = jnp.array([1.0, 2.0]), jnp.array([-1.0, 0.5])
    assert float(discriminator_loss(real, fake, "minimax")) == pytest.approx(
        -float(minimax_value(real, fake))
    )
    assert float(discriminator_loss(real, fake, "wasserstein")) == pytest.approx(-1.75)
    assert float(generator_loss(fake, "wasserstein")) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="GAN loss must be one of"):
        generator_loss(fake, "hinge")


def test_penalties_on_a_linear_critic():
    a = jnp.array([1.2, -1.6])  # ‖a‖ = 2
    critic = lambda x: x @ a
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    assert float(r1_penalty(critic, x)) == pytest.approx(0.5 * 4.0, rel=1e-6)
    fake = x + 1.0
    assert float(gradient_penalty(critic, x, fake, jax.random.PRNGKey(1))) == pytest.approx(1.0)
    unit = lambda v: v @ (a / 2.0)
    assert float(gradient_penalty(unit, x, fake, jax.random.PRNGKey(1))) == pytest.approx(0.0)
