"""The ``autoregressive`` family: config -> `AutoregressiveObjective` (MADE), figures, sampling.

``config.model``: ``kind='made'``, ``hidden_dims``, ``one_hot``, ``direct`` (see `MADE`).
Needs discrete data (``num_levels`` set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jgen import plotting
from jgen.autoregressive.made import MADE
from jgen.autoregressive.objective import AutoregressiveObjective
from jgen.data import Dataset
from jgen.experiment import figure_settings
from jgen.train import TrainState

__all__ = ["build_autoregressive_experiment"]


def build_autoregressive_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    model_config = config.model
    kind = model_config.get("kind", "made")
    if kind != "made":
        raise ValueError(
            f"unknown model.kind {kind!r} for the autoregressive family; expected 'made'"
        )
    if dataset.num_levels is None or dataset.vocabulary is not None:
        raise ValueError(
            f"the autoregressive family models discrete images or vectors (num_levels set), got "
            f"{dataset.name!r}"
        )
    model = MADE(
        event_shape=dataset.event_shape,
        num_levels=dataset.num_levels,
        hidden_dims=tuple(model_config.get("hidden_dims", (512,))),
        one_hot=bool(model_config.get("one_hot", True)),
        direct=bool(model_config.get("direct", True)),
    )
    objective = AutoregressiveObjective(model)
    name = config.get("name", "made")

    def sample(state: TrainState, key, num: int) -> np.ndarray:
        return np.asarray(objective.sample(state.eval_params, state.model_state, key, num))

    settings = figure_settings(config)

    def figures(state: TrainState, workdir: Path) -> list[Path]:
        key = jax.random.PRNGKey(settings.seed)
        samples = sample(state, key, settings.samples_for(dataset.event_shape))
        if samples.ndim != 4:  # vectors: nothing to draw as an image, show them as rows
            samples = samples.reshape(len(samples), 1, -1, 1)
        path = plotting.plot_images(
            workdir / "samples.png", samples, title=name, vmax=dataset.num_levels - 1
        )
        return [path]

    return dict(objective=objective, figures=figures, sample=sample)
