"""Scale-out (issue 9): a data-parallel run computes what the one-device run computes, for a
flow, a VAE, a GAN and a CNF; K vmapped seeds are the K separate runs; a checkpoint written on 4
devices resumes on 1 and 2. The tests run on the 4 simulated CPU devices of tests/conftest.py.
Each family's experiment is built once per module, so its compiled steps are shared."""

import dataclasses
import functools
import shutil

import jax
import numpy as np
import pytest

from jgen.config import load_experiment_config
from jgen.data import BatchStream
from jgen.experiment import build_experiment
from jgen.train import fit, initial_state, make_optimizer

# One small config per family; every override keeps the smoke model and shortens the run.
FAMILIES = {
    "flow": ("realnvp_2d:moons", []),
    "vae": ("vae_digits:diagonal", []),
    "gan": ("gan_2d:ring8", []),
    # A fixed-step solve: adaptive step control would compare errors in float32 noise.
    "cnf": ("ffjord_2d:8gaussians", ["model.solver=euler", "model.step_size=0.25"]),
}


@functools.cache
def experiment(family):
    name, overrides = FAMILIES[family]
    return build_experiment(load_experiment_config(name, overrides, smoke=True))


def run(family, workdir=None, tx=None, **train):
    exp = experiment(family)
    settings = dict(steps=3, eval_every=0, checkpoint_every=0, progress=False, log_every=1)
    config = dataclasses.replace(exp.train, **{**settings, **train})
    return fit(exp.objective, exp.dataset, tx or exp.tx, config, workdir=workdir)


def assert_same_tree(a, b, *, rtol=2e-4, atol=2e-6):
    leaves_a, tree_a = jax.tree.flatten(jax.device_get(a))
    leaves_b, tree_b = jax.tree.flatten(jax.device_get(b))
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def assert_trained(family, result, seed=0):
    """The run moved the parameters: the comparisons are not between two initialisations."""
    exp = experiment(family)
    stream = BatchStream(exp.dataset.arrays("train"), exp.train.batch_size, seed=seed)
    init = initial_state(exp.objective, stream, exp.tx, seed=seed).params
    moved = jax.tree.map(lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))), init,
                         jax.device_get(result.state.params))  # fmt: skip
    assert max(jax.tree.leaves(moved)) > 1e-4


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_data_parallel_run_equals_one_device_run(family):
    assert jax.device_count() == 4
    one = run(family, data_parallel=False)
    four = run(family, data_parallel=True)
    assert_trained(family, four)
    assert four.state.params is not None
    devices = {d for leaf in jax.tree.leaves(four.state.params) for d in leaf.devices()}
    assert len(devices) == 4  # replicated over the mesh
    assert_same_tree(one.state.params, four.state.params)
    assert_same_tree(one.state.opt_state, four.state.opt_state)
    for name, value in one.eval_metrics.items():
        np.testing.assert_allclose(four.eval_metrics[name], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["flow", "gan"])
def test_vmapped_seeds_equal_separate_runs(family):
    together = run(family, num_seeds=2, seed=3)
    assert together.member_eval_metrics is not None and len(together.member_eval_metrics) == 2
    params = jax.device_get(together.state.params)
    for k, seed in enumerate((3, 4)):
        alone = run(family, seed=seed)
        assert_trained(family, alone, seed=seed)
        assert_same_tree(jax.tree.map(lambda x, k=k: x[k], params), alone.state.params)
        for name, value in alone.eval_metrics.items():
            np.testing.assert_allclose(
                together.member_eval_metrics[k][name], value, rtol=1e-4, atol=1e-5
            )
    # The two members are different runs, and the summary is their mean and spread.
    values = [m for m in together.member_eval_metrics]
    name = next(iter(values[0]))
    assert values[0][name] != values[1][name]
    np.testing.assert_allclose(together.eval_metrics[name], np.mean([v[name] for v in values]))
    np.testing.assert_allclose(
        together.eval_metrics[f"{name}/std"], np.std([v[name] for v in values], ddof=1)
    )


def test_vmapped_learning_rate_sweep_equals_separate_runs():
    name, overrides = FAMILIES["flow"]
    optim = load_experiment_config(name, overrides, smoke=True).optim.to_dict()
    steps = experiment("flow").train.steps  # the schedule's length in the experiment's tx
    sweep = run("flow", learning_rate_scales=(0.25, 4.0))
    params = jax.device_get(sweep.state.params)
    for k, scale in enumerate((0.25, 4.0)):
        tx = make_optimizer(
            total_steps=steps, **{**optim, "learning_rate": optim["learning_rate"] * scale}
        )  # fmt: skip
        alone = run("flow", tx=tx)
        assert_same_tree(jax.tree.map(lambda x, k=k: x[k], params), alone.state.params)
        np.testing.assert_allclose(
            sweep.member_eval_metrics[k]["nll"], alone.eval_metrics["nll"], rtol=1e-5
        )
    assert sweep.member_eval_metrics[0]["nll"] != sweep.member_eval_metrics[1]["nll"]


def test_checkpoint_written_on_4_devices_resumes_on_1_and_2(tmp_path):
    straight = run("flow", workdir=tmp_path / "straight", steps=4)
    first = run("flow", workdir=tmp_path / "four", steps=2)
    assert int(first.state.step) == 2
    for n in (1, 2):
        workdir = tmp_path / f"resumed_on_{n}"
        shutil.copytree(tmp_path / "four", workdir)
        resumed = run("flow", workdir=workdir, steps=4, num_devices=n)
        assert int(resumed.state.step) == 4
        devices = {d for leaf in jax.tree.leaves(resumed.state.params) for d in leaf.devices()}
        assert len(devices) == n
        assert_same_tree(straight.state.params, resumed.state.params)
        assert_same_tree(straight.state.opt_state, resumed.state.opt_state)


def test_num_devices_larger_than_available_is_an_error():
    with pytest.raises(ValueError, match="only 4 devices"):
        run("flow", num_devices=5)
