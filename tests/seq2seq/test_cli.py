"""``jgen train`` / ``jgen sample --input`` for a seq2seq run, and its clean errors."""

import json

import numpy as np
import pytest

from jgen.cli import main
from jgen.config import load_experiment_config
from jgen.data import BatchStream
from jgen.experiment import build_experiment, config_to_dict
from jgen.train import Checkpointer, initial_state, save_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A run directory as `jgen train` leaves it (config.json and a checkpoint), holding the
    untrained smoke model: training itself is covered by tests/test_experiments.py."""
    path = tmp_path_factory.mktemp("reversal")
    config = load_experiment_config("seq2seq_tasks:reversal", smoke=True)
    exp = build_experiment(config)
    stream = BatchStream(exp.dataset.arrays("train"), exp.train.batch_size, seed=exp.train.seed)
    save_config(path, config_to_dict(config))
    checkpointer = Checkpointer(path)
    checkpointer.save(initial_state(exp.objective, stream, exp.tx, seed=exp.train.seed))
    checkpointer.close()
    return path


def test_sample_decodes_user_inputs(workdir, capsys):
    capsys.readouterr()
    for method in ("greedy", "beam"):
        args = ["sample", "--workdir", str(workdir), "--input", "abc", "--input", "z"]
        assert main([*args, "--decode", method, "--beam-size", "2"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["input"] for r in lines] == ["abc", "z"]
        assert all(set(r) == {"input", "output", "log_prob", "finished"} for r in lines)


def test_sample_without_inputs_pairs_test_sources_with_samples(workdir):
    assert main(["sample", "--workdir", str(workdir), "--num", "4"]) == 0
    samples = np.load(workdir / "samples.npy")
    assert samples.shape == (4, 2) and samples.dtype.kind == "U"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--input", "ab1"], "expected characters of the vocabulary"),
        (["--input", "abcdefghijk"], "at most 10 characters"),
    ],
)
def test_bad_inputs_are_clean_errors(workdir, capsys, extra, match):
    assert main(["sample", "--workdir", str(workdir), *extra]) == 2
    assert match in capsys.readouterr().err
