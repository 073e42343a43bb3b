"""The ``cnf`` experiment family: FFJORD (Grathwohl et al. 2019) on 2-D toys and digits.

Config ``model`` section (see experiments/configs/ffjord_2d.py):
    field:          'concat_squash' (FFJORD's), 'mlp' or 'unet' (`UNetField`, images; its
                    hidden_dims are the widths per level); hidden_dims; activation (None: the
                    field's default); field_options (other options of the field)
    num_blocks:     CNFs stacked (each with its own field) on t ∈ [0, t1]
    num_scales:     > 1: FFJORD's multi-scale CNF for images (`jgen.cnf.multiscale_cnf`,
                    num_blocks CNFs per stage); 1 (default): a plain stack
    solver, rtol, atol, step_size, adjoint, trace, trace_distribution, num_probes,
    solve_jointly:  the training solve (`jgen.cnf.make_cnf` names)
    eval_rtol, eval_atol: evaluation solves: same solver, these tolerances
    eval_trace:     the evaluation solves' trace estimator: 'exact' (default: exact test NLLs)
                    or a stochastic one (e.g. 'hutchinson' in smoke runs at 784 dimensions)
    regularization: {'kinetic_energy': λ_E, 'jacobian_frobenius': λ_F} (RNODE; 0 = off)
    logit_alpha:    for discrete data, the `LogitPreprocess` in front of the CNFs

Training uses the configured (possibly stochastic) trace estimator; evaluation, figures and
sampling use the same parameters in a model with the exact trace (``eval_trace``) at the
evaluation tolerances, so test NLLs are exact log-likelihoods (up to the solver's error).
"""

from __future__ import annotations

from typing import Any

from ml_collections import ConfigDict

from jgen.bijectors import Chain
from jgen.cnf.multiscale import multiscale_cnf
from jgen.cnf.strategies import make_cnf, make_field
from jgen.data import Dataset
from jgen.distributions import Flow, LogitPreprocess
from jgen.experiment import figure_settings
from jgen.flows import DensityObjective
from jgen.flows.experiment import density_figures, density_sampler
from jgen.train import TrainEvalObjective

__all__ = ["build_cnf_experiment", "cnf_flow"]

_SOLVE_KEYS = (
    "solver", "rtol", "atol", "step_size", "adjoint", "trace", "trace_distribution",
    "num_probes", "solve_jointly", "max_steps",
)  # fmt: skip


def cnf_flow(model: ConfigDict | dict, dataset: Dataset, *, evaluation: bool = False) -> Flow:
    """The FFJORD flow of a config's ``model`` section for ``dataset`` (see module docstring).

    With ``evaluation=True`` every CNF uses the evaluation trace (``eval_trace``, default
    exact) and tolerances; the parameter structure is the same either way.
    """
    model = dict(model)
    shape = tuple(dataset.event_shape)
    field_name = model.get("field", "concat_squash")
    solve = {k: model[k] for k in _SOLVE_KEYS if k in model}
    weights = dict(model.get("regularization", {}))
    solve["regularizers"] = tuple(name for name, w in weights.items() if w > 0)
    if evaluation:
        solve.update(
            trace=model.get("eval_trace", "exact"), rtol=model.get("eval_rtol", 1e-5),
            atol=model.get("eval_atol", 1e-5), regularizers=(),
        )  # fmt: skip
    layers = []
    if dataset.num_levels is not None:
        layers.append(LogitPreprocess(model.get("logit_alpha", 0.05), event_ndims=len(shape)))
    field_options = dict(model.get("field_options", {}))

    def field(event_shape):
        return make_field(
            field_name, model["hidden_dims"], event_shape, activation=model.get("activation"),
            **field_options,
        )  # fmt: skip

    num_scales = model.get("num_scales", 1)
    if num_scales > 1:
        multiscale = multiscale_cnf(
            shape, field, num_scales=num_scales, num_blocks=model.get("num_blocks", 1),
            t1=model.get("t1", 1.0), **solve,
        )  # fmt: skip
        layers.append(multiscale)
    else:
        for _ in range(model.get("num_blocks", 1)):
            layers.append(make_cnf(field(shape), shape, t1=model.get("t1", 1.0), **solve))
    return Flow(layers[0] if len(layers) == 1 else Chain(layers), shape)


def build_cnf_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    model = config.model
    weights = {k: float(v) for k, v in dict(model.get("regularization", {})).items() if v > 0}
    train = DensityObjective(
        cnf_flow(model, dataset), num_levels=dataset.num_levels, regularization=weights
    )
    evaluation = DensityObjective(
        cnf_flow(model, dataset, evaluation=True), num_levels=dataset.num_levels
    )
    objective = TrainEvalObjective(train, evaluation)
    name = config.get("name", "ffjord")
    figures = density_figures(objective, dataset, name, figure_settings(config))
    return dict(objective=objective, figures=figures, sample=density_sampler(objective, dataset))
