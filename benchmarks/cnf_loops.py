"""While-loop iterations of the FFJORD train step, counted on any backend (no timing).

On a GPU every iteration of a `lax.while_loop` whose trip count XLA cannot bound costs a
device→host read of its predicate and a kernel-launch round; so the iterations per train step
are what an accelerator pays beyond the arithmetic. For each FFJORD config (the shipped
``ffjord_2d:8gaussians`` and ``ffjord_digits``, at their initial parameters and batch size)
and each solve variant, this script reports:

* the density solve's statistics (solver statistics sown by `jgen.cnf.CNF`): per example,
  accepted + rejected steps and NFE. With per-event solves (the default) the batch is one
  vmapped while loop that runs until its slowest event is done, so its iterations are the
  *maximum* over the batch of the per-event steps, and every iteration evaluates the field on
  every event (``wasted``: 1 − mean / max of the batch's steps); with a joint solve the whole
  batch takes the same steps;
* evaluations of the (batched) field per train step, counted by a host callback in the
  augmented dynamics (``jax.debug.callback`` without arguments: under ``vmap`` it runs once per
  batched evaluation): in the forward solve and in the backward pass of the recursive-checkpoint
  adjoint, whose number of checkpoints equinox derives from ``max_steps`` (⌊−1.5 +
  √(2·max_steps + 1/4)⌋ + 1, i.e. 90 for the default 4096); with fewer checkpoints than steps
  the backward pass recomputes more of the forward solve;
* the compiled gradient's ``while`` ops and XLA temporary memory (of the instrumented
  gradient: the counting callbacks are in it).

    python benchmarks/cnf_loops.py [--configs ffjord_2d:8gaussians ffjord_digits]
                                   [--max-steps 4096 64] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["count_loops", "default_checkpoints", "main"]


def default_checkpoints(max_steps: int) -> int:
    """equinox's default number of checkpoints of a checkpointed while loop of ``max_steps``."""
    if max_steps == 1:
        return 1
    return min(math.floor(-1.5 + math.sqrt(2 * max_steps + 0.25)) + 1, max_steps)


class _FieldCounter:
    """Counts calls of the CNF's per-event dynamics while installed (a host callback per call,
    per event under vmap)."""

    def __init__(self):
        self.calls = 0

    def tick(self):
        self.calls += 1

    def __enter__(self):
        from jgen.cnf import cnf

        self._original = cnf._AugmentedSolve.event_dynamics
        original, tick = self._original, self.tick

        def counted(problem, t, z, probes, context, variables):
            jax.debug.callback(tick)
            return original(problem, t, z, probes, context, variables)

        cnf._AugmentedSolve.event_dynamics = counted
        return self

    def __exit__(self, *exc):
        from jgen.cnf import cnf

        cnf._AugmentedSolve.event_dynamics = self._original

    def count(self, fn, *args) -> int:
        self.calls = 0
        jax.block_until_ready(fn(*args))
        jax.effects_barrier()
        return self.calls


def _experiment(name: str, *, solve_jointly: bool, max_steps: int, smoke: bool):
    from jgen.config import load_experiment_config
    from jgen.experiment import build_experiment

    overrides = [f"model.solve_jointly={solve_jointly}", f"model.max_steps={max_steps}"]
    return build_experiment(load_experiment_config(name, overrides, smoke=smoke))


