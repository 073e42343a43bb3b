"""Experiment builders of the ``flow_matching`` and ``moser_flow`` families (`jgen.experiment`).

``flow_matching`` config, ``model`` section:
    field:        'concat_squash' (FFJORD's ConcatSquash MLP, default) or 'mlp' (`MLPField`)
    hidden_dims, activation: of the field ('unet': widths per level, default SiLU)
    field_options: other options of the field (e.g. ``num_res_blocks``, ``attention``)
    path:         'linear' (`LinearGaussianPath(sigma_min)`), 'interpolant'
                  (`InterpolantPath(sigma)`), 'brownian_bridge' (`BrownianBridgePath(sigma)`),
                  'cosine' (`CosinePath()`) or 'vp' (`VariancePreservingPath()`)
    sigma:        σ_min or σ of the path
    coupling:     'independent', 'ot' (exact: `ExactOT`), 'sinkhorn' (entropic, with
                  ``epsilon`` relative to the mean cost), 'ot_host' (scipy) or 'sb'
                  (`SchrodingerBridge(sigma)`: the entropic plan at ε = 2σ², with the path's σ)
    rtol, atol:   tolerances of the CNF solves (evaluation and sampling; Tsit5, adaptive)
    trace:        'exact', 'hutchinson' or 'hutch++': the trace estimator of the evaluation
                  solve (`jgen.cnf.make_cnf`)
    logit_alpha:  for discrete data (digits)
``moser_flow`` config, ``model`` section: hidden_dims, activation, half_width (L), eps,
penalty (λ), output_scale (None: ν·L), rtol, atol (the sampling solve).
Both read the optional ``figures`` section (`jgen.experiment.figure_settings`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jgen import plotting
from jgen.cnf.strategies import make_cnf, make_field
from jgen.data import Dataset
from jgen.experiment import figure_settings
from jgen.flow_matching.coupling import SchrodingerBridge, Sinkhorn, make_coupling
from jgen.flow_matching.moser import BoxField, MoserObjective
from jgen.flow_matching.objective import FlowMatchingObjective
from jgen.flow_matching.paths import (
    BrownianBridgePath,
    CosinePath,
    InterpolantPath,
    LinearGaussianPath,
    VariancePreservingPath,
)
from jgen.train import TrainState

__all__ = [
    "build_flow_matching_experiment",
    "build_moser_experiment",
    "flow_matching_objective",
    "moser_objective",
]

# name -> (the path from the model section's sigma, default sigma)
_PATHS = {
    "linear": (LinearGaussianPath, 1e-4),
    "interpolant": (InterpolantPath, 0.0),
    "brownian_bridge": (BrownianBridgePath, 1.0),
    "cosine": (lambda sigma: CosinePath(), None),
    "vp": (lambda sigma: VariancePreservingPath(), None),
}


def _choice(what: str, table: dict, name: str):
    if name not in table:
        raise ValueError(f"model.{what} must be one of {sorted(table)}, got {name!r}")
    return table[name]


def flow_matching_objective(model: ConfigDict, event_shape, num_levels=None):
    """The `FlowMatchingObjective` a ``flow_matching`` config's model section describes."""
    event_shape = tuple(event_shape)
    field = make_field(
        model.get("field", "concat_squash"), model.hidden_dims, event_shape,
        activation=model.get("activation"), **dict(model.get("field_options", {})),
    )  # fmt: skip
    cnf = make_cnf(
        field, event_shape, rtol=model.rtol, atol=model.atol, trace=model.get("trace", "exact")
    )
    make_path, default_sigma = _choice("path", _PATHS, model.get("path", "linear"))
    sigma = model.get("sigma", default_sigma)
    return FlowMatchingObjective(
        cnf, path=make_path(sigma), coupling=_coupling(model, sigma),
        num_levels=num_levels, logit_alpha=model.get("logit_alpha", 0.05),
    )  # fmt: skip


