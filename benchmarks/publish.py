"""The publishable benchmark run: every must-show table in one command, with the load checked.

    make bench-publish        # or: python benchmarks/publish.py [--quick] [--out DIR]

Waits (up to 3 min) for the machine to be quiet, then runs, each in a fresh process so that no
run inherits another's threads or compilation caches:

  1. ``benchmarks/cnf_step.py --trace exact``       CNF step, exact trace (issue 3's set-up)
  2. ``benchmarks/cnf_step.py --trace hutchinson``  the same with Hutchinson's estimator
  3. ``benchmarks/flows.py --dims 2 64 --depths 8 16 32``  RealNVP step at D = 2 and 64, and
     compile time against depth

The CNF runs get one XLA host device per core (``--xla_force_host_platform_device_count``), for
the row of jgen's data-parallel step. Each writes its JSON run record and markdown table to
``benchmarks/results/`` (``cnf_step_exact``, ``cnf_step_hutchinson``, ``flows``). This script
then writes ``publish.json`` (the whole run's load, every record's verdict) and ``SUMMARY.md``
(every table, headed by the verdict). A record is publishable only if the machine stayed quiet
during its run (see `benchmarks/harness.py` for the thresholds); the summary says NOT
PUBLISHABLE otherwise, with the reasons. On an idle 2-core machine the whole run takes about
10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness

BENCHMARKS = harness.REPO / "benchmarks"
RUNS = (
    ("cnf_step_exact", "cnf_step.py", ["--trace", "exact"]),
    ("cnf_step_hutchinson", "cnf_step.py", ["--trace", "hutchinson"]),
    ("flows", "flows.py", ["--dims", "2", "64", "--depths", "8", "16", "32"]),
)
# One XLA host device per core for the CNF runs, so that jgen's data-parallel row can use them
# (the other rows run on the first device, as in a one-device process).
HOST_DEVICES = {"cnf_step.py": harness.cpu_cores()}


def _run(script: str, args: list[str], out: Path, quick: bool) -> float:
    command = [sys.executable, str(BENCHMARKS / script), *args, "--out", str(out)]
    if quick:
        command.append("--quick")
    env = dict(os.environ)
    if script in HOST_DEVICES and "xla_force_host_platform_device_count" not in env.get(
        "XLA_FLAGS", ""
    ):
        flag = f"--xla_force_host_platform_device_count={HOST_DEVICES[script]}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    print("$", f"XLA_FLAGS={env.get('XLA_FLAGS', '')!r}", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=harness.REPO, env=env)
    return time.perf_counter() - start


def publish(out: Path, *, quick: bool = False, wait_s: float = 180.0) -> dict[str, Any]:
    """Run every benchmark of `RUNS`; write publish.json and SUMMARY.md to ``out``."""
    harness.wait_for_quiet(0.0 if quick else wait_s)
    seconds = {}
    with harness.LoadMonitor() as monitor:
        for name, script, args in RUNS:
            seconds[name] = round(_run(script, args, out, quick), 1)
    load = monitor.summary()
    records = {name: json.loads((out / f"{name}.json").read_text()) for name, _, _ in RUNS}
    verdicts = {name: record["publishable"] for name, record in records.items()}
    summary = {
        "publishable": load["publishable"] and all(verdicts.values()),
        "records": {name: f"{name}.json" for name in records},
        "record_publishable": verdicts,
        "seconds": seconds,
        "quick": quick,
    }
    harness.write_record(
        out / "publish.json",
        config={"runs": [[script, *args] for _, script, args in RUNS], "quick": quick},
        metrics=summary,
        load=load,
    )
    (out / "SUMMARY.md").write_text(_summary_markdown(out, summary, load, records))
    return summary


def summarise_records(out: Path) -> dict[str, Any]:
    """Rewrite SUMMARY.md from the records already in ``out`` (each run on its own, e.g. one
    rerun after a run that was disturbed); the verdict is publishable only if every record is."""
    records = {name: json.loads((out / f"{name}.json").read_text()) for name, _, _ in RUNS}
    verdicts = {name: record["publishable"] for name, record in records.items()}
    summary = {
        "publishable": all(verdicts.values()),
        "records": {name: f"{name}.json" for name in records},
        "record_publishable": verdicts,
        "assembled_from_separate_runs": True,
    }
    loads = [record["load_average"] for record in records.values()]
    load = {
        "publishable": summary["publishable"],
        "before": max((item["before"] for item in loads), key=lambda triple: triple[0]),
        "after": max((item["after"] for item in loads), key=lambda triple: triple[0]),
        "max_load1_during": max(item["max_load1_during"] for item in loads),
        "other_cpu_share": max(item["other_cpu_share"] or 0.0 for item in loads),
        "not_publishable_because": [
            reason for item in loads for reason in item["not_publishable_because"]
        ],
    }
    text = _summary_markdown(out, summary, load, records)
    (out / "SUMMARY.md").write_text(
        text.replace(
            "`make bench-publish` at commit",
            "Assembled from separately run records (`python benchmarks/publish.py "
            "--from-records`; each record's own load line is its verdict), first at commit",
        )
    )
    return summary


def _summary_markdown(out: Path, summary, load, records) -> str:
    first = next(iter(records.values()))
    hw = first["hardware"]
    verdict = "publishable" if summary["publishable"] else "NOT PUBLISHABLE"
    lines = [
        f"# Benchmark run: {verdict}",
        "",
        f"`make bench-publish` at commit {first['commit']}, {first['date']}; {hw['cpu']}, "
        f"{hw['cores_available']} cores, jax {first['versions']['jax']}, torch "
        f"{first['versions']['torch']}. {harness.load_line(load)}",
        "",
        "Records (JSON: command, config, commit, date, hardware, load, versions, threads, "
        "metrics): " + ", ".join(f"`{f}`" for f in summary["records"].values()) + ".",
        "",
    ]
    for name in records:
        lines += [f"## {name}", "", (out / f"{name}.md").read_text(), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke run)")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "results")
    parser.add_argument("--wait", type=float, default=180.0, help="max seconds to wait for quiet")
    parser.add_argument(
        "--from-records",
        action="store_true",
        help="run nothing: rewrite SUMMARY.md from the records in --out",
    )
    args = parser.parse_args(argv)
    if args.from_records:
        summary = summarise_records(args.out)
        print((args.out / "SUMMARY.md").read_text())
        return summary
    summary = publish(args.out, quick=args.quick, wait_s=args.wait)
    print((args.out / "SUMMARY.md").read_text())
    return summary


if __name__ == "__main__":
    main()
