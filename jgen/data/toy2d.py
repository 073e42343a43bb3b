"""Two-dimensional toy densities as seeded numpy samplers.

Every sampler draws ``n`` i.i.d. points, computed in float64 and returned as ``float32`` of shape
``(n, 2)``, from a ``np.random.default_rng(seed)`` generator, so the same ``(name, n, seed)`` always
gives the same array. The densities follow the FFJORD toy set (Grathwohl et al., 2019, scaled to
roughly ``[-4, 4]^2``) plus the mixtures used to count modes in GAN papers:

``moons``
    Two interleaving half circles (the scikit-learn ``make_moons`` shape) with Gaussian noise of
    std 0.1, then scaled as in FFJORD: ``2 * x + (-1, -0.2)``. Upper arc: centre ``(-1, -0.2)``,
    radius 2, angle in ``[0, pi]``; lower arc: centre ``(1, 0.8)``, radius 2, angle in
    ``[pi, 2 pi]``; noise std after scaling 0.2.
``circles``
    Two concentric circles of radius 1 and 0.5 (``make_circles(factor=0.5)``) with noise std
    0.08, scaled by 3: radii 3 and 1.5, noise std 0.24.
``rings``
    Four concentric circles of radius 3, 2.25, 1.5, 0.75 (about n/4 points each) plus
    Gaussian noise of std 0.08 (FFJORD).
``8gaussians``
    FFJORD's version: eight Gaussians whose centres lie on the circle of radius ``4 / 1.414``
    (about 2.83) at angles ``k pi / 4``, each with std ``0.5 / 1.414`` (about 0.354); the
    component is chosen uniformly.
``ring8``
    The VEEGAN / unrolled-GAN "2D ring" protocol: eight Gaussians on the circle of radius 2 at
    angles ``k pi / 4``, std 0.02. Use it (not ``8gaussians``) to count covered modes.
``25gaussians``
    The VEEGAN / PacGAN "2D grid": 25 Gaussians with centres ``(-4 + 2 i, -4 + 2 j)``,
    ``i, j in 0..4``, std 0.05 (PacGAN's variance 0.0025); the component is chosen uniformly.
``checkerboard``
    Uniform on the "black" squares of a 4x4 board of side-2 squares covering ``[-4, 4)^2``:
    a point ``(x, y)`` has ``floor(x / 2) + floor(y / 2)`` even (FFJORD).
``pinwheel``
    Five curved arms (FFJORD, after Johnson et al. 2016): radial std 0.3, tangential std 0.1,
    rate 0.25, scaled by 2.
``2spirals``
    Two interleaved spirals (FFJORD): ``t = 3 pi sqrt(u)``, ``u ~ U(0, 1)``; a point of the first
    arm is ``(-t cos t, t sin t)`` plus independent ``U(0, 0.5)`` offsets on both coordinates,
    the second arm is its point reflection; all divided by 3, plus Gaussian noise of std 0.1.
``swissroll``
    The scikit-learn swiss roll (``t ~ U(1.5 pi, 4.5 pi)``, ``(t cos t, t sin t)`` with Gaussian
    noise of std 1) divided by 5 (FFJORD).

Where FFJORD spaces the angles of moons, circles and rings on a grid (``np.linspace``), we draw
them uniformly, which gives i.i.d. samples of the same density. Components and arms are assigned
uniformly at random (mixtures) or in equal shares (rings, pinwheel, spirals, moons, circles);
rows are always shuffled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["TOY_DATASETS", "mixture_modes", "sample_toy"]

Seed = int | Sequence[int]

_FFJORD_8G_RADIUS = 4.0 / 1.414
_FFJORD_8G_STD = 0.5 / 1.414


def _ring_centres(count: int, radius: float) -> np.ndarray:
    angles = 2.0 * np.pi * np.arange(count) / count
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _grid_centres() -> np.ndarray:
    coords = np.arange(-4.0, 5.0, 2.0)
    xs, ys = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


_MIXTURES: dict[str, tuple[Callable[[], np.ndarray], float]] = {
    "8gaussians": (lambda: _ring_centres(8, _FFJORD_8G_RADIUS), _FFJORD_8G_STD),
    "ring8": (lambda: _ring_centres(8, 2.0), 0.02),
    "25gaussians": (_grid_centres, 0.05),
}


def mixture_modes(name: str) -> tuple[np.ndarray, float]:
    """Centres ``(K, 2)`` (float64) and the per-coordinate std of a Gaussian-mixture toy.

    Available for ``"8gaussians"`` (FFJORD scaling), ``"ring8"`` (VEEGAN ring: radius 2, std
    0.02) and ``"25gaussians"`` (grid, std 0.05).
    """
    if name not in _MIXTURES:
        raise ValueError(
            f"mixture_modes: {name!r} is not a Gaussian-mixture toy; expected one of "
            f"{sorted(_MIXTURES)}"
        )
    make_centres, std = _MIXTURES[name]
    return make_centres(), std


def _split_counts(n: int, parts: int) -> np.ndarray:
    """``parts`` near-equal counts summing to ``n`` (the first ones get the remainder)."""
    counts = np.full(parts, n // parts)
    counts[: n % parts] += 1
    return counts


def _mixture(name: str) -> Callable[[np.random.Generator, int], np.ndarray]:
    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        centres, std = mixture_modes(name)
        component = rng.integers(0, len(centres), size=n)
        return centres[component] + std * rng.standard_normal((n, 2))

    return sample


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    n_upper, n_lower = _split_counts(n, 2)
    t_upper = rng.uniform(0.0, np.pi, n_upper)
    t_lower = rng.uniform(0.0, np.pi, n_lower)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    x = np.concatenate([upper, lower]) + 0.1 * rng.standard_normal((n, 2))
    return 2.0 * x + np.array([-1.0, -0.2])


def _circles(rng: np.random.Generator, n: int) -> np.ndarray:
    n_outer, n_inner = _split_counts(n, 2)
    radius = np.concatenate([np.ones(n_outer), np.full(n_inner, 0.5)])
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return 3.0 * (x + 0.08 * rng.standard_normal((n, 2)))


def _rings(rng: np.random.Generator, n: int) -> np.ndarray:
    radii = np.repeat([3.0, 2.25, 1.5, 0.75], _split_counts(n, 4))
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    x = radii[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return x + 0.08 * rng.standard_normal((n, 2))


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.uniform(-2.0, 2.0, n)
    # y in [0, 1) or [-2, -1), shifted up by one on odd columns: only "black" unit squares.
    y = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x) % 2
    return 2.0 * np.stack([x, y], axis=1)


def _pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
    num_arms, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    arm = np.repeat(np.arange(num_arms), _split_counts(n, num_arms))
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    angle = 2.0 * np.pi * arm / num_arms + rate * np.exp(features[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    # Row vector times the rotation matrix [[cos, -sin], [sin, cos]].
    rotated = np.stack(
        [features[:, 0] * cos + features[:, 1] * sin, -features[:, 0] * sin + features[:, 1] * cos],
        axis=1,
    )
    return 2.0 * rotated


def _two_spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    n_first, n_second = _split_counts(n, 2)
    t = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3.0 * np.pi
    arm = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + rng.uniform(0.0, 0.5, (n, 2))
    sign = np.concatenate([np.ones(n_first), -np.ones(n_second)])
    return sign[:, None] * arm / 3.0 + 0.1 * rng.standard_normal((n, 2))


def _swissroll(rng: np.random.Generator, n: int) -> np.ndarray:
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(0.0, 1.0, n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.standard_normal((n, 2))
    return x / 5.0


_SAMPLERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "moons": _moons,
    "circles": _circles,
    "rings": _rings,
    "8gaussians": _mixture("8gaussians"),
    "ring8": _mixture("ring8"),
    "25gaussians": _mixture("25gaussians"),
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "2spirals": _two_spirals,
    "swissroll": _swissroll,
}

TOY_DATASETS: tuple[str, ...] = tuple(_SAMPLERS)


def sample_toy(name: str, n: int, seed: Seed = 0) -> np.ndarray:
    """Draw ``n`` points ``float32 (n, 2)`` from the toy density ``name`` (see module docstring).

    ``seed`` is anything ``np.random.default_rng`` accepts as entropy: a non-negative int or a
    sequence of them (``load_dataset`` uses ``(seed, 0)`` for train and ``(seed, 1)`` for test).
    """
    if name not in _SAMPLERS:
        raise ValueError(f"unknown toy dataset {name!r}; expected one of {list(TOY_DATASETS)}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = np.random.default_rng(seed)
    points = _SAMPLERS[name](rng, int(n))
    return rng.permutation(points).astype(np.float32)
