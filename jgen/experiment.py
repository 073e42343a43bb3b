"""From a config to a runnable experiment: objective, data, optimiser, loop settings, figures.

A config (an ``ml_collections.ConfigDict``, see ``experiments/configs/``) names its ``family``;
each family registers a builder in `FAMILIES` that returns an `Experiment`. The trainer, the
CLI and the tests only ever see `Experiment`, so a new model family adds one builder.

Config sections shared by every family:
    data:  name and loader options of `jgen.data.load_dataset`
    optim: keyword arguments of `jgen.train.make_optimizer` (without total_steps)
    train: fields of `jgen.train.TrainConfig`
    model: family-specific
    figures: optional, the end-of-run figures' settings (`jgen.plotting.FigureSettings`:
           resolution, num_samples, seed), read by `figure_settings`; not state-defining
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jgen.data import Dataset, load_dataset
from jgen.plotting import FigureSettings
from jgen.train import ResumeCheck, TrainConfig, TrainState, make_optimizer

__all__ = [
    "FAMILIES",
    "STATE_DEFINING_SECTIONS",
    "Experiment",
    "build_experiment",
    "changed_state_settings",
    "config_to_dict",
    "family_builder",
    "figure_settings",
    "restore_run",
    "resume_check",
]


@dataclasses.dataclass
class Experiment:
    """Everything `jgen.train.fit` needs, plus family hooks for figures and sampling."""

    name: str
    objective: Any
    dataset: Dataset
    tx: Any
    train: TrainConfig
    figures: Callable[[TrainState, Path], list[Path]] | None = None
    sample: Callable[[TrainState, jax.Array, int], np.ndarray] | None = None


# Config sections that shape the saved state: resuming under different values cannot work.
STATE_DEFINING_SECTIONS = ("family", "model", "data", "optim")
# Train settings that fix the batch stream: a resumed run must keep them to continue exactly.
DATA_ORDER_KEYS = ("seed", "batch_size")
# Train settings that shape the saved state (with their defaults, for configs written before them).
# (Defaults as they read back from config.json.)
STATE_DEFINING_TRAIN_KEYS = {"ema_decay": 0.0, "num_seeds": 1, "learning_rate_scales": []}


def changed_state_settings(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What forbids resuming (the refusals of `resume_check`): the settings of ``current``
    that differ from the checkpoint's saved config ``previous`` in a way a resumed run cannot
    follow (model, data, optimiser, the batch stream's train.seed and train.batch_size, the
    state-shaping train settings); other train settings (steps, logging) may change."""
    changed = [k for k in STATE_DEFINING_SECTIONS if previous.get(k) != current.get(k)]
    old_train, new_train = previous.get("train", {}), current.get("train", {})
    changed += [f"train.{k}" for k in DATA_ORDER_KEYS if old_train.get(k) != new_train.get(k)]
    changed += [
        f"train.{k}"
        for k, default in STATE_DEFINING_TRAIN_KEYS.items()
        if old_train.get(k, default) != new_train.get(k, default)
    ]
    return changed


def resume_check(previous: dict[str, Any], current: dict[str, Any]) -> ResumeCheck:
    """The resume policy of experiments (`jgen.train.fit`'s ``resume_policy``): resuming is
    refused on `changed_state_settings`; a new ``train.steps`` is allowed with a warning (the
    schedules built from the run's length, such as the learning rate's decay, change from the
    point of resumption)."""
    warnings = []
    old_steps = (previous.get("train") or {}).get("steps")
    steps = (current.get("train") or {}).get("steps")
    if old_steps is not None and steps is not None and old_steps != steps:
        warnings.append(
            f"warning: the checkpoint's run was {old_steps} steps long and this one is {steps}: "
            "schedules that depend on the length of the run (the learning-rate schedule, built "
            "with total_steps = train.steps) differ from the first part of the run from here on"
        )
    return ResumeCheck(tuple(changed_state_settings(previous, current)), tuple(warnings))


