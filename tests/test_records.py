"""Run records (`jgen.records`) and the results page built from them."""

import json
import re

import pytest

from jgen.cli import main
from jgen.records import (
    REPO_ROOT,
    RESULTS_PAGE,
    load_records,
    make_record,
    render_results,
    write_record,
)


def test_a_record_holds_what_reproduces_and_situates_a_number():
    record = make_record(
        command=["jgen", "train", "x"], config={"a": (1, 2)}, metrics={"nll": 1.5},
        experiment="x:y",
    )  # fmt: skip
    assert record["command"] == "jgen train x" and record["config"] == {"a": [1, 2]}
    assert record["metrics"] == {"nll": 1.5} and record["experiment"] == "x:y"
    assert set(record["hardware"]) >= {"platform", "processor", "cpu_count", "devices"}
    assert record["versions"]["python"] and "jax" in record["versions"]
    assert record["date"].endswith("+00:00")
    assert record["load_average"] is None or len(record["load_average"]) == 3
    with pytest.raises(ValueError, match="exactly one of experiment= and benchmark="):
        make_record(command="c", config={}, metrics={})
    with pytest.raises(ValueError, match="exactly one of metrics= and rows="):
        make_record(command="c", config={}, benchmark="b")


def _record(name, nll, *, cpu="CPU A", load=1.0, **fields):
    return {
        "experiment": name, "command": f"jgen train {name}", "config": {}, "commit": "abc",
        "date": "2026-12-06T00:00:00+00:00", "load_average": [load, 1.0, 1.0],
        "hardware": {"processor": cpu, "cpu_count": 2, "devices": ["1 x cpu:cpu"]},
        "versions": {}, "metrics": {"nll": nll}, **fields,
    }  # fmt: skip


def test_results_page_has_one_table_per_group_and_hardware(tmp_path):
    records = [
        _record("toy:a", 2.5, load=0.5),
        _record("toy:b", 3.25, load=2.0),
        _record("toy:c", 4.0, cpu="CPU B"),
        _record("digits", 2.0, source="transcribed from the README of 1234567"),
        {**_record("bench", 0.0), "experiment": None, "benchmark": "flows",
         "rows": [{"model": "jgen", "ms": 5.5}, {"model": "peer", "ms": 7.25}]},
    ]  # fmt: skip
    for record in records:
        if record["experiment"] is None:
            del record["experiment"], record["metrics"]
    page = render_results(records)
    assert page.count("\n## ") == 4  # toy on CPU A, toy on CPU B, digits, the benchmark
    toy_a = page.split("## experiment toy")[1]
    assert "Hardware: CPU A, 2 CPU cores, 1 x cpu:cpu;" in toy_a
    assert "1-minute load average: 0.50-2.00" in toy_a
    assert "| toy:a | 2.5 |" in toy_a and "| toy:b | 3.25 |" in toy_a
    assert "`jgen train toy:a`" in toy_a
    assert "**Not regenerated:** transcribed from the README of 1234567" in page
    assert "| jgen | 5.5 |" in page and "| peer | 7.25 |" in page
    named = {**_record("named", 0.0), "metrics": {"run A": {"fd": 19.5}, "run B": {"fd": 23.0}}}
    assert "| run A | 19.5 |" in render_results([named])
    # Records are read back from a folder; other JSON files there are not records.
    write_record(tmp_path / "r.json", records[0])
    (tmp_path / "raw.json").write_text(json.dumps({"times": [1, 2]}))
    assert [r["experiment"] for r in load_records([tmp_path])] == ["toy:a"]


def test_benchmark_harness_records_are_rendered_with_their_tables(tmp_path):
    """A record of benchmarks/harness.py (nested metrics, a load summary, a table beside it)."""
    load = {"before": [0.4, 0.5, 0.6], "after": [0.7, 0.5, 0.6], "max_load1_during": 1.25,
            "publishable": False, "not_publishable_because": ["1-min load reached 9"]}  # fmt: skip
    record = {
        "command": "python benchmarks/flows.py", "config": {"dims": [2]}, "commit": "abc",
        "date": "2026-12-06 13:00 UTC", "load_average": load, "publishable": False,
        "hardware": {"cpu": "CPU C", "cpu_count": 2, "backend": "cpu", "device": "cpu",
                     "num_devices": 1},
        "versions": {}, "metrics": {"rows": {"jgen": {"ms": 5.0}}},
    }  # fmt: skip
    (tmp_path / "flows.json").write_text(json.dumps(record))
    (tmp_path / "flows.md").write_text("| model | ms |\n|---|---:|\n| jgen | 5.0 |\n")
    [loaded] = load_records([tmp_path])
    page = render_results([loaded])
    assert "## benchmark flows" in page and "Hardware: CPU C, 2 CPU cores, 1 x cpu:cpu;" in page
    assert "1-minute load average: 1.25" in page and "| jgen | 5.0 |" in page
    assert "**not publishable**: 1-min load reached 9" in page


def test_committed_results_page_is_what_the_records_give(capsys):
    """docs/results.md is generated: `jgen report` rebuilds it, `jgen report --check` agrees."""
    page = (REPO_ROOT / RESULTS_PAGE).read_text()
    assert page == render_results(load_records()), "docs/results.md is stale: run `jgen report`"
    assert main(["report", "--check"]) == 0


def test_readme_results_are_backed_by_records():
    """Every number of the README's results table is on the generated results page."""
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    numbers = {n for row in rows[1:] for n in re.findall(r"\d+\.\d+(?: ± \d+\.\d+)?%?", row)}
    assert len(numbers) > 10
    page = (REPO_ROOT / RESULTS_PAGE).read_text()
    missing = sorted(n for n in numbers if n not in page)
    assert not missing, f"README results without a record: {missing}"
