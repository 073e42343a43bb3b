"""The parameter-matched flow comparison of docs/flows.md (issue #16): RealNVP, NSF, MAF and
Glow on the 2-D toys (test NLL, nats) and on 8x8 digits (test bits/dim), with NSF and MAF
never having more parameters than RealNVP in the same row.

2-D toys: every model has 4 layers (couplings / MAF layers / Glow steps) and one training
recipe (`TOY_TRAIN`); the conditioner widths are chosen so that the parameter counts match:

    RealNVP  4 affine couplings, 2x64 MLPs                                  17,676 parameters
    NSF      4 spline couplings, K = 8 bins on [-4, 4], 2x54 MLPs           17,372
    MAF      4 MAF layers (affine), 2x62 MADEs, order reversed between      17,384
    Glow     4 x (ActNorm -> LULinear -> affine coupling, 2x64 MLPs)        17,740

Digits: the shipped configs (realnvp_digits, nsf_digits, maf_digits, glow_digits: 55.0k,
50.7k, 50.2k and 49.3k parameters; ``--counts`` prints every count) with their own recipe
(2000 steps of batch 64, AdamW 1e-3).

Each run is one ``jgen train`` (a subprocess, so the recorded command is the real one); its
record.json is copied to ``docs/records/flows_matched/`` with the parameter count, and a run
whose record is already there is skipped (``--force`` reruns it). Run one at a time, niced on
a shared machine:

    nice -n 10 python -m experiments.flows_matched [--only realnvp_2d:moons ...] [--force]

then ``jgen report`` to rebuild docs/results.md; ``--table`` prints the table of docs/flows.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORDS = REPO / "docs" / "records" / "flows_matched"
TOYS = ("moons", "8gaussians", "checkerboard", "2spirals")
TOY_MODELS = {
    "realnvp_2d": ("model.num_layers=4", "model.hidden_dims=(64,64)"),
    "nsf_2d": ("model.num_layers=4", "model.hidden_dims=(54,54)", "model.num_bins=8",
               "model.bound=4.0"),
    "maf_2d": ("model.num_layers=4", "model.hidden_dims=(62,62)"),
    "glow_2d": ("model.num_steps=4", "model.hidden_dims=(64,64)"),
}  # fmt: skip
TOY_TRAIN = (
    "train.steps=3000", "train.batch_size=256", "optim.learning_rate=2e-3",
    "optim.warmup_steps=100", "train.eval_every=0", "train.log_every=500",
    "train.checkpoint_every=0", "train.progress=False",
)  # fmt: skip
DIGITS_MODELS = ("realnvp_digits", "nsf_digits", "maf_digits", "glow_digits")
DIGITS_TRAIN = ("train.eval_every=0", "train.checkpoint_every=0", "train.progress=False")
GROUPS = {
    "toys": "flows, parameter-matched (issue #16): 2-D toys, test NLL (nats), 4 layers, "
    "3000 steps of batch 256",
    "digits": "flows, parameter-matched (issue #16): 8x8 digits, test bits/dim, shipped configs",
}


def runs() -> list[tuple[str, tuple[str, ...], str]]:
    """(experiment, overrides, group) of every run, in table order (a row at a time)."""
    table = [
        (f"{model}:{toy}", (*options, *TOY_TRAIN), "toys")
        for toy in TOYS
        for model, options in TOY_MODELS.items()
    ]
    return table + [(model, DIGITS_TRAIN, "digits") for model in DIGITS_MODELS]


def num_params(experiment: str, overrides: Sequence[str]) -> int:
    """The number of trainable parameters of the experiment's model (shapes only, no compute)."""
    import jax
    import numpy as np

    from jgen.config import load_experiment_config
    from jgen.experiment import build_experiment

    exp = build_experiment(load_experiment_config(experiment, list(overrides)))
    batch = {k: v[:8] for k, v in exp.dataset.arrays("train").items()}
    params, _ = jax.eval_shape(lambda: exp.objective.init(jax.random.key(0), batch))
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


def run_name(experiment: str, seed: int) -> str:
    return experiment.replace(":", "_") + (f"_seed{seed}" if seed else "")


def record_path(index: int, experiment: str, seed: int = 0) -> Path:
    return RECORDS / f"{index:02d}_{run_name(experiment, seed)}.json"


