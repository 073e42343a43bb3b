"""`build_gan_experiment`: the ``gan`` family of `jgen.experiment.FAMILIES`.

Config ``model`` keys:
    kind            'mlp' (vectors) or 'conv' (DCGAN-style, images)
    latent_dim      size of z
    g_hidden, d_hidden   MLP widths (kind 'mlp');  channels  conv width (kind 'conv')
    num_resamples   kind 'conv': the generator's upsamplings and the discriminator's
                    downsamplings (1 for 8x8, 2 for 28x28; default 1)
    d_input_scale   factor on the MLP discriminator's input (see `MLPDiscriminator`)
    loss            'minimax' | 'non_saturating' | 'wasserstein'
    d_steps         discriminator steps per generator step
    penalty, penalty_weight   'none' | 'r1' | 'wgan_gp', and λ
    spectral_norm   spectral normalisation of every discriminator layer
    conditional     class-conditional GAN (labels of the data set; projection discriminator)
    eval_samples    samples drawn for the end-of-run metrics (``gan_metrics.json``)
    digit_metrics   on digits and MNIST: the classifier metrics of `jgen.image_metrics` (default
                    True; off in smoke runs, which then skip training the classifier)
Config ``optim`` has one `jgen.train.make_optimizer` section per player (``generator``,
``discriminator``); each player's schedule spans that player's own number of updates.

Figures and metrics at the end of a run (``figures``), from the EMA generator when
``train.ema_decay > 0``: 2-D data → ``samples.png`` (data and samples) and the mode statistics
of `jgen.gan.metrics` on the mixtures; images → ``samples.png`` (50 images, one row per class
for a conditional GAN) and, on digits and MNIST, the classifier metrics of
`jgen.image_metrics`. Both are written to ``gan_metrics.json``; they are computed there only,
on ``eval_samples`` draws with a fixed key (the VEEGAN/PacGAN protocol), not per test example
in `GAN.evaluate`: one number per metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jgen import plotting
from jgen.data import Dataset, mixture_modes
from jgen.experiment import figure_settings
from jgen.gan.metrics import mode_statistics
from jgen.gan.nets import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator
from jgen.gan.objective import GAN
from jgen.image_metrics import has_image_classifier, image_sample_metrics
from jgen.plotting import FigureSettings
from jgen.train import TrainState, make_optimizer

__all__ = ["build_gan_experiment", "gan_from_config"]

MIXTURES = ("ring8", "25gaussians", "8gaussians")


def _networks(model: ConfigDict, dataset: Dataset, num_classes: int | None):
    shape = tuple(dataset.event_shape)
    sn = bool(model.get("spectral_norm", False))
    if model.kind == "mlp":
        generator = MLPGenerator(
            tuple(model.g_hidden), shape, num_classes=num_classes,
            squash=dataset.num_levels is not None,
        )  # fmt: skip
        discriminator = MLPDiscriminator(
            num_classes=num_classes, spectral_norm=sn, hidden_dims=tuple(model.d_hidden),
            event_ndims=len(shape), input_scale=model.get("d_input_scale", 1.0),
        )  # fmt: skip
    elif model.kind == "conv":
        if len(shape) != 3:
            raise ValueError(f"model.kind='conv' needs image data (H, W, C), got {shape}")
        resamples = model.get("num_resamples", 1)
        generator = ConvGenerator(
            shape, channels=model.channels, num_classes=num_classes, num_upsamples=resamples
        )
        discriminator = ConvDiscriminator(
            num_classes=num_classes, spectral_norm=sn, channels=model.channels,
            num_downsamples=resamples,
        )  # fmt: skip
    else:
        raise ValueError(f"unknown model.kind {model.kind!r}; expected 'mlp' or 'conv'")
    return generator, discriminator


def _digit_metrics(model: ConfigDict) -> bool:
    return bool(model.get("digit_metrics", True))


def gan_from_config(config: ConfigDict, dataset: Dataset) -> GAN:
    model = config.model
    conditional = bool(model.get("conditional", False))
    num_classes = None
    if conditional:
        if dataset.train_labels is None:
            raise ValueError(f"model.conditional=True needs labelled data; {dataset.name} has none")
        num_classes = int(dataset.train_labels.max()) + 1
    generator, discriminator = _networks(model, dataset, num_classes)
    return GAN(
        generator, discriminator, latent_dim=model.latent_dim, loss_kind=model.loss,
        d_steps=model.get("d_steps", 1), penalty=model.get("penalty", "none"),
        penalty_weight=model.get("penalty_weight", 10.0), num_classes=num_classes,
        num_levels=dataset.num_levels,
    )  # fmt: skip


def _labels_for(gan: GAN, num: int):
    if gan.num_classes is None:
        return None
    return jnp.arange(num) % gan.num_classes


def _figures(
    gan: GAN, dataset: Dataset, name: str, num_eval: int, digit_metrics: bool,
    settings: FigureSettings,
):  # fmt: skip
    def figures(state: TrainState, workdir: Path) -> list[Path]:
        key = jax.random.PRNGKey(settings.seed)
        labels = _labels_for(gan, num_eval)
        samples = np.asarray(
            gan.sample(state.eval_params, state.model_state, key, num_eval, labels)
        )
        if dataset.event_shape == (2,):
            limit = plotting.plot_limit(dataset.test)
            metrics: dict[str, Any] = {}
            if dataset.name in MIXTURES:
                centres, std = mixture_modes(dataset.name)
                metrics = mode_statistics(samples, centres, std)
            title = name + "".join(f"  {k}={v:.3g}" for k, v in metrics.items())
            path = plotting.plot_2d(
                workdir / "samples.png", data=dataset.test, samples=samples, limit=limit,
                title=title,
            )  # fmt: skip
        else:
            metrics = {}
            if has_image_classifier(dataset.name) and digit_metrics:
                metrics = image_sample_metrics(
                    samples, dataset.name, None if labels is None else np.asarray(labels),
                    reference=dataset.test,
                )  # fmt: skip
            grid_labels = _labels_for(gan, 50)
            if grid_labels is not None:  # one row of 5 per class
                grid_labels = jnp.repeat(jnp.arange(10) % gan.num_classes, 5)
            grid = gan.sample(state.eval_params, state.model_state, key, 50, grid_labels)
            path = plotting.plot_images(
                workdir / "samples.png", np.asarray(grid), title=name, ncols=5,
                vmax=(dataset.num_levels or 2) - 1,
            )  # fmt: skip
        metrics["num_samples"] = num_eval
        (workdir / "gan_metrics.json").write_text(json.dumps(metrics, indent=2))
        return [path]

    return figures


def build_gan_experiment(config: ConfigDict, dataset: Dataset) -> dict[str, Any]:
    gan = gan_from_config(config, dataset)
    steps = config.train.steps
    updates = {p: max(1, steps * gan.schedule.count(p) // len(gan.schedule)) for p in gan.players}
    tx = {
        player: make_optimizer(total_steps=updates[player], **config.optim[player])
        for player in gan.players
    }

    def sample(state: TrainState, key, num: int) -> np.ndarray:
        labels = _labels_for(gan, num)
        return np.asarray(gan.sample(state.eval_params, state.model_state, key, num, labels))

    num_eval = config.model.get("eval_samples", 2500)
    name = config.get("name", "gan")
    figures = _figures(
        gan, dataset, name, num_eval, _digit_metrics(config.model), figure_settings(config)
    )
    return dict(objective=gan, figures=figures, sample=sample, tx=tx)
