"""Figures of latent-variable models: samples, reconstructions, and the 2-D latent space.

``samples.png``          E[x|z] for z ~ p(z) (decoder means: sharper to look at than binary draws)
``reconstructions.png``  test images (odd rows) above E[x|z] at the posterior (even rows)
``latent_space.png``     for 2-D latents: posterior means of the test set coloured by label, and
                         the decoder means on a grid of z over [−3, 3]² (the learned manifold)
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jgen import plotting
from jgen.plotting import FigureSettings

__all__ = ["latent_space_figure", "reconstruction_figure", "sample_figure"]


def _as_images(x, event_shape) -> np.ndarray:
    x = np.asarray(x, np.float32).reshape((-1, *tuple(event_shape)))
    return x if x.ndim == 4 else x.reshape(len(x), 1, -1, 1)


def sample_figure(path: Path, means: np.ndarray, event_shape, title: str) -> Path:
    return plotting.plot_images(path, _as_images(means, event_shape), title=title)


def reconstruction_figure(
    path: Path, targets: np.ndarray, means: np.ndarray, event_shape, title: str, ncols: int = 10
) -> Path:
    """Rows of ``ncols`` targets, each followed by the row of their reconstructions."""
    targets, means = _as_images(targets, event_shape), _as_images(means, event_shape)
    rows = []
    for start in range(0, len(targets), ncols):
        rows += [targets[start : start + ncols], means[start : start + ncols]]
    return plotting.plot_images(path, np.concatenate(rows), ncols=ncols, title=title)


def latent_space_figure(
    path: Path,
    posterior_means: np.ndarray,
    labels: np.ndarray | None,
    decode_means,
    event_shape,
    title: str,
    grid_size: int = 15,
    limit: float = 3.0,
) -> Path:
    """Left: posterior means μ(x) of the test set (coloured by label). Right: E[x|z] on a grid."""
    height = int(event_shape[0]) if len(event_shape) >= 2 else 1
    values = np.linspace(-limit, limit, grid_size)
    grid = np.stack(np.meshgrid(values, values[::-1], indexing="xy"), axis=-1).reshape(-1, 2)
    decoded = np.asarray(decode_means(jnp.asarray(grid, jnp.result_type(float))), np.float32)
    decoded = decoded.reshape(grid_size, grid_size, height, -1)
    mosaic = decoded.transpose(0, 2, 1, 3).reshape(grid_size * height, -1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5))
    scatter = left.scatter(
        posterior_means[:, 0], posterior_means[:, 1], c=labels, cmap="tab10", s=6
    )
    if labels is not None:
        fig.colorbar(scatter, ax=left, label="label")
    left.set_title("posterior means μ(x), test set")
    left.set_xlim(-limit, limit)
    left.set_ylim(-limit, limit)
    right.imshow(mosaic, cmap="gray", vmin=0, vmax=1, extent=(-limit, limit, -limit, limit))
    right.set_title("E[x|z] on a grid of z")
    return plotting.save_figure(fig, path, title)


def model_figures(objective, dataset, name: str, settings: FigureSettings = FigureSettings()):
    """The ``figures(state, workdir)`` hook of a VAE or Helmholtz experiment."""
    num = settings.samples_for(dataset.event_shape)

    # Compiled once each (eagerly, a Flax apply runs, and compiles, op by op).
    sample = jax.jit(objective.sample, static_argnums=3, static_argnames="means")
    reconstruct = jax.jit(objective.reconstruct)

    def figures(state, workdir: Path) -> list[Path]:
        key = jax.random.PRNGKey(settings.seed)
        shape = dataset.event_shape
        params = state.eval_params
        means = sample(params, state.model_state, key, num, means=True)
        paths = [sample_figure(workdir / "samples.png", means, shape, f"{name}: E[x|z], z ~ p(z)")]
        test = dataset.test[:30]
        targets, recon = reconstruct(params, test, jax.random.fold_in(key, 1))
        target_images = objective.likelihood.encoder_input(targets)
        paths.append(
            reconstruction_figure(
                workdir / "reconstructions.png",
                target_images,
                recon,
                shape,
                f"{name}: test images and reconstructions",
            )
        )
        if getattr(objective, "latent_dim", None) == 2:
            mu = np.asarray(jax.jit(objective.encode)(params, dataset.test))
            paths.append(
                latent_space_figure(
                    workdir / "latent_space.png",
                    mu,
                    dataset.test_labels,
                    jax.jit(lambda z: objective.likelihood.mean(objective.decode(params, z))),
                    shape,
                    f"{name}: 2-D latent space",
                )
            )
        return paths

    return figures
