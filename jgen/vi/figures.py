"""Figures of the 2-D variational-inference experiments (Rezende & Mohamed 2015, Figure 3):
target densities next to the densities of the fitted flows, as a grid of panels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jgen import plotting
from jgen.plotting import plt

__all__ = ["FIGURE_LIMIT", "density_panels", "plot_density_grid"]

# The paper draws every density on (-4, 4)².
FIGURE_LIMIT = 4.0


def density_panels(
    log_density: Callable[[np.ndarray], np.ndarray], *, resolution: int = 200
) -> np.ndarray:
    """exp(log_density) on the cell centres of a ``resolution``² grid over (-4, 4)²."""
    _, _, values = plotting.density_grid(log_density, limit=FIGURE_LIMIT, resolution=resolution)
    return np.exp(values.astype(np.float64))


def plot_density_grid(
    path: str | Path,
    densities: Sequence[Sequence[np.ndarray | None]],
    *,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    title: str = "",
) -> Path:
    """Rows of density images (from `density_panels`) with labels; ``None`` leaves a panel
    blank. Each panel has its own colour scale, as in the paper."""
    nrows, ncols = len(densities), max(len(row) for row in densities)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.4 * nrows), squeeze=False)
    extent = (-FIGURE_LIMIT, FIGURE_LIMIT, -FIGURE_LIMIT, FIGURE_LIMIT)
    for i, row in enumerate(densities):
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            image = row[j] if j < len(row) else None
            if image is not None:
                ax.imshow(image, origin="lower", extent=extent, cmap="viridis", aspect="equal")
            if i == 0:
                ax.set_title(column_labels[j], fontsize=10)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=10)
    return plotting.save_figure(fig, path, title)
