"""The ``flow`` experiment family: normalizing flows trained by maximum likelihood
(`DensityObjective`), and the figures and sampling hooks of every density model (also used by
the ``cnf`` family).

Config ``model`` section (see experiments/configs/realnvp_2d.py and friends):
    kind:        'realnvp' (vectors), 'multiscale_realnvp' (images), 'nsf' (neural spline
                 flow), 'maf' (masked autoregressive flow; transformer 'affine' or 'spline'),
                 'glow' (images), 'residual' (every other key is a `residual_flow` option) or
                 'diagonal_gaussian'
    logit_alpha: for discrete data, the `LogitPreprocess` in front of the flow
    other keys:  the chosen builder's (num_layers, hidden_dims, mask, actnorm, num_bins, ...)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jgen import bijectors as jb
from jgen import plotting
from jgen.data import Dataset
from jgen.distributions import Flow, LogitPreprocess
from jgen.experiment import figure_settings
from jgen.flows.objective import DensityObjective
from jgen.plotting import FigureSettings
from jgen.train import TrainState

__all__ = ["build_flow_experiment", "density_figures", "density_sampler", "flow_bijector"]


def flow_bijector(model: ConfigDict, dataset: Dataset) -> jb.Bijector:
    """The bijector of a config's ``model`` section for ``dataset`` (see module docstring)."""
    kind = model.kind
    shape = tuple(dataset.event_shape)
    image = len(shape) == 3
    layers: list[jb.Bijector] = []
    if dataset.num_levels is not None:
        # Discrete data is dequantised to [0, 1); the flow models it in logit space.
        layers.append(LogitPreprocess(model.get("logit_alpha", 0.05), event_ndims=len(shape)))
    if kind == "realnvp":
        if image:
            raise ValueError("model.kind='realnvp' is for vectors; use 'multiscale_realnvp'")
        layers.append(
            jb.realnvp(
                shape[0],
                num_layers=model.num_layers,
                hidden_dims=tuple(model.hidden_dims),
                mask=model.get("mask", "alternating"),
                actnorm=bool(model.get("actnorm", False)),
            )
        )
    elif kind == "multiscale_realnvp":
        if not image:
            raise ValueError("model.kind='multiscale_realnvp' needs image data (H, W, C)")
        layers.append(
            jb.multiscale_realnvp(
                shape,
                num_scales=model.num_scales,
                channels=model.channels,
                num_blocks=model.num_blocks,
                actnorm=bool(model.get("actnorm", False)),
            )
        )
    elif kind in ("nsf", "maf"):
        layers.append(_vector_flow(kind, model, shape))
    elif kind == "glow" and len(shape) == 1:  # Glow's step on vectors
        layers.append(
            jb.glow_vector(
                shape[0], num_steps=model.num_steps, hidden_dims=tuple(model.hidden_dims)
            )
        )
    elif kind == "glow":
        if not image:
            raise ValueError("model.kind='glow' needs vectors (D,) or images (H, W, C)")
        layers.append(
            jb.glow(
                shape,
                num_levels=model.num_levels,
                num_steps=model.num_steps,
                channels=model.channels,
                num_blocks=model.num_blocks,
                additive=bool(model.get("additive", False)),
            )
        )
    elif kind == "residual":
        # Residual flows (i-ResNet / Residual Flows): every other key of `model` is an option of
        # `jgen.bijectors.residual_flow`.
        options = {k: v for k, v in model.to_dict().items() if k not in ("kind", "logit_alpha")}
        layers.append(jb.residual_flow(shape, **options))
    elif kind == "diagonal_gaussian":
        layers.append(jb.Affine(event_shape=shape, event_ndims=len(shape)))
    else:
        raise ValueError(
            f"unknown model.kind {kind!r}; expected 'realnvp', 'multiscale_realnvp', 'nsf', "
            "'maf', 'glow', 'residual' or 'diagonal_gaussian'"
        )
    return layers[0] if len(layers) == 1 else jb.Chain(layers)


def _vector_flow(kind: str, model: ConfigDict, shape: tuple[int, ...]) -> jb.Bijector:
    """A neural spline flow ('nsf') or masked autoregressive flow ('maf') on the flattened
    event; image events are reshaped to vectors and back (latents keep the data's shape)."""
    dim = math.prod(shape)
    spline = dict(num_bins=model.get("num_bins", 8), bound=model.get("bound", 3.0))
    if kind == "nsf":
        flow = jb.neural_spline_flow(
            dim, num_layers=model.num_layers, hidden_dims=tuple(model.hidden_dims),
            mask=model.get("mask", "alternating"), **spline,
        )  # fmt: skip
    else:
        transformer = model.get("transformer", "affine")
        flow = jb.masked_autoregressive_flow(
            dim, num_layers=model.num_layers, hidden_dims=tuple(model.hidden_dims),
            transformer=transformer, **(spline if transformer == "spline" else {}),
        )  # fmt: skip
    if len(shape) == 1:
        return flow
    return jb.Chain([jb.Reshape((dim,), shape), flow, jb.Reshape(shape, (dim,))])


def density_figures(
    objective, dataset: Dataset, name: str, settings: FigureSettings = FigureSettings()
):
    """The figures hook of a density model with ``sample(params, model_state, key, n)`` and
    ``log_prob(params, model_state, x) -> log p`` (e.g. `DensityObjective`): for 2-D data,
    samples over the data and the density on a grid (`jgen.plotting.plot_density_2d`); for
    images, a grid of samples."""

    def figures(state: TrainState, workdir: Path) -> list[Path]:
        key = jax.random.PRNGKey(settings.seed)
        params, model_state = state.eval_params, state.model_state
        num = settings.samples_for(dataset.event_shape)
        samples = np.asarray(objective.sample(params, model_state, key, num))
        if dataset.event_shape == (2,):
            log_prob = jax.jit(lambda x: objective.log_prob(params, model_state, x))
            path = plotting.plot_density_2d(
                workdir, dataset.test, samples, log_prob, name=name,
                resolution=settings.resolution,
            )  # fmt: skip
            return [path]
        return [plotting.plot_images(workdir / "samples.png", samples, title=name)]

    return figures


def density_sampler(objective, dataset: Dataset):
    """The sample hook of a density model: samples, mapped back to the integer levels of
    discrete data (the model lives on the dequantised unit cube)."""

    def sample(state: TrainState, key, num: int) -> np.ndarray:
        x = np.asarray(objective.sample(state.eval_params, state.model_state, key, num))
        if dataset.num_levels is not None:
            x = np.clip(np.floor(x * dataset.num_levels), 0, dataset.num_levels - 1)
        return x

    return sample


def build_flow_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    bijector = flow_bijector(config.model, dataset)
    flow = Flow(bijector, tuple(dataset.event_shape))
    objective = DensityObjective(flow, num_levels=dataset.num_levels)
    return dict(
        objective=objective,
        figures=density_figures(
            objective, dataset, config.get("name", "flow"), figure_settings(config)
        ),
        sample=density_sampler(objective, dataset),
    )
