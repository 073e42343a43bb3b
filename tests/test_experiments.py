"""Every experiment config builds and runs its smoke variant through the shared trainer."""

import numpy as np
import pytest

from jgen.config import list_experiments, load_experiment_config
from jgen.experiment import build_experiment
from jgen.train import fit

EXPERIMENTS = list_experiments()


def test_there_is_a_realnvp_config_for_every_toy():
    from jgen.data import TOY_DATASETS

    assert {f"realnvp_2d:{name}" for name in TOY_DATASETS} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_variant_runs(name, tmp_path):
    config = load_experiment_config(name, smoke=True)
    config.train.progress = False
    exp = build_experiment(config)
    result = fit(
        exp.objective, exp.dataset, exp.tx, exp.train, workdir=tmp_path,
        on_end=lambda state, wd: exp.figures(state, wd),
    )  # fmt: skip
    assert result.stopped_early is None
    assert int(result.state.step) == config.train.steps
    assert all(np.isfinite(v) for v in result.eval_metrics.values()), result.eval_metrics
    assert (tmp_path / "samples.png").is_file()
