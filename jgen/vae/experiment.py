"""The ``vae`` and ``helmholtz`` experiment families (registered in `jgen.experiment.FAMILIES`).

Config sections read here (see experiments/configs/vae_digits.py for a complete one):

model (vae):        likelihood ('bernoulli' | 'categorical' | 'gaussian'), binarization
                    ('dynamic' | 'threshold': Bernoulli on level data), binarization_seed (seed of
                    the fixed binarisation used in evaluation), latent_dim, architecture
                    ('mlp' | 'conv'), hidden_dims, conv_channels, activation, posterior_flow
                    ('none' | 'planar' | 'radial' | 'iaf'), num_flows, amortized, kl
                    ('analytic' | 'mc'), train_samples
model (helmholtz):  likelihood, binarization, binarization_seed, latent_dims (binary layers,
                    bottom first), hidden_dims, activation
evaluation:         iwae_k (tuple: the IWAE-k metrics of every evaluation; the largest gives
                    ``nll``), chunk_size (importance samples per chunk)

Bernoulli on level data (the 17-level digits, 256-level MNIST) is binarised by the likelihood
(`jgen.vae.likelihoods.Bernoulli`): dynamically per training step, and in evaluation by a
draw fixed per image (keyed by ``binarization_seed`` and the image), so that every model is
scored on the same binary test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ml_collections import ConfigDict

from jgen.config import smoke_variant
from jgen.data import Dataset
from jgen.experiment import figure_settings
from jgen.vae.figures import model_figures
from jgen.vae.helmholtz import HelmholtzMachine, HelmholtzObjective
from jgen.vae.likelihoods import make_likelihood
from jgen.vae.model import VAE
from jgen.vae.objective import VAEObjective

__all__ = ["build_helmholtz_experiment", "build_vae_experiment", "latent_variable_config"]


def latent_variable_config(
    name: str,
    family: str,
    data: dict,
    model: dict,
    *,
    smoke: bool,
    smoke_model: dict,
    steps: int,
    eval_every: int,
    checkpoint_every: int,
    eval_batch_size: int,
    iwae_k: tuple[int, ...],
    chunk_size: int,
    log_every: int = 500,
    warmup_steps: int = 100,
) -> ConfigDict:
    """The config of a vae/helmholtz experiment: Adam with cosine decay (lr 1e-3), batch 100,
    the given loop and evaluation settings; ``smoke`` shrinks it to 3 steps of a model updated
    with ``smoke_model`` and IWAE-4."""
    c = ConfigDict()
    c.name, c.family = name, family
    c.data, c.model = ConfigDict(data), ConfigDict(model)
    c.optim = ConfigDict(dict(learning_rate=1e-3, schedule="cosine", warmup_steps=warmup_steps))
    c.train = ConfigDict(
        dict(
            steps=steps, batch_size=100, seed=0, log_every=log_every, eval_every=eval_every,
            eval_batch_size=eval_batch_size, checkpoint_every=checkpoint_every, progress=True,
        )
    )  # fmt: skip
    c.evaluation = ConfigDict(dict(iwae_k=tuple(iwae_k), chunk_size=chunk_size))
    if smoke:
        c.model.update(smoke_model)
        smoke_variant(c, batch_size=16, eval_batch_size=100)
        c.evaluation.update(iwae_k=(1, 4), chunk_size=2)
    return c


def _likelihood(model: ConfigDict, dataset: Dataset):
    name = model.get("likelihood", "bernoulli")
    options = {}
    if name == "bernoulli":
        options = dict(
            binarization=model.get("binarization", "dynamic"),
            threshold=model.get("threshold", 0.5),
            eval_seed=model.get("binarization_seed", 0),
        )
    return make_likelihood(name, dataset.num_levels, **options)


def _evaluation_options(config: ConfigDict) -> dict[str, Any]:
    evaluation = config.get("evaluation", ConfigDict())
    return dict(
        iwae_k=tuple(evaluation.get("iwae_k", (1000,))),
        chunk_size=evaluation.get("chunk_size", 100),
    )


def _parts(objective, dataset: Dataset, config: ConfigDict, default_name: str) -> dict[str, Any]:
    name = config.get("name", default_name)

    def sample(state, key, num: int) -> np.ndarray:
        return np.asarray(objective.sample(state.eval_params, state.model_state, key, num))

    return dict(
        objective=objective,
        figures=model_figures(objective, dataset, name, figure_settings(config)),
        sample=sample,
    )


def build_vae_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    model_config = config.model
    likelihood = _likelihood(model_config, dataset)
    flow = model_config.get("posterior_flow", "none")
    model = VAE(
        tuple(dataset.event_shape),
        latent_dim=model_config.latent_dim,
        num_params=likelihood.num_params,
        architecture=model_config.get("architecture", "mlp"),
        hidden_dims=tuple(model_config.hidden_dims),
        conv_channels=tuple(model_config.get("conv_channels", (32, 64))),
        activation=model_config.get("activation", "gelu"),
        posterior_flow=None if flow in (None, "none") else flow,
        num_flows=model_config.get("num_flows", 0) if flow not in (None, "none") else 0,
        amortized=model_config.get("amortized", True),
    )
    objective = VAEObjective.create(
        model, likelihood, kl=model_config.get("kl", "analytic"),
        train_samples=model_config.get("train_samples", 1), **_evaluation_options(config),
    )  # fmt: skip
    return _parts(objective, dataset, config, "vae")


def build_helmholtz_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    model_config = config.model
    likelihood = _likelihood(model_config, dataset)
    model = HelmholtzMachine(
        tuple(dataset.event_shape),
        latent_dims=tuple(model_config.latent_dims),
        num_params=likelihood.num_params,
        hidden_dims=tuple(model_config.get("hidden_dims", ())),
        activation=model_config.get("activation", "gelu"),
    )
    objective = HelmholtzObjective.create(model, likelihood, **_evaluation_options(config))
    return _parts(objective, dataset, config, "helmholtz")
