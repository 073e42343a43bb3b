"""Figures: 2-D samples and densities on a grid, and image grids (matplotlib, written as PNG).

`FigureSettings` is the one place for the settings every family's figures share (a config's
optional ``figures`` section, read by `jgen.experiment.figure_settings`); `save_figure` the one
place every figure is written (at `DPI`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "DPI",
    "FigureSettings",
    "density_grid",
    "figure_2d",
    "grid_integral",
    "plot_2d",
    "plot_density_2d",
    "plot_images",
    "plot_limit",
    "save_figure",
]

DPI = 100


@dataclasses.dataclass(frozen=True)
class FigureSettings:
    """What the families' end-of-run figures draw (config section ``figures``).

    resolution:  cells per axis of a 2-D density grid
    num_samples: draws in a sample figure; None: 20,000 for 2-D data (histograms), 50 for
                 anything else (an image grid)
    seed:        the PRNG seed of the figures' draws (``jax.random.PRNGKey(seed)``)
    """

    resolution: int = 200
    num_samples: int | None = None
    seed: int = 1234

    def __post_init__(self):
        for name in ("resolution", "num_samples", "seed"):
            value = getattr(self, name)
            if value is None and name == "num_samples":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"FigureSettings.{name}: expected an int >= 0, got {value!r}")

    @classmethod
    def from_section(cls, section: Mapping | None) -> FigureSettings:
        """From a config's ``figures`` section (None or empty: the defaults); an unknown key
        is an error naming the known ones."""
        section = dict(section or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise ValueError(f"config.figures: unknown settings {unknown}; known: {known}")
        return cls(**section)

    def samples_for(self, event_shape: Sequence[int]) -> int:
        """Draws in a sample figure of events of ``event_shape``."""
        if self.num_samples is not None:
            return self.num_samples
        return 20_000 if tuple(event_shape) == (2,) else 50


def save_figure(fig, path: str | Path, title: str = "") -> Path:
    """Title (if any), tight layout, save at `DPI` and close: every jgen figure ends here."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_limit(data: np.ndarray) -> float:
    """Half-width of the square window of a 2-D figure: the 99.5th percentile of |data|,
    plus a margin of 0.5, rounded up to an integer (so outliers do not shrink the plot)."""
    return float(np.ceil(np.percentile(np.abs(np.asarray(data)), 99.5) + 0.5))


def density_grid(
    log_prob: Callable[[np.ndarray], np.ndarray],
    *,
    limit: float,
    resolution: int = 200,
    batch_size: int = 10_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p on the cell centres of a ``resolution``² grid over [−limit, limit]²."""
    edges = np.linspace(-limit, limit, resolution + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    xx, yy = np.meshgrid(centres, centres, indexing="xy")
    points = np.stack([xx.ravel(), yy.ravel()], axis=-1).astype(np.float32)
    values = np.concatenate(
        [
            np.asarray(log_prob(points[i : i + batch_size]))
            for i in range(0, len(points), batch_size)
        ]
    )
    return xx, yy, values.reshape(xx.shape)


def grid_integral(log_density: np.ndarray, *, limit: float) -> float:
    """Midpoint-rule integral of exp(log p) over the grid of `density_grid`."""
    resolution = log_density.shape[0]
    cell = (2 * limit / resolution) ** 2
    return float(np.sum(np.exp(log_density.astype(np.float64))) * cell)


def plot_2d(
    path: str | Path,
    *,
    data: np.ndarray,
    samples: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    limit: float,
    title: str = "",
) -> Path:
    """Data, model samples (2-D histograms) and optionally the model density side by side, on
    the same axes [−limit, limit]², the density with a colour bar; saved to ``path``."""
    fig = figure_2d(data=data, samples=samples, grid=grid, limit=limit)
    return save_figure(fig, path, title)


def plot_density_2d(
    workdir: Path,
    data: np.ndarray,
    samples: np.ndarray,
    log_prob: Callable[[np.ndarray], np.ndarray],
    *,
    name: str,
    resolution: int,
    extra: Mapping | None = None,
) -> Path:
    """The figure of a 2-D density model: data, samples and the density on a grid over the
    data's window (`plot_limit`), to ``workdir/samples.png``; the grid's integral (and
    ``extra``) to ``workdir/density.json``."""
    limit = plot_limit(data)
    grid = density_grid(log_prob, limit=limit, resolution=resolution)
    integral = grid_integral(grid[2], limit=limit)
    info = {"grid_limit": limit, "density_integral": integral, **(extra or {})}
    (Path(workdir) / "density.json").write_text(json.dumps(info, indent=2))
    return plot_2d(
        Path(workdir) / "samples.png", data=data, samples=np.asarray(samples), grid=grid,
        limit=limit, title=f"{name} (density integral {integral:.3f})",
    )  # fmt: skip


def figure_2d(
    *,
    data: np.ndarray,
    samples: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    limit: float,
):
    """The matplotlib figure of `plot_2d`."""
    panels = 3 if grid is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels + 0.6, 4), squeeze=False)
    axes = axes[0]
    for ax, pts, name in zip(axes[:2], (data, samples), ("data", "samples"), strict=True):
        ax.hist2d(pts[:, 0], pts[:, 1], bins=150, range=[[-limit, limit]] * 2, cmap="viridis")
        ax.set_title(f"{name} (histogram)")
    if grid is not None:
        xx, yy, logp = grid
        mesh = axes[2].pcolormesh(xx, yy, np.exp(logp), cmap="viridis", shading="auto")
        axes[2].set_title("density p(x)")
        fig.colorbar(mesh, ax=axes[2], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    return fig


def plot_images(
    path: str | Path, images: np.ndarray, *, ncols: int = 10, title: str = "", vmax: float = 1.0
) -> Path:
    """A grid of NHWC images (values in [0, vmax]); one channel is shown in grey."""
    images = np.clip(np.asarray(images, np.float32) / vmax, 0.0, 1.0)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols, nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), images, strict=False):
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img)
    return save_figure(fig, path, title)
