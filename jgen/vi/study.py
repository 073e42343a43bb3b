"""The U1-U4 study: fit K = 2, 8, 32 planar flows to each energy, tabulate KL(q_K ‖ p), draw
Rezende & Mohamed's Figure 3 (targets and fitted densities as a grid of panels).

    python -m jgen.vi.study [--out runs/planar_potentials] [--steps N] [--seeds S] [--figure PATH]

Each run is ``jgen train planar_potentials:U model.num_flows=K`` (its workdir under ``--out``);
the KL is then re-estimated with ``--samples`` fresh draws and its standard error. With
``--seeds S > 1`` each run trains seeds 0..S-1 together as vmapped members
(``train.num_seeds=S``, one compiled program) and the table gives the mean ± standard deviation
of the KL over the seeds. Writes
``kl.json`` and ``kl.md`` (the table) under ``--out`` and the figure, drawn from the runs'
checkpoints (q_K's density through the flow's inverse), to ``--figure``; ``--figure-only``
redraws it from existing runs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import load_experiment_config
from jgen.experiment import build_experiment, config_to_dict
from jgen.train import fit, member_state
from jgen.vi.figures import density_panels, plot_density_grid
from jgen.vi.objective import ReverseKL

__all__ = ["kl_estimate", "main"]

POTENTIAL_NAMES = ("U1", "U2", "U3", "U4")
NUM_FLOWS = (2, 8, 32)


def kl_estimate(
    objective: ReverseKL, params, key, *, num_samples: int, chunk: int = 10_000
) -> tuple[float, float]:
    """(mean, standard error) of log q_K(z) + E(z) + log Z over ``num_samples`` draws."""
    terms = jax.jit(lambda k: jnp.sum(jnp.stack(objective.sample_terms(params, k, chunk)), axis=0))
    values = (
        np.concatenate(
            [np.asarray(terms(jax.random.fold_in(key, i))) for i in range(-(-num_samples // chunk))]
        ).astype(np.float64)[:num_samples]
        + objective.log_z
    )
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def draw_figure(out: Path, potentials, num_flows, figure: str | Path) -> Path:
    """The grid figure from the runs' checkpoints under ``out`` (one row per potential: the
    target, then the fitted q_K for each K)."""
    from jgen.experiment import restore_run

    rows = []
    for name in potentials:
        row = []
        for k in num_flows:
            exp, state = restore_run(out / f"{name}_K{k}")
            objective = exp.objective
            if not row:
                energy, log_z = objective.energy, objective.log_z
                row.append(density_panels(jax.jit(lambda z, e=energy, c=log_z: -e(z) - c)))
            log_q = jax.jit(lambda z, o=objective, p=state.eval_params: o.log_prob(p, {}, z))
            row.append(density_panels(log_q))
        rows.append(row)
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    return plot_density_grid(
        figure, rows, row_labels=list(potentials),
        column_labels=["target"] + [f"K = {k} planar" for k in num_flows],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/planar_potentials")
    parser.add_argument("--figure", default="docs/figures/planar_potentials.png")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=1, help="vmapped seeds per run")
    parser.add_argument("--potentials", nargs="+", default=list(POTENTIAL_NAMES))
    parser.add_argument("--num-flows", nargs="+", type=int, default=list(NUM_FLOWS))
    parser.add_argument(
        "--figure-only", action="store_true", help="redraw the figure from the runs in --out"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.figure_only:
        draw_figure(out, args.potentials, args.num_flows, args.figure)
        return json.loads((out / "kl.json").read_text())

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.potentials:
        results[name] = {}
        for k in args.num_flows:
            overrides = [f"model.num_flows={k}", "train.progress=False"]
            if args.seeds > 1:
                overrides.append(f"train.num_seeds={args.seeds}")
            if args.steps is not None:
                overrides.append(f"train.steps={args.steps}")
            config = load_experiment_config(f"planar_potentials:{name}", overrides)
            exp = build_experiment(config)
            result = fit(
                exp.objective, exp.dataset, exp.tx, exp.train, workdir=out / f"{name}_K{k}",
                run_config=config_to_dict(config), resume=False,
                on_end=lambda state, wd, exp=exp: exp.figures(state, wd),
            )  # fmt: skip
            states = [result.state]
            if args.seeds > 1:
                states = [member_state(result.state, m) for m in range(args.seeds)]
            key = jax.random.key(2024)
            estimates = [
                kl_estimate(exp.objective, state.eval_params, key, num_samples=args.samples)
                for state in states
            ]
            kls = [kl for kl, _ in estimates]
            results[name][str(k)] = dict(
                kl=float(np.mean(kls)), stderr=estimates[0][1], log_z=exp.objective.log_z
            )
            if args.seeds > 1:
                results[name][str(k)].update(
                    kl_std=float(np.std(kls, ddof=1)), kl_per_seed=kls,
                    stderr_per_seed=[e for _, e in estimates],
                )  # fmt: skip
            kl_text = ", ".join(f"{kl:.4f} ± {e:.4f}" for kl, e in estimates)
            print(f"{name} K={k}: KL = {kl_text} nats", flush=True)

    (out / "kl.json").write_text(json.dumps(results, indent=2))
    header = "| potential | " + " | ".join(f"K = {k}" for k in args.num_flows) + " |"
    lines = [header, "|" + " --- |" * (len(args.num_flows) + 1)]
    for name in args.potentials:
        spread = "kl_std" if args.seeds > 1 else "stderr"
        cells = [
            f"{results[name][str(k)]['kl']:.3f} ± {results[name][str(k)][spread]:.3f}"
            for k in args.num_flows
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if args.seeds > 1:
        lines.append(f"\nmean ± standard deviation over {args.seeds} seeds (vmapped members)")
    (out / "kl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    draw_figure(out, args.potentials, args.num_flows, args.figure)
    return results


if __name__ == "__main__":
    main()
