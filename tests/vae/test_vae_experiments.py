"""The MNIST config builds and runs on fake MNIST files (the smoke loop of
tests/test_experiments.py runs the digits configs); the builders reject inconsistent settings."""

import types

import jax
import numpy as np
import pytest

from jgen.config import load_experiment_config
from jgen.experiment import build_experiment
from tests.data.fakes import write_fake_mnist


def test_the_mnist_config_runs_on_fake_files(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "data" / "mnist", n_train=16, n_test=8)
    monkeypatch.setenv("JGEN_DATA_DIR", str(tmp_path / "data"))
    exp = build_experiment(load_experiment_config("vae_mnist:planar16", smoke=True))
    assert exp.dataset.num_levels == 256 and exp.dataset.event_shape == (28, 28, 1)
    objective, key = exp.objective, jax.random.PRNGKey(0)
    params, state = jax.jit(objective.init)(key, exp.dataset.arrays("train"))
    loss, (metrics, _) = jax.jit(objective.loss)(params, state, exp.dataset.arrays("train"), key)
    evaluation = jax.jit(objective.evaluate)(params, state, exp.dataset.arrays("test"), key)
    assert np.isfinite(float(loss)) and set(metrics) == {"elbo", "kl", "recon"}
    assert evaluation["nll"].shape == (8,) and np.all(evaluation["nll"] > 0)
    assert {"iwae_1", "iwae_4", "elbo"} <= set(evaluation)


def test_inconsistent_settings_are_rejected():
    config = load_experiment_config(
        "vae_digits:diagonal", ["model.likelihood='categorical'", "model.posterior_flow='maf'"]
    )
    with pytest.raises(ValueError, match="posterior_flow must be"):
        build_experiment(config)
    config = load_experiment_config("vae_digits:categorical", ["model.architecture='transformer'"])
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_experiment(config)


@pytest.mark.parametrize("variant", ["latent2", "categorical"])
def test_variants_not_in_the_smoke_loop_build_and_draw(variant, tmp_path):
    """tests/test_experiments.py runs only vae_digits' first variant; these have their own
    code paths (2-D latent figure; categorical likelihood with the conv encoder/decoder)."""
    exp = build_experiment(load_experiment_config(f"vae_digits:{variant}", smoke=True))
    batch = {"x": exp.dataset.train[:16]}
    params, state = jax.jit(exp.objective.init)(jax.random.PRNGKey(0), batch)
    loss, _ = jax.jit(exp.objective.loss)(params, state, batch, jax.random.PRNGKey(1))
    assert np.isfinite(float(loss))
    if variant == "latent2":  # the figures' code is shared but for the latent-space panel
        paths = exp.figures(
            types.SimpleNamespace(params=params, eval_params=params, model_state=state), tmp_path
        )
        expected = {"samples.png", "reconstructions.png", "latent_space.png"}
        assert {p.name for p in paths} == expected and all(p.is_file() for p in paths)