def train(experiment: str, overrides: Sequence[str], group: str, path: Path, seed: int) -> dict:
    """One ``jgen train`` run (``train.seed=seed``: initialisation and batch order; the data
    are the same); its record (with ``num_params``, ``seed`` and ``group``) written to
    ``path``."""
    workdir = REPO / "runs" / "flows_matched" / run_name(experiment, seed)
    overrides = [*overrides, *([f"train.seed={seed}"] if seed else [])]
    argv = ["train", experiment, *overrides, "--fresh", "--workdir", str(workdir)]
    print("$ jgen", shlex.join(argv), flush=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import sys; from jgen.cli import main; sys.exit(main())", *argv],
        cwd=REPO, check=True,
    )  # fmt: skip
    record = json.loads((workdir / "record.json").read_text())
    name, _, data = experiment.partition(":")
    metrics = record["metrics"]
    value = {"test NLL": metrics["nll"]} if group == "toys" else {"test bits/dim": metrics["bpd"]}
    record["metrics"] = {
        "model": name, "data": data or "digits", **value,
        "num_params": num_params(experiment, overrides), "seed": seed, "step": metrics["step"],
        **({"∫ p on the grid": metrics["density_integral"]} if "density_integral" in metrics
           else {}),
    }  # fmt: skip
    record["wall_s"] = round(time.perf_counter() - start, 1)  # under the load recorded
    record["group"] = GROUPS[group]
    # The workdir is this machine's; the command is reproducible without it.
    record["command"] = record["command"].replace(f" --workdir {workdir}", "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(json.dumps(record["metrics"]), flush=True)
    return record


NAMES = {"realnvp": "RealNVP", "nsf": "NSF", "maf": "MAF (affine)", "glow": "Glow"}


def table() -> str:
    """The markdown table of the records in `RECORDS`: a row per data set (toys in nats, digits
    in bits/dim), a column per model, the best mean of a row in bold; with several seeds, mean
    ± standard deviation over them; then the parameter counts (toys, digits)."""
    records = [json.loads(p.read_text()) for p in sorted(RECORDS.glob("*.json"))]
    values: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for r in records:
        m = r["metrics"]
        kind = m["model"].partition("_")[0]
        bits = "test bits/dim" in m
        label = m["data"] + (" (bits/dim)" if bits else " (nats)")
        values.setdefault(label, {}).setdefault(kind, []).append(
            m["test bits/dim" if bits else "test NLL"]
        )
        sizes.setdefault("digits" if bits else "2-D toys", {})[kind] = m["num_params"]
    lines = [
        "| data set | " + " | ".join(NAMES.values()) + " |",
        "| --- |" + " ---: |" * len(NAMES),
    ]
    for label, row in values.items():
        best = min(statistics.mean(v) for v in row.values())
        cells = []
        for kind in NAMES:
            runs = row.get(kind, [])
            if not runs:
                cells.append("")
                continue
            mean = statistics.mean(runs)
            text = f"**{mean:.3f}**" if mean == best else f"{mean:.3f}"
            if len(runs) > 1:
                text += f" ± {statistics.stdev(runs):.3f}"
            cells.append(text)
        seeds = {len(v) for v in row.values()}
        note = (
            f", {seeds.pop()} seeds" if len(seeds) == 1 and max(map(len, row.values())) > 1 else ""
        )
        lines.append(f"| {label}{note} | " + " | ".join(cells) + " |")
    for group, counts in sizes.items():
        cells = [f"{counts[k]:,}" if k in counts else "" for k in NAMES]
        lines.append(f"| parameters ({group}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="experiments to run (default: all)")
    parser.add_argument("--force", action="store_true", help="rerun runs that have a record")
    parser.add_argument("--counts", action="store_true", help="print parameter counts only")
    parser.add_argument("--table", action="store_true", help="print the records' table only")
    parser.add_argument("--seed", type=int, default=0, help="train.seed of the runs (default 0)")
    args = parser.parse_args(argv)
    if args.table:
        print(table())
        return
    for index, (experiment, overrides, group) in enumerate(runs()):
        if args.only and experiment not in args.only:
            continue
        if args.counts:
            print(f"{experiment:28s} {num_params(experiment, overrides):>8,d}")
            continue
        path = record_path(index, experiment, args.seed)
        if path.exists() and not args.force:
            print(f"{experiment}: record {path.relative_to(REPO)} exists, skipped")
            continue
        train(experiment, overrides, group, path, args.seed)


if __name__ == "__main__":
    main()
