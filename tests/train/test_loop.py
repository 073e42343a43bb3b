"""The training loop: learning, metrics files, checkpoints, exact resume, stopping on NaNs."""

import json

import jax
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.data import Dataset
from jgen.distributions import Flow
from jgen.experiment import changed_state_settings, resume_check
from jgen.flows import DensityObjective
from jgen.train import ResumeError, TrainConfig, fit, make_optimizer


def _gaussian_dataset(n_train=512, n_test=256):
    rng = np.random.default_rng(0)
    scale, shift = np.array([0.5, 2.0]), np.array([1.0, -3.0])
    make = lambda n: (rng.standard_normal((n, 2)) * scale + shift).astype(np.float32)
    return Dataset(name="gauss", train=make(n_train), test=make(n_test))


OBJECTIVE = DensityObjective(Flow(jb.Affine(event_shape=(2,)), (2,)))
# Exact NLL of N(shift, diag(scale²)) in nats: D/2 log(2πe) + Σ log scale.
BEST_NLL = float(np.log(2 * np.pi * np.e) + np.log(0.5) + np.log(2.0))


def _config(steps, **kw):
    base = dict(
        steps=steps, batch_size=64, log_every=5, eval_every=0, eval_batch_size=100,
        checkpoint_every=0, progress=False,
    )  # fmt: skip
    return TrainConfig(**(base | kw))


def test_fit_learns_a_gaussian_and_writes_metrics(tmp_path):
    dataset = _gaussian_dataset()
    tx = make_optimizer(learning_rate=0.05, total_steps=300, schedule="constant")
    result = fit(OBJECTIVE, dataset, tx, _config(300), workdir=tmp_path, run_config={"a": 1})
    assert result.stopped_early is None
    assert abs(result.eval_metrics["nll"] - BEST_NLL) < 0.1, result.eval_metrics
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(5, 301, 5))
    assert {"loss", "nll", "grad_norm", "skipped", "steps_per_s"} <= set(train[0])
    assert records[-1]["split"] == "test" and records[-1]["step"] == 300
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}
    assert (tmp_path / "checkpoints" / "300").is_dir()


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    dataset = _gaussian_dataset()
    tx = make_optimizer(learning_rate=0.05, total_steps=12, warmup_steps=2)
    straight = fit(OBJECTIVE, dataset, tx, _config(12), workdir=tmp_path / "a")
    # "Killed" after 5 steps (its final checkpoint is the state at step 5), then resumed to 12.
    fit(OBJECTIVE, dataset, tx, _config(5), workdir=tmp_path / "b")
    resumed = fit(OBJECTIVE, dataset, tx, _config(12), workdir=tmp_path / "b")
    assert int(resumed.state.step) == 12
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.device_get(straight.state.params),
        jax.device_get(resumed.state.params),
    )
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.device_get(straight.state.opt_state),
        jax.device_get(resumed.state.opt_state),
    )


def test_fresh_run_ignores_checkpoint(tmp_path):
    dataset = _gaussian_dataset()
    tx = make_optimizer(learning_rate=0.05, total_steps=4)
    fit(OBJECTIVE, dataset, tx, _config(4), workdir=tmp_path)
    again = fit(OBJECTIVE, dataset, tx, _config(4), workdir=tmp_path, resume=True)
    assert again.history[-1]["step"] == 4 and not [
        h for h in again.history if h["split"] == "train"
    ]
    fresh = fit(OBJECTIVE, dataset, tx, _config(4), workdir=tmp_path, resume=False)
    assert [h["step"] for h in fresh.history if h["split"] == "train"] == [4]


class _AlwaysNaN:
    """Wraps an objective so that every training loss is NaN (evaluation is untouched)."""

    def __init__(self, objective):
        self.objective = objective
        self.init, self.evaluate = objective.init, objective.evaluate

    def loss(self, params, model_state, batch, key):
        loss, aux = self.objective.loss(params, model_state, batch, key)
        return loss * jax.numpy.nan, aux


def test_run_stops_after_too_many_nonfinite_steps(tmp_path):
    dataset = _gaussian_dataset()
    tx = make_optimizer(learning_rate=0.05, total_steps=50)
    config = _config(50, log_every=1, max_nonfinite_steps=3)
    result = fit(_AlwaysNaN(OBJECTIVE), dataset, tx, config, workdir=tmp_path)
    assert result.stopped_early is not None and "3 consecutive" in result.stopped_early
    assert int(result.state.step) == 3
    assert all(r["skipped"] == 1.0 for r in result.history if r["split"] == "train")
    assert (tmp_path / "checkpoints" / "3").is_dir()


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_size must be positive"):
        TrainConfig(steps=1, batch_size=0)
    with pytest.raises(ValueError, match="eval_every must be >= 0"):
        TrainConfig(steps=1, batch_size=1, eval_every=-1)


def test_nonfinite_stop_does_not_depend_on_logging(tmp_path):
    dataset = _gaussian_dataset()
    tx = make_optimizer(learning_rate=0.05, total_steps=50)
    config = _config(50, log_every=0, max_nonfinite_steps=4)
    result = fit(_AlwaysNaN(OBJECTIVE), dataset, tx, config, workdir=tmp_path)
    assert result.stopped_early is not None and "4 consecutive" in result.stopped_early
    assert int(result.state.step) == 4


def test_fresh_run_truncates_metrics_and_resume_refuses_other_data_order(tmp_path):
    dataset = _gaussian_dataset()
    tx = make_optimizer(learning_rate=0.05, total_steps=10)
    run = {"model": {"a": 1}, "train": {"seed": 0, "batch_size": 64}}
    fit(OBJECTIVE, dataset, tx, _config(10), workdir=tmp_path, run_config=run)
    fit(OBJECTIVE, dataset, tx, _config(10), workdir=tmp_path, run_config=run, resume=False)
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 10], "a fresh run must not keep the previous run's records"
    other = {"model": {"a": 1}, "train": {"seed": 1, "batch_size": 64}}
    with pytest.raises(ResumeError, match=r"train\.seed differ"):
        fit(OBJECTIVE, dataset, tx, _config(12), workdir=tmp_path, run_config=other,
            resume_policy=changed_state_settings)  # fmt: skip


def test_the_experiment_resume_policy_refuses_state_settings_and_warns_of_a_new_length():
    previous = {"model": {"a": 1}, "train": {"steps": 3, "seed": 0, "batch_size": 8}}
    longer = resume_check(previous, {**previous, "train": {**previous["train"], "steps": 4}})
    assert longer.changed == () and len(longer.warnings) == 1
    assert "run was 3 steps long and this one is 4" in longer.warnings[0]
    other = resume_check(previous, {**previous, "model": {"a": 2}})
    assert other.changed == ("model",) and other.warnings == ()


def test_train_config_rejects_non_int_values():
    with pytest.raises(TypeError, match=r"TrainConfig.steps must be an int, got '10'"):
        TrainConfig(steps="10", batch_size=1)
