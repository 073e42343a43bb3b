"""Every experiment config builds, and every config module runs its smoke variant (for its
first ``ARGS`` value: the others differ only in the data set) through the shared trainer."""

import numpy as np
import pytest

from jgen.config import list_experiments, load_experiment_config
from jgen.experiment import build_experiment
from jgen.train import fit

EXPERIMENTS = list_experiments()
# One smoke run per config module: every toy data set is tested in tests/data.
SMOKE = list({name.partition(":")[0]: name for name in reversed(EXPERIMENTS)}.values())[::-1]


def test_there_is_a_realnvp_and_an_ffjord_config_for_every_toy():
    from jgen.data import TOY_DATASETS

    for family in ("realnvp_2d", "ffjord_2d"):
        assert {f"{family}:{name}" for name in TOY_DATASETS} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_config_loads(name):
    for smoke in (False, True):
        config = load_experiment_config(name, smoke=smoke)
        assert config.family and config.train.steps > 0


@pytest.mark.parametrize("name", SMOKE)
def test_smoke_variant_runs(name, tmp_path):
    config = load_experiment_config(name, smoke=True)
    config.train.progress = False
    try:
        exp = build_experiment(config)
    except FileNotFoundError as error:  # e.g. the MNIST configs without the MNIST files
        pytest.skip(f"data files not present: {error}")
    result = fit(
        exp.objective, exp.dataset, exp.tx, exp.train, workdir=tmp_path,
        on_end=lambda state, wd: exp.figures(state, wd),
    )  # fmt: skip
    assert result.stopped_early is None
    assert int(result.state.step) == config.train.steps
    assert all(np.isfinite(v) for v in result.eval_metrics.values()), result.eval_metrics
    assert (tmp_path / "samples.png").is_file()