def _coupling(model: ConfigDict, sigma: float):
    name = model.get("coupling", "independent")
    if name == "sb":
        return SchrodingerBridge(sigma=sigma)
    if name == "sinkhorn" and "epsilon" in model:
        return Sinkhorn(epsilon=model.epsilon)
    return make_coupling(name)


def moser_objective(model: ConfigDict, dim: int = 2) -> MoserObjective:
    """The `MoserObjective` a ``moser_flow`` config's model section describes."""
    field = BoxField(
        tuple(model.hidden_dims), model.half_width, output_scale=model.get("output_scale"),
        activation=model.get("activation", "tanh"),
    )  # fmt: skip
    return MoserObjective(
        field, dim=dim, eps=model.eps, penalty=model.penalty, rtol=model.rtol, atol=model.atol
    )


def build_flow_matching_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    objective = flow_matching_objective(config.model, dataset.event_shape, dataset.num_levels)
    name = config.get("name", "flow_matching")
    settings = figure_settings(config)

    def figures(state: TrainState, workdir: Path) -> list[Path]:
        params, model_state = state.eval_params, state.model_state
        samples, stats = objective.sample_with_stats(
            params, model_state, jax.random.PRNGKey(settings.seed),
            settings.samples_for(dataset.event_shape),
        )  # fmt: skip
        nfe = {"sampling_nfe": float(stats.get("nfe", np.nan))}
        if dataset.event_shape != (2,):
            (workdir / "sampling.json").write_text(json.dumps(nfe, indent=2))
            return [plotting.plot_images(workdir / "samples.png", np.asarray(samples), title=name)]
        log_prob = jax.jit(lambda x: objective.log_prob(params, model_state, x))
        path = plotting.plot_density_2d(
            workdir, dataset.test, samples, log_prob, name=name,
            resolution=settings.resolution, extra=nfe,
        )  # fmt: skip
        return [path]

    def sample(state: TrainState, key, num: int) -> np.ndarray:
        x = np.asarray(objective.sample(state.eval_params, state.model_state, key, num))
        if dataset.num_levels is not None:  # back to the integer levels of the data
            x = np.clip(np.floor(x * dataset.num_levels), 0, dataset.num_levels - 1)
        return x

    return dict(objective=objective, figures=figures, sample=sample)


def build_moser_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    if tuple(dataset.event_shape) != (2,) or dataset.num_levels is not None:
        raise ValueError(
            f"moser_flow is for continuous 2-D data, got event shape {dataset.event_shape}"
        )
    objective = moser_objective(config.model, dim=2)
    name = config.get("name", "moser_flow")
    settings = figure_settings(config)

    def figures(state: TrainState, workdir: Path) -> list[Path]:
        samples, _, stats = objective.sample_with_stats(
            state.eval_params, state.model_state, jax.random.PRNGKey(settings.seed),
            settings.samples_for(dataset.event_shape),
        )  # fmt: skip
        log_prob = jax.jit(lambda x: objective.log_prob(state.eval_params, state.model_state, x))
        extra = {
            "sampling_nfe": float(stats.get("nfe", np.nan)),
            "sampling_succeeded_fraction": float(stats["succeeded_fraction"]),
            "box_integral_of_mu_plus": _box_integral(objective, state.eval_params),
        }
        path = plotting.plot_density_2d(
            workdir, dataset.test, samples, log_prob, name=name,
            resolution=settings.resolution, extra=extra,
        )  # fmt: skip
        return [path]

    def sample(state: TrainState, key, num: int) -> np.ndarray:
        return np.asarray(objective.sample(state.eval_params, state.model_state, key, num))

    return dict(objective=objective, figures=figures, sample=sample)


def _box_integral(objective: MoserObjective, params, order: int = 128) -> float:
    """∫_B μ₊ by Gauss–Legendre quadrature (1 when μ >= ε everywhere; ∫_B μ itself is 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    L = objective.half_width
    points = L * np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
    w = L * L * np.outer(weights, weights).ravel()
    mu_plus = np.exp(np.asarray(jax.jit(objective.log_density)(params, points.astype(np.float32))))
    return float(np.sum(w * mu_plus))
