"""The wheel works without the source tree: built from a copy of the project, installed (not
editable) into a fresh venv, ``jgen list`` and a smoke training run work from another
directory, and the installed jgen and configs are the ones imported.

To stay fast and offline, the fresh venv has no pip and installs no dependencies: a ``.pth``
file puts the test interpreter's site-packages (jax, flax, ...) after its own. Paths listed in a
``.pth`` file are not site directories, so the ``.pth`` files there (the editable jgen's
finder among them) are not run, and the venv's own site-packages comes first anyway; the test
asserts on ``jgen.__file__``."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "jgen", "experiments")


def _run(args, cwd, env, timeout=600):
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installed_in_a_fresh_venv_lists_and_trains(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:  # a copy: building in the tree would leave build/ and *.egg-info there
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JGEN_CONFIG_DIR")}
    # Offline and from what is here: no index, no dependencies, no isolated build environment.
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    local = ["--no-deps", "--no-build-isolation", "--no-index"]
    _run([*pip, "wheel", *local, "-w", tmp_path / "dist", source], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("jgen-*.whl")

    prefix = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(prefix)
    python = prefix / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path, env).strip())  # fmt: skip
    (site / "shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([*pip, "--python", python, "install", *local, wheel], tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [python, "-c", "import jgen, experiments.configs as c; print(jgen.__file__, c.__file__)"],
        elsewhere, env,
    ).split()  # fmt: skip
    assert all(Path(p).is_relative_to(site) for p in where), where
    jgen = prefix / "bin" / "jgen"
    listing = _run([jgen, "list"], elsewhere, env)
    assert re.search(r"realnvp_2d:\{[^}]*\bmoons\b", listing), listing
    out = _run([jgen, "train", "realnvp_2d:moons", "--smoke", "--workdir", "run"], elsewhere, env)
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert summary["step"] == 3 and (elsewhere / "run" / "config.json").exists()
