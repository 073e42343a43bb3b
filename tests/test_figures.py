"""One place for figure settings: `jgen.plotting.FigureSettings`, a config's ``figures``
section, and no family that hard-codes a figure seed or resolution of its own."""

import re
from pathlib import Path

import pytest
from ml_collections import ConfigDict

from jgen.experiment import figure_settings
from jgen.plotting import FigureSettings

ROOT = Path(__file__).resolve().parents[1] / "jgen"


def test_settings_come_from_the_figures_section_over_the_defaults():
    assert figure_settings(ConfigDict({"model": {}})) == FigureSettings()
    settings = figure_settings(ConfigDict({"figures": {"resolution": 16, "seed": 3}}))
    assert (settings.resolution, settings.seed) == (16, 3)
    assert settings.samples_for((2,)) == 20_000 and settings.samples_for((8, 8, 1)) == 50
    assert FigureSettings(num_samples=7).samples_for((2,)) == 7


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"unknown settings \['dpi'\]; known"):
        figure_settings(ConfigDict({"figures": {"dpi": 300}}))
    with pytest.raises(ValueError, match=r"FigureSettings.resolution: expected an int >= 0"):
        FigureSettings(resolution=-1)


def test_no_family_hard_codes_figure_settings():
    """Figure seeds, densities' grid resolutions and dpi are read from FigureSettings; a
    literal in a family's module would bypass the config."""
    patterns = [r"PRNGKey\(1234\)", r"key\(1234\)", r"dpi=\d", r"figure_resolution"]
    found = [
        f"{path.relative_to(ROOT)}: {pattern}"
        for path in ROOT.rglob("*.py")
        if path.name != "plotting.py" and path.parent.name != "configs"
        for pattern in patterns
        if re.search(pattern, path.read_text())
    ]
    assert not found, found
