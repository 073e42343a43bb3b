"""The four 2-D test energies of Rezende & Mohamed (2015, Table 1) and their normalisers.

With z = (z1, z2), σ(x) = 1/(1 + e^{-x}) and

    w1(z) = sin(2π z1 / 4),   w2(z) = 3 exp(-½((z1 - 1)/0.6)²),   w3(z) = 3 σ((z1 - 1)/0.3),

the unnormalised densities are p(z) ∝ exp(-U(z)) with

    U1(z) = ½((‖z‖ - 2)/0.4)² - log(exp(-½((z1 - 2)/0.6)²) + exp(-½((z1 + 2)/0.6)²))
    U2(z) = ½((z2 - w1(z))/0.4)²
    U3(z) = -log(exp(-½((z2 - w1(z))/0.35)²) + exp(-½((z2 - w1(z) + w2(z))/0.35)²))
    U4(z) = -log(exp(-½((z2 - w1(z))/0.4)²) + exp(-½((z2 - w1(z) + w3(z))/0.35)²))

`POTENTIALS` holds these exactly. U1 is normalisable, but U2-U4 do not depend on z1 far from
the origin (w1 is periodic, w2 → 0, w3 → 0 or 3), so exp(-U) has infinite mass along z1 and the
reverse KL to it is unbounded below. The paper draws them on (-4, 4)², and its Figure 3 shows
flows fitted inside that window. The targets used here (`target_energy`) therefore add to
U2-U4 a wall at the window's edges in z1 that is zero inside it:

    E(z) = U(z) + ½ (max(|z1| - 4, 0) / 0.2)²          (U2, U3, U4;  E = U1 for U1)

Inside (-4, 4)² the target equals the paper's density up to the constant, and the mass outside
|z1| < 4 is small (the wall's half-Gaussian tails hold about 0.5/8 of it). log Z = log ∫ e^{-E}
is computed by quadrature (`log_normalizer`), so that KL(q ‖ p) = E_q[log q + E] + log Z ≥ 0
is reported in nats.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.planar import _safe_norm
from jgen.typing import Array

__all__ = [
    "POTENTIALS",
    "WALL_EDGE",
    "WALL_WIDTH",
    "log_normalizer",
    "potential_log_normalizer",
    "target_energy",
]

# The wall of the U2-U4 targets: zero for |z1| <= WALL_EDGE, a half-Gaussian of WALL_WIDTH beyond.
WALL_EDGE = 4.0
WALL_WIDTH = 0.2


def _w1(z: Array) -> Array:
    return jnp.sin(2 * math.pi * z[..., 0] / 4)


def _w2(z: Array) -> Array:
    return 3 * jnp.exp(-0.5 * jnp.square((z[..., 0] - 1) / 0.6))


def _w3(z: Array) -> Array:
    return 3 * jax.nn.sigmoid((z[..., 0] - 1) / 0.3)


def _half_square(x: Array) -> Array:
    return 0.5 * jnp.square(x)


def u1(z: Array) -> Array:
    """The ring with two lobes on the z1 axis."""
    ring = _half_square((_safe_norm(z) - 2) / 0.4)
    lobes = jnp.logaddexp(
        -_half_square((z[..., 0] - 2) / 0.6), -_half_square((z[..., 0] + 2) / 0.6)
    )
    return ring - lobes


def u2(z: Array) -> Array:
    """A sine wave z2 = w1(z1) of width 0.4."""
    return _half_square((z[..., 1] - _w1(z)) / 0.4)


def u3(z: Array) -> Array:
    """The sine wave and a copy shifted by the bump w2, width 0.35."""
    base = z[..., 1] - _w1(z)
    return -jnp.logaddexp(-_half_square(base / 0.35), -_half_square((base + _w2(z)) / 0.35))


def u4(z: Array) -> Array:
    """The sine wave (width 0.4) and a copy shifted by the step w3 (width 0.35)."""
    base = z[..., 1] - _w1(z)
    return -jnp.logaddexp(-_half_square(base / 0.4), -_half_square((base + _w3(z)) / 0.35))


POTENTIALS: dict[str, Callable[[Array], Array]] = {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def _wall(z: Array) -> Array:
    return _half_square(jnp.maximum(jnp.abs(z[..., 0]) - WALL_EDGE, 0.0) / WALL_WIDTH)


def target_energy(name: str) -> Callable[[Array], Array]:
    """E(z) of the normalisable target for potential ``name`` (see the module docstring):
    U1 itself, U2-U4 plus the wall in z1. Maps (..., 2) to (...)."""
    if name not in POTENTIALS:
        raise ValueError(f"unknown potential {name!r}; expected one of {sorted(POTENTIALS)}")
    potential = POTENTIALS[name]
    if name == "U1":
        return potential
    return lambda z: potential(z) + _wall(z)


def log_normalizer(
    energy: Callable[[Array], Array], *, limit: float = 7.0, resolution: int = 1400
) -> float:
    """log ∫ exp(-E(z)) dz by the midpoint rule on ``resolution``² cells over [-limit, limit]²,
    in float64 (a log-sum-exp over the cells)."""
    with jax.enable_x64(True):
        edges = np.linspace(-limit, limit, resolution + 1)
        centres = jnp.asarray(0.5 * (edges[1:] + edges[:-1]))
        cell_area = (2 * limit / resolution) ** 2

        @jax.jit
        def row_log_sums(z1):
            points = jnp.stack(jnp.broadcast_arrays(z1[:, None], centres[None, :]), axis=-1)
            return jax.scipy.special.logsumexp(-energy(points), axis=1)

        total = jax.scipy.special.logsumexp(row_log_sums(centres))
        return float(total) + math.log(cell_area)


@functools.cache
def potential_log_normalizer(name: str, resolution: int = 1400) -> float:
    """``log_normalizer(target_energy(name), resolution=...)``, computed once per process (every
    build of a `vi` experiment, `jgen eval` and the study's figures need it)."""
    return log_normalizer(target_energy(name), resolution=resolution)
