"""The ``vi`` family: a flow fitted by reverse KL to one of Rezende & Mohamed's 2-D energies.

Config (``experiments/configs/planar_potentials.py``)::

    model.potential              'U1' .. 'U4' (`jgen.vi.potentials`)
    model.flow                   'planar' or 'radial'
    model.num_flows              K, the number of layers
    model.init_scale             std of the layers' initial parameters
    model.anneal_steps           β warm-up of the energy (0: none), see `ReverseKL`
    model.quadrature_resolution  cells per axis of the log Z quadrature on [-7, 7]²

There is no data to fit: the trainer's batches (``config.data``, any small 2-D toy set) only
set the number of Monte-Carlo samples per step (``train.batch_size``) and per evaluation (the
size of the test split: the reported ``kl`` is a mean over that many fresh draws).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jgen import bijectors as jb
from jgen.bijectors.planar import flow_layer_class
from jgen.data import Dataset
from jgen.distributions import Flow
from jgen.experiment import figure_settings
from jgen.train import TrainState
from jgen.validation import check_int
from jgen.vi.figures import FIGURE_LIMIT, density_panels, plot_density_grid
from jgen.vi.objective import ReverseKL
from jgen.vi.potentials import potential_log_normalizer, target_energy

__all__ = ["build_vi_experiment", "flow_bijector", "histogram_panel", "reverse_kl_objective"]


def flow_bijector(kind: str, num_flows: int, dim: int = 2, init_scale: float = 0.1):
    """K layers of planar or radial flow on R^dim (a single layer is returned as is)."""
    layer = flow_layer_class(kind, "model.flow")
    check_int(num_flows, "model.num_flows", minimum=1)
    layers = [layer(dim, init_scale=init_scale) for _ in range(num_flows)]
    return layers[0] if num_flows == 1 else jb.Chain(layers)


def reverse_kl_objective(model: ConfigDict) -> ReverseKL:
    """The objective of one ``model`` config section (log Z by quadrature, float64)."""
    energy = target_energy(model.potential)
    bijector = flow_bijector(model.flow, model.num_flows, init_scale=model.init_scale)
    log_z = potential_log_normalizer(model.potential, model.quadrature_resolution)
    return ReverseKL(Flow(bijector, (2,)), energy, log_z, anneal_steps=model.anneal_steps)


def histogram_panel(samples: np.ndarray, *, resolution: int = 200) -> np.ndarray:
    """A normalised 2-D histogram of samples over (-4, 4)², shaped like `density_panels`."""
    edges = np.linspace(-FIGURE_LIMIT, FIGURE_LIMIT, resolution + 1)
    counts, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=(edges, edges))
    return counts / max(len(samples), 1)


def build_vi_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    if tuple(dataset.event_shape) != (2,):
        raise ValueError(
            f"the vi family draws its own samples; config.data only sets their number and must "
            f"be a 2-D toy set, got event shape {dataset.event_shape}"
        )
    model = config.model
    objective = reverse_kl_objective(model)
    energy = objective.energy
    settings = figure_settings(config)
    resolution = settings.resolution

    def sample(state: TrainState, key, num: int) -> np.ndarray:
        return np.asarray(objective.sample(state.eval_params, state.model_state, key, num))

    def figures(state: TrainState, workdir: Path) -> list[Path]:
        log_q = jax.jit(lambda z: objective.log_prob(state.eval_params, state.model_state, z))
        true_density = density_panels(
            jax.jit(lambda z: -energy(z) - objective.log_z), resolution=resolution
        )
        panels = [
            true_density,
            density_panels(log_q, resolution=resolution),
            histogram_panel(
                sample(state, jax.random.PRNGKey(settings.seed), settings.samples_for((2,))),
                resolution=resolution,
            ),
        ]
        name = f"{model.potential}, K = {model.num_flows} {model.flow}"
        path = plot_density_grid(
            workdir / "samples.png", [panels], row_labels=[name],
            column_labels=["target exp(-E)/Z", "q_K density", "q_K samples"],
        )  # fmt: skip
        return [path]

    return dict(objective=objective, figures=figures, sample=sample)
