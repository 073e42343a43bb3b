"""benchmarks/harness.py: the spread of repeats, the publishable verdict from the load, and the
JSON run record. The load is faked (no timing is asserted)."""

import json

import pytest

from benchmarks import harness


def test_spread_median_quartiles_min():
    s = harness.spread([4.0, 1.0, 3.0, 2.0, 5.0], scale=10.0)
    assert s == {"median": 30.0, "q1": 20.0, "q3": 40.0, "iqr": 20.0, "min": 10.0}
    assert harness.spread([2.0]) == {"median": 2.0, "q1": 2.0, "q3": 2.0, "iqr": 0.0, "min": 2.0}


def test_timed_row_reports_cores_used():
    row = harness.timed_row("m", wall=[0.01, 0.02, 0.03], cpu=[0.04, 0.04, 0.04])
    assert row["median_ms_per_step"] == pytest.approx(20.0)
    assert row["cores_used"] == pytest.approx(2.0)
    assert row["repeat_ms_per_step"] == pytest.approx([10.0, 20.0, 30.0])


def _monitored(monkeypatch, loads, busy, own, cores=2):
    """A LoadMonitor run whose load averages, machine busy time and own CPU time are faked."""
    loads, busy, own = iter(loads), iter(busy), iter(own)
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    monkeypatch.setattr(harness.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(harness, "cpu_cores", lambda: cores)
    monkeypatch.setattr(harness, "_busy_cpu_seconds", lambda: next(busy))
    monkeypatch.setattr(harness, "_own_cpu_seconds", lambda: next(own))
    times = iter([0.0, 10.0])
    monkeypatch.setattr(harness, "_clock", lambda: next(times))
    with harness.LoadMonitor(interval=1e9) as monitor:  # no samples: before and after only
        pass
    return monitor.summary()


def test_quiet_run_is_publishable(monkeypatch):
    # 10 s on 2 cores; the machine was busy 15 CPU s, 14 of them this process's: others 5 %.
    load = _monitored(monkeypatch, loads=[0.3, 1.9], busy=[100.0, 115.0], own=[1.0, 15.0])
    assert load["publishable"] and load["not_publishable_because"] == []
    assert load["other_cpu_share"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("loads", "busy", "reason"),
    [
        ([1.5, 1.0], [100.0, 115.0], "load before the run 1.5"),
        ([0.3, 2.6], [100.0, 115.0], "load reached 2.6 during the run"),
        ([0.3, 1.9], [100.0, 118.0], "other processes used 20%"),
    ],
)
def test_busy_run_is_not_publishable(monkeypatch, loads, busy, reason):
    load = _monitored(monkeypatch, loads=loads, busy=busy, own=[1.0, 15.0])
    assert not load["publishable"]
    assert any(reason in r for r in load["not_publishable_because"]), load
    assert "NOT PUBLISHABLE" in harness.load_line(load)


def test_write_record_has_the_run_record_keys(tmp_path, monkeypatch):
    load = _monitored(monkeypatch, loads=[0.3, 1.0], busy=[100.0, 110.0], own=[1.0, 10.0])
    record = harness.write_record(
        tmp_path / "r.json", config={"a": 1}, metrics={"m": 2.0}, load=load, command="cmd"
    )
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved == json.loads(json.dumps(record))
    for key in ("command", "config", "commit", "date", "hardware", "load_average", "versions"):
        assert key in saved
    assert saved["publishable"] is True and saved["metrics"] == {"m": 2.0}
    assert saved["threads"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert saved["hardware"]["cores_available"] >= 1