def figure_settings(config: ConfigDict) -> FigureSettings:
    """The figure settings of a config: its ``figures`` section over the defaults of
    `jgen.plotting.FigureSettings` (every family's figures hook reads them here)."""
    return FigureSettings.from_section(config.get("figures"))


def config_to_dict(config: ConfigDict) -> dict[str, Any]:
    """A JSON-ready copy of a config (tuples become lists)."""
    return json.loads(json.dumps(config.to_dict()))


FamilyBuilder = Callable[[ConfigDict, Dataset], dict[str, Any]]

# family -> builder, or "module:function" imported on first use (so that families live in their
# own subpackages and importing jgen.experiment stays cheap).
FAMILIES: dict[str, FamilyBuilder | str] = {
    "flow": "jgen.flows.experiment:build_flow_experiment",
    "cnf": "jgen.cnf.experiment:build_cnf_experiment",
    "vae": "jgen.vae.experiment:build_vae_experiment",
    "helmholtz": "jgen.vae.experiment:build_helmholtz_experiment",
    "gan": "jgen.gan.experiment:build_gan_experiment",
    "seq2seq": "jgen.seq2seq.experiment:build_seq2seq_experiment",
    "autoregressive": "jgen.autoregressive.experiment:build_autoregressive_experiment",
    "flow_matching": "jgen.flow_matching.experiment:build_flow_matching_experiment",
    "moser_flow": "jgen.flow_matching.experiment:build_moser_experiment",
    "vi": "jgen.vi.experiment:build_vi_experiment",
}


def family_builder(family: str) -> FamilyBuilder:
    """The builder registered for ``family`` (imported on first use)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown config.family {family!r}; known families: {sorted(FAMILIES)}")
    builder = FAMILIES[family]
    if isinstance(builder, str):
        module_name, _, attr = builder.partition(":")
        builder = getattr(importlib.import_module(module_name), attr)
        FAMILIES[family] = builder
    return builder


def build_experiment(config: ConfigDict) -> Experiment:
    """Build data, objective, optimiser and loop settings from ``config``."""
    family = config.get("family")
    builder = family_builder(family)
    data = dict(config.data)
    dataset = load_dataset(data.pop("name"), **data)
    train = TrainConfig(**config.train)
    parts = builder(config, dataset)
    # A family with its own optimiser set-up (e.g. one per GAN player) returns it as "tx".
    tx = parts.pop("tx", None) or make_optimizer(total_steps=train.steps, **config.optim)
    return Experiment(name=config.get("name", family), dataset=dataset, tx=tx, train=train, **parts)


def restore_run(workdir: str | Path, *, member: int = 0) -> tuple[Experiment, TrainState]:
    """Rebuild a run's experiment from its ``config.json`` and restore its latest checkpoint
    (what `jgen eval` and `jgen sample` start from; also for analysis scripts).

    A run of vmapped members (``train.num_seeds > 1`` or ``train.learning_rate_scales``)
    returns member ``member`` (the run of seed ``train.seed + member``, or of the member-th
    learning-rate scale). The checkpoint may have been written on any number of devices.
    """
    from jgen.train import Checkpointer, load_config
    from jgen.train.loop import initial_run_state
    from jgen.train.members import member_state

    workdir = Path(workdir)
    try:
        config = ConfigDict(load_config(workdir))
    except (ValueError, TypeError) as e:  # not JSON, or not a dict of settings
        raise ValueError(f"{workdir / 'config.json'} is not a valid jgen config ({e})") from e
    exp = build_experiment(config)
    num_members = len(exp.train.members)
    if not 0 <= member < num_members:
        raise ValueError(f"member must be in 0..{num_members - 1} for this run, got {member}")
    template, _ = initial_run_state(
        exp.objective,
        exp.dataset.arrays("train"),
        exp.tx,
        dataclasses.replace(exp.train, ema_decay=0.0),
    )
    checkpointer = Checkpointer(workdir)
    if checkpointer.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints")
    state = checkpointer.restore(template)
    checkpointer.close()
    return exp, state if num_members == 1 else member_state(state, member)
