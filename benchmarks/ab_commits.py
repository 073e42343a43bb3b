"""A/B of jgen's own train steps between two commits, in one run on one machine.

    python benchmarks/ab_commits.py --before 58018c3 [--after HEAD] [--rounds 9]

Answers "did a change slow jgen down?" for the steps `benchmarks/flows.py` and
`benchmarks/cnf_step.py` time: the RealNVP trainer step at D = 2 and D = 64 (8 couplings, 2x128
ReLU, batch 512) and the CNF trainer step with one adaptive solve per event (FFJORD 2-D, exact
trace, batch 512, recursive checkpointing: the workload both commits build identically). Each
commit's tree is exported (``git archive``) to a temporary folder and runs in a worker process
of its own, built from that commit's own benchmark code; the driver then times the workers in
alternating order, ``--rounds`` times, so a slow phase of the machine hits both alike. Reports
the median wall ms per step of each, the ratio after / before, and the load (one JSON record
under ``--out``). Both commits' benchmark modules must provide ``jgen_trainer_workload``
(flows.py) and ``_jgen_workload(..., joint=False)`` (cnf_step.py), as every commit since the
benchmark harness does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness

WORKLOADS = ("realnvp D=2", "realnvp D=64", "cnf per-event")

# The worker: builds the workloads with its own commit's code, then answers "name steps" lines
# on stdin with the wall seconds of that many steps (after one warm-up call per workload).
WORKER = r"""
import sys, jax, jax.numpy as jnp
from benchmarks import flows, cnf_step
cfg = flows.BenchConfig()
workloads = {}
for dim in (2, 64):
    batch = jax.random.normal(jax.random.PRNGKey(cfg.seed + 1), (cfg.batch, dim), jnp.float32)
    workloads[f"realnvp D={dim}"] = flows.jgen_trainer_workload(dim, batch, cfg)
ccfg = cnf_step.CNFBenchConfig()
x = cnf_step._data(ccfg)
params = cnf_step._initial_params(ccfg, x)
workloads["cnf per-event"] = cnf_step._jgen_workload("cnf", ccfg, x, params, joint=False)
for workload in workloads.values():
    workload.advance(2)
print("ready", flush=True)
for line in sys.stdin:
    name, steps = line.rsplit(" ", 1)
    print(workloads[name].advance(int(steps)), flush=True)
"""


def _export(ref: str, into: Path) -> str:
    """Export the tree of ``ref`` into ``into``; returns the full commit hash."""
    commit = subprocess.run(
        ["git", "rev-parse", ref], check=True, capture_output=True, text=True, cwd=harness.REPO
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit], check=True, capture_output=True, cwd=harness.REPO
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


class _Worker:
    def __init__(self, tree: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._readline() != "ready":
            raise RuntimeError(f"the worker for {tree} did not start")

    def _readline(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("a worker exited early (see its stderr above)")
        return line.strip()

    def time(self, name: str, steps: int) -> float:
        self.process.stdin.write(f"{name} {steps}\n")
        self.process.stdin.flush()
        return float(self._readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def compare(before: str, after: str, rounds: int, target_seconds: float) -> dict[str, Any]:
    """Median ms per step of each workload at each commit, in alternating order."""
    with tempfile.TemporaryDirectory() as tmp:
        commits = {label: _export(ref, Path(tmp) / label) for label, ref in
                   (("before", before), ("after", after))}  # fmt: skip
        workers = {label: _Worker(Path(tmp) / label) for label in commits}
        try:
            rows = []
            for name in WORKLOADS:
                steps = max(1, int(target_seconds / workers["before"].time(name, 1)))
                times: dict[str, list[float]] = {label: [] for label in workers}
                for round_index in range(rounds):
                    order = list(workers) if round_index % 2 == 0 else list(workers)[::-1]
                    for label in order:
                        times[label].append(1e3 * workers[label].time(name, steps) / steps)
                medians = {label: statistics.median(t) for label, t in times.items()}
                ratio = medians["after"] / medians["before"]
                rows.append(
                    {"workload": name, "steps_per_round": steps, "ms_per_step": times,
                     "median_ms": medians, "after_over_before": ratio}
                )  # fmt: skip
        finally:
            for worker in workers.values():
                worker.close()
    return {"commits": commits, "rounds": rounds, "rows": rows}


def render_markdown(result: dict[str, Any], load: dict[str, Any]) -> str:
    commits = result["commits"]
    lines = [
        f"A/B of jgen's train steps: before {commits['before'][:7]}, after "
        f"{commits['after'][:7]}; median of {result['rounds']} alternating rounds.",
        "",
        harness.load_line(load),
        "",
        "| workload | before ms/step | after ms/step | after / before |",
        "|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        m = row["median_ms"]
        lines.append(f"| {row['workload']} | {m['before']:.2f} | {m['after']:.2f} | "
                     f"{row['after_over_before']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a git revision")
    parser.add_argument("--after", default="HEAD", help="a git revision (default HEAD)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--target-seconds", type=float, default=0.5, help="per timed window")
    parser.add_argument("--out", type=Path, default=Path(harness.REPO) / "benchmarks" / "results")
    args = parser.parse_args(argv)
    with harness.LoadMonitor() as monitor:
        result = compare(args.before, args.after, args.rounds, args.target_seconds)
    load = monitor.summary()
    args.out.mkdir(parents=True, exist_ok=True)
    record = harness.write_record(
        args.out / "ab_commits.json", config=vars(args) | {"out": str(args.out)},
        metrics=result, load=load,
    )  # fmt: skip
    markdown = render_markdown(result, load)
    (args.out / "ab_commits.md").write_text(markdown)
    print(markdown)
    return record


if __name__ == "__main__":
    main()
