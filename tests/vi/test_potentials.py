"""The U1-U4 energies against an independent numpy transcription of Rezende & Mohamed's
Table 1, the wall of the U2-U4 targets, and the log Z quadrature."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.vi import POTENTIALS, log_normalizer, target_energy


def _table1(name: str, z: np.ndarray) -> np.ndarray:
    z1, z2 = z[:, 0], z[:, 1]
    w1 = np.sin(2 * np.pi * z1 / 4)
    w2 = 3 * np.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    if name == "U1":
        ring = 0.5 * ((np.sqrt(z1**2 + z2**2) - 2) / 0.4) ** 2
        lobes = np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
        return ring - np.log(lobes)
    if name == "U2":
        return 0.5 * ((z2 - w1) / 0.4) ** 2
    if name == "U3":
        a = np.exp(-0.5 * ((z2 - w1) / 0.35) ** 2)
        b = np.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
        return -np.log(a + b)
    a = np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2)
    b = np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2)
    return -np.log(a + b)


POINTS = np.random.default_rng(0).uniform(-3.5, 3.5, (64, 2))


@pytest.mark.parametrize("name", sorted(POTENTIALS))
def test_potentials_match_table_1(name):
    with jax.enable_x64(True):
        got = jax.jit(POTENTIALS[name])(jnp.asarray(POINTS))
        # Inside the (-4, 4) window the target is the potential itself.
        target = jax.jit(target_energy(name))(jnp.asarray(POINTS))
    np.testing.assert_allclose(got, _table1(name, POINTS), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(target, got, rtol=0, atol=0)


def test_wall_outside_the_window_and_errors():
    z = jnp.array([[4.5, 0.0], [-5.0, 0.3], [3.9, 0.0]])
    u1, e1, u2, e2 = jax.jit(
        lambda z: [
            f(z)
            for f in (POTENTIALS["U1"], target_energy("U1"), POTENTIALS["U2"], target_energy("U2"))
        ]
    )(z)
    np.testing.assert_allclose(e2 - u2, [0.5 * (0.5 / 0.2) ** 2, 0.5 * (1 / 0.2) ** 2, 0.0])
    np.testing.assert_allclose(e1, u1)  # U1: no wall
    with pytest.raises(ValueError, match="unknown potential 'U5'"):
        target_energy("U5")


def test_log_normalizer_quadrature():
    """Exact for a Gaussian (log 2π σ1 σ2); U1 converged to 1e-4 between 700 and 1400 cells
    per axis (the configs' resolution); U2 against its closed form with the wall's tails."""
    gaussian = lambda z: 0.5 * jnp.sum(jnp.square(z / jnp.array([0.7, 1.3])), axis=-1)
    np.testing.assert_allclose(
        log_normalizer(gaussian, resolution=700), math.log(2 * math.pi * 0.7 * 1.3), atol=1e-9
    )
    coarse = log_normalizer(target_energy("U1"), resolution=700)
    fine = log_normalizer(target_energy("U1"), resolution=1400)
    assert abs(coarse - fine) < 1e-4, (coarse, fine)
    # U2: for each z1, ∫ exp(-U2) dz2 = 0.4 √(2π); over |z1| < 4 plus two half-Gaussian walls.
    expected = math.log(0.4 * math.sqrt(2 * math.pi) * (8 + 0.2 * math.sqrt(2 * math.pi)))
    np.testing.assert_allclose(log_normalizer(target_energy("U2")), expected, atol=1e-6)