def count_loops(name: str, *, solve_jointly: bool, max_steps: int, smoke: bool = False) -> dict:
    """One row: solver statistics, field evaluations and loop structure (module docstring)."""
    from jgen.cnf import collect_stat
    from jgen.flows.objective import _layer_key
    from jgen.train.loop import initial_run_state

    # Instrumented before anything is traced (initialisation included): JAX reuses the traces
    # of the CNF's inner jitted solve, so the HLO and memory below are those of the
    # instrumented gradient.
    with _FieldCounter() as counter:
        exp = _experiment(name, solve_jointly=solve_jointly, max_steps=max_steps, smoke=smoke)
        objective = exp.objective.train
        arrays = exp.dataset.arrays("train")
        state, _ = initial_run_state(exp.objective, arrays, exp.tx, exp.train)
        batch = {k: jnp.asarray(v[: exp.train.batch_size]) for k, v in arrays.items()}
        key = jax.random.PRNGKey(0)
        params, model_state = state.params, state.model_state

        # The batch is an argument, not a captured constant: jgen's input checks run on
        # concrete arrays, which a captured constant still is when a jitted function is traced.
        def forward(params, batch):
            """The training loss's forward pass, with the per-example solver statistics."""
            x, context = objective._inputs(batch, key)
            _, _, intermediates = objective._log_prob(
                params, model_state, x, context, train=True, key=_layer_key(key)
            )
            names = ("num_steps", "num_accepted_steps", "num_rejected_steps", "nfe")
            return {n: collect_stat(intermediates, n) for n in names}

        def loss(params, batch):
            return objective.loss(params, model_state, batch, key)[0]

        forward_c = jax.jit(forward).lower(params, batch).compile()
        grad_c = jax.jit(jax.grad(loss)).lower(params, batch).compile()
        stats = jax.device_get(forward_c(params, batch))
        forward_calls = counter.count(forward_c, params, batch)
        total = counter.count(grad_c, params, batch)
    size = exp.train.batch_size
    steps = np.asarray(stats["num_steps"], np.float64)
    memory = grad_c.memory_analysis()
    return dict(
        config=name, batch=size, solve="joint" if solve_jointly else "per-event",
        max_steps=max_steps, checkpoints=default_checkpoints(max_steps),
        steps_mean=float(steps.mean()), steps_max=float(steps.max()),
        accepted_mean=float(np.mean(stats["num_accepted_steps"])),
        rejected_mean=float(np.mean(stats["num_rejected_steps"])),
        nfe_mean=float(np.mean(stats["nfe"])), nfe_max=float(np.max(stats["nfe"])),
        wasted=float(1.0 - steps.mean() / steps.max()),
        forward_evaluations=forward_calls, backward_evaluations=total - forward_calls,
        while_ops=len(re.findall(r"\swhile\(", grad_c.as_text())),
        temp_mib=memory.temp_size_in_bytes / 2**20,
    )  # fmt: skip


def render_markdown(rows: Sequence[dict[str, Any]], header: str) -> str:
    lines = [
        header, "",
        "| config | batch | solve | max_steps | checkpoints | steps mean / max (loop iterations) "
        "| accepted / rejected (mean) | NFE mean / max | wasted | batched field evaluations "
        "fwd / bwd | while ops | XLA temp MiB |",
        "|---|---:|---|---:|---:|---|---|---|---:|---|---:|---:|",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['batch']} | {r['solve']} | {r['max_steps']} | "
            f"{r['checkpoints']} | {r['steps_mean']:.1f} / {r['steps_max']:.0f} | "
            f"{r['accepted_mean']:.1f} / {r['rejected_mean']:.1f} | "
            f"{r['nfe_mean']:.1f} / {r['nfe_max']:.0f} | {r['wasted']:.2f} | "
            f"{r['forward_evaluations']:.0f} / {r['backward_evaluations']:.0f} | "
            f"{r['while_ops']} | {r['temp_mib']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["ffjord_2d:8gaussians", "ffjord_digits"])
    p.add_argument("--max-steps", type=int, nargs="+", default=[4096, 64])
    p.add_argument("--quick", action="store_true", help="the smoke configs (a smoke run)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    from benchmarks import harness

    command = "python benchmarks/cnf_loops.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    with harness.LoadMonitor() as monitor:
        for name in args.configs:
            for joint in (False, True):
                for max_steps in args.max_steps if not joint else args.max_steps[:1]:
                    row = count_loops(
                        name, solve_jointly=joint, max_steps=max_steps, smoke=args.quick
                    )
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    record = harness.write_record(
        args.out / "cnf_loops.json", command=command, load=monitor.summary(),
        config=dict(configs=args.configs, max_steps=args.max_steps, quick=args.quick),
        metrics=dict(rows=rows),
    )  # fmt: skip
    hw = record["hardware"]
    header = (
        f"{hw['backend']} ({hw['device']}), {record['date']}, jax {jax.__version__}; `{command}`"
    )
    table = render_markdown(rows, header)
    (args.out / "cnf_loops.md").write_text(table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
