"""The `jgen` command: list, train (smoke), eval, sample, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jgen.cli import main


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    code = main(
        ["train", "realnvp_2d:moons", "--smoke", "--no-progress", "--workdir", str(workdir)]
    )
    assert code == 0
    return workdir


def test_list_names_every_experiment(capsys):
    assert main(["list"]) == 0
    names = capsys.readouterr().out.split()
    for name in (
        "realnvp_2d:moons",
        "realnvp_2d:checkerboard",
        "realnvp_digits",
        "gaussian_digits",
    ):
        assert name in names


def test_train_writes_metrics_figures_and_checkpoint(trained_run, capsys):
    for name in ("metrics.jsonl", "config.json", "samples.png", "density.json"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "checkpoints" / "3").is_dir()
    config = json.loads((trained_run / "config.json").read_text())
    assert config["train"]["steps"] == 3 and config["data"]["name"] == "moons"


def test_eval_restores_and_reports(trained_run, capsys):
    assert main(["eval", "--workdir", str(trained_run)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["step"] == 3 and report["split"] == "test" and np.isfinite(report["nll"])
    final = json.loads((trained_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert report["nll"] == pytest.approx(final["nll"], rel=1e-5)


def test_sample_writes_array(trained_run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", "--workdir", str(trained_run), "--num", "7", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (7, 2) and np.all(np.isfinite(samples))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "nope"], "unknown experiment 'nope'"),
        (["train", "realnvp_2d:nowhere"], "takes one of moons"),
        (["train", "realnvp_digits:moons"], "takes no ':' argument"),
        (["train", "realnvp_2d:moons", "train.stepz=3"], "unknown config key 'train.stepz'"),
        (["train", "realnvp_2d:moons", "model.num_layers=abc"], "expected a value of type int"),
        (["train", "realnvp_2d:moons", "steps"], "must look like key.sub=value"),
        (["train", "realnvp_2d:moons", "train.num_devices=9"], "only 4 devices"),
        (["train", "realnvp_2d:moons", "train.batch_size=254"], "divisible by the number"),
        (
            ["train", "realnvp_2d:moons", "train.num_seeds=2", "train.learning_rate_scales=(1,2)"],
            "not both",
        ),
        (
            ["train", "realnvp_2d:moons", "train.learning_rate_scales=(1,-2)"],
            "every learning_rate_scales value must be a positive number, got -2",
        ),
        (
            "train realnvp_2d:moons --coordinator-address nohost --num-processes 2 "
            "--process-id 0".split(),
            "host:port",
        ),
        (
            "train realnvp_2d:moons --coordinator-address 127.0.0.1:1 --num-processes 2 "
            "--process-id 5".split(),
            "process_id must be in 0..1",
        ),
        (["eval", "--workdir", "/nonexistent/run"], "config.json not found"),
        (["sample", "--workdir", "/nonexistent/run", "--num", "0"], "--num must be positive"),
    ],
)
def test_bad_input_gives_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_resume_under_a_different_model_config_is_refused(trained_run, capsys):
    argv = ["train", "realnvp_2d:moons", "--smoke", "--no-progress", "--workdir", str(trained_run)]
    assert main([*argv, "model.num_layers=3"]) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "model" in err and "--fresh" in err


def test_vmapped_seeds_run_reports_members_and_eval_reproduces_each(tmp_path, capsys):
    workdir = str(tmp_path / "seeds")
    argv = ["train", "realnvp_2d:moons", "--smoke", "--no-progress", "--workdir", workdir]
    assert main([*argv, "train.num_seeds=2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    members = summary["members"]
    assert len(members) == 2 and members[0]["nll"] != members[1]["nll"]
    assert summary["nll"] == pytest.approx((members[0]["nll"] + members[1]["nll"]) / 2)
    for k in (0, 1):
        assert main(["eval", "--workdir", workdir, "--member", str(k)]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["member"] == k
        assert record["nll"] == pytest.approx(members[k]["nll"], rel=1e-6)


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "jgen.cli", "list"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "realnvp_2d:moons" in result.stdout.split()
