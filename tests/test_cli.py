"""The `jgen` command: list, train (smoke), eval, sample, and its errors."""

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

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


def test_list_describes_every_experiment_and_its_variants(capsys):
    from jgen.config import list_experiments

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    described = {line.split()[0]: line.split(None, 1)[1] for line in lines if line[:1] != " "}
    variants = " ".join(line for line in lines if line[:1] == " ")
    assert described["realnvp_2d"].startswith("RealNVP (Dinh et al. 2017) on the 2-D toy")
    assert described["gaussian_digits"].startswith("Baseline for the digits flows")
    assert "realnvp_2d:{moons,circles," in variants and "vae_digits:{diagonal," in variants
    for name in list_experiments():  # every runnable name is listed, as module or variant
        module, _, variant = name.partition(":")
        assert module in described and (not variant or f",{variant}" in variants.replace("{", ","))


def test_show_prints_the_resolved_config_with_overrides(capsys):
    assert main(["show", "realnvp_2d:checkerboard", "--smoke", "train.steps=7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "train.steps=7" in lines and "data.name='checkerboard'" in lines
    assert "model.hidden_dims=(8,)" in lines  # the smoke variant
    assert "train.num_seeds=1" in lines  # trainer defaults the config does not set


@pytest.mark.parametrize(
    "argv,hint",
    [
        (["show", "realnvp2d:moons"], "did you mean 'realnvp_2d'"),
        (["train", "realnvp_2d:moon"], "did you mean 'moons'"),
        (["show", "realnvp_2d:moons", "train.stpes=3"], "did you mean 'train.steps'"),
        (["show", "realnvp_2d:moons", "trian.steps=3"], "did you mean 'train'"),
    ],
)
def test_mistyped_names_get_a_suggestion(argv, hint, capsys):
    assert main(argv) == 2
    assert hint in capsys.readouterr().err


def test_a_broken_config_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("def get_config(arg=None, smoke=False)\n")
    (tmp_path / "empty.py").write_text("X = 1\n")
    assert main(["show", str(tmp_path / "broken.py")]) == 2
    assert "broken.py cannot be loaded: SyntaxError" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "empty.py")]) == 2
    assert "does not define get_config()" in capsys.readouterr().err


class StartupTime(UserWarning):
    """How long `jgen --help` / `jgen list` took (reported, not asserted)."""


def test_help_and_list_do_not_import_jax():
    """`jgen --help` and `jgen list` start without the numerical stack; the time is printed
    (under load it says little), the absence of JAX is asserted."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    probe = (
        "import sys, time; t = time.perf_counter(); from jgen.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(f'{time.perf_counter() - t:.3f}', 'jax' in sys.modules, file=sys.stderr)"
    )
    for argv in (["--help"], ["list"]):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env,
            timeout=120,
        )  # fmt: skip
        wall = time.perf_counter() - start
        seconds, jax_loaded = result.stderr.split()[-2:]
        load = os.getloadavg()[0]
        # A warning, so that the time shows in the suite's summary (with xdist too).
        warnings.warn(
            StartupTime(
                f"jgen {argv[0]}: {wall:.2f} s wall ({seconds} s in jgen), load average {load:.1f}"
            ),
            stacklevel=1,
        )
        assert result.returncode == 0 and jax_loaded == "False", result.stderr


def test_train_writes_metrics_figures_and_checkpoint(trained_run, capsys):
    for name in ("metrics.jsonl", "config.json", "samples.png", "density.json", "record.json"):
        assert (trained_run / name).is_file(), name
        assert stat.S_IMODE((trained_run / name).stat().st_mode) == 0o644, name
    assert (trained_run / "checkpoints" / "3").is_dir()
    config = json.loads((trained_run / "config.json").read_text())
    assert config["train"]["steps"] == 3 and config["data"]["name"] == "moons"


def test_train_writes_a_run_record(trained_run):
    record = json.loads((trained_run / "record.json").read_text())
    for key in ("command", "config", "commit", "date", "hardware", "load_average", "versions"):
        assert key in record, key
    assert record["command"].startswith("jgen train realnvp_2d:moons --smoke")
    assert record["experiment"] == "realnvp_2d:moons" and record["config"]["train"]["steps"] == 3
    assert record["metrics"]["step"] == 3 and np.isfinite(record["metrics"]["nll"])
    assert 0.5 < record["metrics"]["density_integral"] < 1.5  # from density.json
    assert record["versions"]["jax"] and record["hardware"]["devices"]


def test_resume_says_where_it_resumes_and_warns_of_a_new_length(trained_run, tmp_path, capsys):
    workdir = tmp_path / "resumed"
    shutil.copytree(trained_run, workdir)
    argv = ["train", "realnvp_2d:moons", "--smoke", "--no-progress", "--workdir", str(workdir)]
    assert main([*argv, "train.steps=4"]) == 0
    out, err = capsys.readouterr()
    assert f"resuming from step 3 of 4 ({workdir})" in err
    assert "warning: the checkpoint's run was 3 steps long and this one is 4" in err
    assert json.loads(out.splitlines()[-1])["step"] == 4
    # The last line says where the figures and files are.
    assert err.splitlines()[-1] == (
        f"figures and results in {workdir}/: samples.png, metrics.jsonl, record.json, checkpoints/"
    )
    assert main([*argv, "train.steps=4"]) == 0  # same length: no warning
    err = capsys.readouterr().err
    assert "resuming from step 4 of 4" in err and "warning" not in err


def test_two_d_figure_has_axis_ticks_and_a_colour_bar():
    from jgen.plotting import figure_2d

    points = np.random.default_rng(0).normal(size=(500, 2))
    xx, yy = np.meshgrid(np.linspace(-3, 3, 20), np.linspace(-3, 3, 20))
    fig = figure_2d(data=points, samples=points, grid=(xx, yy, -(xx**2 + yy**2)), limit=3.0)
    panels, colour_bars = fig.axes[:3], fig.axes[3:]
    assert len(colour_bars) == 1  # the density's
    for ax in panels:
        assert len(ax.get_xticks()) > 2 and len(ax.get_yticks()) > 2
        assert ax.get_xlim() == (-3.0, 3.0)


def test_gan_sample_metrics_are_one_computation(tmp_path, capsys):
    """The mode statistics are computed once, on the figures' samples: the summary printed by
    `jgen train` and gan_metrics.json hold the same high_quality, and the evaluation does not
    report a second, differently sampled one."""
    workdir = tmp_path / "gan"
    argv = ["train", "gan_2d:25gaussians", "--smoke", "--no-progress", "--workdir", str(workdir)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    saved = json.loads((workdir / "gan_metrics.json").read_text())
    assert summary["high_quality"] == saved["high_quality"]
    assert summary["modes"] == saved["modes"]
    evaluations = [
        json.loads(line)
        for line in (workdir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "test"
    ]
    assert evaluations and all("high_quality" not in e for e in evaluations)


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
    assert "realnvp_2d" in result.stdout.split()
