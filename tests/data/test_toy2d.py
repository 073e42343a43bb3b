import numpy as np
import pytest

from jgen.data import TOY_DATASETS, mixture_modes, sample_toy

N = 2001  # odd, to exercise the uneven shares between arms / rings


@pytest.fixture(scope="module")
def samples():
    return {name: sample_toy(name, N, seed=0) for name in TOY_DATASETS}


def test_names():
    expected = {"moons", "circles", "8gaussians", "ring8", "25gaussians", "checkerboard"}
    expected |= {"pinwheel", "2spirals", "rings", "swissroll"}
    assert set(TOY_DATASETS) == expected


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_shape_dtype_range(name, samples):
    x = samples[name]
    assert x.shape == (N, 2) and x.dtype == np.float32
    assert np.all(np.isfinite(x))
    assert np.quantile(np.abs(x), 0.99) < 4.6  # FFJORD scale: roughly [-4, 4]^2


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_seeded(name, samples):
    np.testing.assert_array_equal(sample_toy(name, N, seed=0), samples[name])
    other = sample_toy(name, N, seed=1)
    assert not np.allclose(other, samples[name])
    assert not np.allclose(sample_toy(name, N, seed=(0, 1)), samples[name])


def test_empty_and_bad_arguments():
    assert sample_toy("moons", 0, 0).shape == (0, 2)
    with pytest.raises(ValueError, match="8gaussians"):
        sample_toy("eight_gaussians", 10, 0)
    with pytest.raises(ValueError, match="non-negative int"):
        sample_toy("moons", -1, 0)


def test_mixture_modes_conventions():
    centres, std = mixture_modes("ring8")  # VEEGAN / unrolled-GAN ring
    assert centres.shape == (8, 2) and std == 0.02
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 2.0)
    centres, std = mixture_modes("8gaussians")  # FFJORD scaling
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 4 / 1.414)
    assert std == pytest.approx(0.5 / 1.414)
    centres, std = mixture_modes("25gaussians")
    assert std == 0.05
    assert {tuple(c) for c in centres} == {(x, y) for x in range(-4, 5, 2) for y in range(-4, 5, 2)}
    with pytest.raises(ValueError, match="25gaussians"):
        mixture_modes("moons")


@pytest.mark.parametrize("name", ["8gaussians", "ring8", "25gaussians"])
def test_mixture_points_near_modes_and_every_mode_used(name, samples):
    centres, std = mixture_modes(name)
    x = samples[name].astype(np.float64)
    distances = np.linalg.norm(x[:, None, :] - centres[None], axis=-1)
    nearest = distances.argmin(axis=1)
    assert distances.min(axis=1).max() < 5 * std
    counts = np.bincount(nearest, minlength=len(centres))
    expected = N / len(centres)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_ring8_radius(samples):
    radius = np.linalg.norm(samples["ring8"], axis=1)
    assert np.abs(radius - 2.0).max() < 0.1


def _distance_to_arc(x, centre, radius, angle_lo, angle_hi):
    """Distance from each row of ``x`` to the circle arc with angles in [angle_lo, angle_hi]."""
    offset = x - centre
    angle = np.arctan2(offset[:, 1], offset[:, 0])
    inside = ((angle - angle_lo) % (2 * np.pi)) <= (angle_hi - angle_lo)
    ends = [centre + radius * np.array([np.cos(a), np.sin(a)]) for a in (angle_lo, angle_hi)]
    to_ends = np.minimum(*(np.linalg.norm(x - end, axis=1) for end in ends))
    return np.where(inside, np.abs(np.linalg.norm(offset, axis=1) - radius), to_ends)


def test_moons_two_arcs(samples):
    x = samples["moons"].astype(np.float64)
    # FFJORD moons: 2 * make_moons + (-1, -0.2): an upper arc around (-1, -0.2) and a lower arc
    # around (1, 0.8), both of radius 2, noise std 0.2.
    to_upper = _distance_to_arc(x, np.array([-1.0, -0.2]), 2.0, 0.0, np.pi)
    to_lower = _distance_to_arc(x, np.array([1.0, 0.8]), 2.0, np.pi, 2 * np.pi)
    assert np.minimum(to_upper, to_lower).max() < 1.0
    assert np.mean(np.minimum(to_upper, to_lower) < 0.4) > 0.9
    assert 0.45 < np.mean(to_upper < to_lower) < 0.55


def test_circles_and_rings_radii(samples):
    radius = np.linalg.norm(samples["circles"], axis=1)
    for r in (3.0, 1.5):
        assert np.mean(np.abs(radius - r) < 0.75) == pytest.approx(0.5, abs=0.02)
    radius = np.linalg.norm(samples["rings"], axis=1)
    ring = np.abs(radius[:, None] - np.array([0.75, 1.5, 2.25, 3.0])).argmin(axis=1)
    assert np.abs(radius - np.array([0.75, 1.5, 2.25, 3.0])[ring]).max() < 0.375
    np.testing.assert_allclose(np.bincount(ring) / N, 0.25, atol=0.01)


def test_checkerboard_only_black_squares(samples):
    x = samples["checkerboard"].astype(np.float64)
    assert np.all((x >= -4) & (x <= 4))
    cells = np.floor(x / 2).astype(int)
    assert np.all((cells.sum(axis=1) % 2) == 0)
    occupied = {tuple(c) for c in cells}
    assert len(occupied) == 8  # the 8 black squares of the 4x4 board


def test_point_symmetric_toys_are_centred(samples):
    for name in ("2spirals", "pinwheel", "8gaussians", "25gaussians"):
        np.testing.assert_allclose(samples[name].mean(axis=0), 0.0, atol=0.15)


def test_swissroll_radius_is_the_roll_parameter(samples):
    t = 5 * np.linalg.norm(samples["swissroll"], axis=1)
    lo, hi = np.quantile(t, [0.01, 0.99])
    assert 1.5 * np.pi - 3 < lo and hi < 4.5 * np.pi + 3
