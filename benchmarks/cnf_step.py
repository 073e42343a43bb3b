"""CNF train-step benchmark: jgen against hand-written diffrax and FFJORD's reference stack.

The issue's model: FFJORD's 2-D toy set-up with a 3x64 tanh MLP field h([z, t]), batch 512, one
Dopri5 solve of the whole batch (FFJORD solves the batch as one ODE) with rtol = atol = 1e-5,
the exact trace (2 products in 2-D), gradients by the continuous adjoint, Adam(1e-3). All
workloads start from the same weights and data, so their trajectories (and NFE) are comparable:

  jgen (trainer)       jgen.cnf.CNF(solve_jointly=True, BacksolveAdjoint) in a Flow, stepped by
                       jgen.train.make_train_step (non-finite guard, metrics, donated state).
  jgen per-event       jgen's default: one ODE per event (vmapped; per-event step control) with
                       recursive checkpointing, same trainer. Not the same algorithm: shown for
                       information, no target.
  diffrax (hand)       the same model written directly on diffrax: dynamics (h, tr ∂h/∂z by
                       jacfwd), diffeqsolve(Dopri5, PIDController, BacksolveAdjoint), jitted Adam.
  torchdiffeq          FFJORD's reference stack: torch module, divergence by autograd (brute
                       force, as FFJORD does in 2-D), torchdiffeq.odeint_adjoint(method='dopri5'),
                       torch.optim.Adam. Optional: needs `pip install torch torchdiffeq`.

Times are medians over interleaved repeats after a warm-up (compile time reported apart); NFE
per train step is counted: forward by the solver statistics (JAX) or a call counter (torch),
backward (the adjoint solve) by a call counter (torch) or a host callback in an instrumented,
untimed copy of the diffrax step.

    python benchmarks/cnf_step.py [--batch 512] [--repeats 5] [--steps N] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._timing import (
    Workload,
    calibrate_steps,
    interleaved_step_times,
    median,
    time_first_call,
)
from jgen.cnf import CNF, ExactTrace, MLPField, collect_nfe
from jgen.data import sample_toy
from jgen.distributions import DensityObjective, Flow
from jgen.train import TrainState, make_train_step

__all__ = ["MODELS", "CNFBenchConfig", "main", "run_benchmark"]

JGEN_TRAINER = "jgen (trainer)"
JGEN_PER_EVENT = "jgen per-event"
DIFFRAX = "diffrax (hand)"
TORCHDIFFEQ = "torchdiffeq"
MODELS = (JGEN_TRAINER, JGEN_PER_EVENT, DIFFRAX, TORCHDIFFEQ)
# The targets: the jgen step at least as fast as hand-written diffrax (ratio >= 1.0)
# and at least 1.5x faster than torchdiffeq.
TARGETS = {DIFFRAX: 1.0, TORCHDIFFEQ: 1.5}
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class CNFBenchConfig:
    batch: int = 512
    hidden_dims: tuple[int, ...] = (64, 64, 64)
    rtol: float = 1e-5
    atol: float = 1e-5
    repeats: int = 5
    steps: int | None = None  # None: calibrated to ~target_seconds per repeat and model
    target_seconds: float = 2.0
    data: str = "8gaussians"
    seed: int = 0
    torch: bool = True


def _data(cfg: CNFBenchConfig) -> np.ndarray:
    return sample_toy(cfg.data, cfg.batch, seed=cfg.seed).astype(np.float32)


# jgen ---------------------------------------------------------------------------------------


def _jgen_objective(cfg: CNFBenchConfig, *, joint: bool) -> DensityObjective:
    cnf = CNF(
        MLPField(cfg.hidden_dims, activation="tanh"),
        event_shape=(2,),
        solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
        adjoint=diffrax.BacksolveAdjoint() if joint else diffrax.RecursiveCheckpointAdjoint(),
        trace_estimator=ExactTrace(),
        solve_jointly=joint,
    )
    return DensityObjective(Flow(cnf, (2,)))


def _initial_params(cfg: CNFBenchConfig, x: np.ndarray):
    """The shared initial weights: jgen's MLPField initialisation (Dense layers hidden_i, out)."""
    params, _ = _jgen_objective(cfg, joint=True).init(jax.random.key(cfg.seed), {"x": x})
    return params


def _jgen_workload(name: str, cfg: CNFBenchConfig, x: np.ndarray, params, joint: bool):
    objective = _jgen_objective(cfg, joint=joint)
    tx = optax.adam(LEARNING_RATE)
    params = jax.tree.map(jnp.copy, params)  # own buffers: the trainer donates its state
    state = TrainState.create(params=params, model_state={}, tx=tx, rng=jax.random.key_data(
        jax.random.key(cfg.seed)))  # fmt: skip
    train_step = make_train_step(objective.loss)
    batch = {"x": jnp.asarray(x)}

    def step(state):
        state, metrics = train_step(state, batch)
        return state, metrics["loss"]

    def forward_nfe():
        _, _, inter = objective._log_prob(params, {}, batch["x"], None, train=False, key=None)
        return float(jnp.mean(collect_nfe(inter)))

    return Workload(name, step, state, info={"forward_nfe": forward_nfe()})


# diffrax by hand ----------------------------------------------------------------------------


class _Field(nn.Module):
    """h([z, t]) with the same layer names as MLPField, so jgen's weights load as they are."""

    hidden_dims: tuple[int, ...]

    @nn.compact
    def __call__(self, z, t):
        h = jnp.concatenate([z, jnp.broadcast_to(t, (*z.shape[:-1], 1))], axis=-1)
        for i, width in enumerate(self.hidden_dims):
            h = jnp.tanh(nn.Dense(width, name=f"hidden_{i}")(h))
        return nn.Dense(z.shape[-1], name="out")(h)


def _diffrax_log_prob(cfg: CNFBenchConfig, field_params, x, counter=None):
    field = _Field(cfg.hidden_dims)

    def dynamics(t, state, params):
        z, _ = state
        if counter is not None:
            jax.debug.callback(counter, ordered=False)

        def one(zi):
            f = lambda v: field.apply({"params": params}, v, t)
            return f(zi), jnp.trace(jax.jacfwd(f)(zi))

        dz, trace = jax.vmap(one)(z)
        return dz, -trace  # d log p / dt along the flow, integrated data (t1) -> base (t0)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(dynamics), diffrax.Dopri5(), t0=1.0, t1=0.0, dt0=None,
        y0=(x, jnp.zeros(x.shape[0], x.dtype)), args=field_params,
        stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
        adjoint=diffrax.BacksolveAdjoint(), max_steps=4096,
    )  # fmt: skip
    z0, delta = sol.ys[0][0], sol.ys[1][0]
    # z(t0) = z0, and log p(x) = log N(z0) − ∫ tr dt = log N(z0) + delta (delta integrated
    # backwards in time of −tr).
    log_base = -0.5 * jnp.sum(z0**2, axis=-1) - jnp.log(2 * jnp.pi)
    return log_base - delta, sol


def _diffrax_workload(cfg: CNFBenchConfig, x: np.ndarray, params):
    field_params = jax.tree.map(jnp.copy, params["bijector"]["vector_field"])  # donated below
    tx = optax.adam(LEARNING_RATE)
    batch = jnp.asarray(x)

    def loss_fn(p):
        return -jnp.mean(_diffrax_log_prob(cfg, p, batch)[0])

    @functools.partial(jax.jit, donate_argnums=(0,))
    def update(carry):
        p, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss

    counts = {"n": 0}

    def tick():
        counts["n"] += 1

    def count(fn):
        counts["n"] = 0
        jax.block_until_ready(fn())
        jax.effects_barrier()
        return counts["n"]

    forward = count(lambda: _diffrax_log_prob(cfg, field_params, batch, tick)[0])
    total = count(
        lambda: jax.grad(lambda p: -jnp.mean(_diffrax_log_prob(cfg, p, batch, tick)[0]))(
            field_params
        )
    )
    sol = _diffrax_log_prob(cfg, field_params, batch)[1]
    stats_nfe = int(sol.stats["num_steps"]) * 6 + 1  # Dopri5: 7 stages, first same as last
    info = {"forward_nfe": forward, "backward_nfe": total - forward, "stats_nfe": stats_nfe}
    return Workload(DIFFRAX, update, (field_params, tx.init(field_params)), info=info)


# torchdiffeq ---------------------------------------------------------------------------------


def _torch_workload(cfg: CNFBenchConfig, x: np.ndarray, params):
    import torch
    import torchdiffeq

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    field_params = jax.tree.map(np.asarray, params["bijector"]["vector_field"])
    counts = {"n": 0}

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            widths = [3, *cfg.hidden_dims, 2]
            self.layers = torch.nn.ModuleList(
                torch.nn.Linear(a, b) for a, b in itertools.pairwise(widths)
            )
            names = [f"hidden_{i}" for i in range(len(cfg.hidden_dims))] + ["out"]
            with torch.no_grad():  # the same weights as every other workload
                for layer, name in zip(self.layers, names, strict=True):
                    layer.weight.copy_(torch.from_numpy(field_params[name]["kernel"].T.copy()))
                    layer.bias.copy_(torch.from_numpy(field_params[name]["bias"].copy()))

        def forward(self, t, z):
            h = torch.cat([z, t.expand(z.shape[0], 1)], dim=-1)
            for layer in self.layers[:-1]:
                h = torch.tanh(layer(h))
            return self.layers[-1](h)

    class Dynamics(torch.nn.Module):  # FFJORD's ODEfunc with the brute-force divergence
        def __init__(self):
            super().__init__()
            self.field = Field()

        def forward(self, t, state):
            counts["n"] += 1
            z = state[0]
            with torch.set_grad_enabled(True):
                z = z.requires_grad_(True)
                dz = self.field(t, z)
                div = sum(
                    torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0][:, i]
                    for i in range(z.shape[1])
                )
            return dz, -div

    func = Dynamics().to(device)
    optimizer = torch.optim.Adam(func.parameters(), lr=LEARNING_RATE)
    batch = torch.from_numpy(x).to(device)
    times = torch.tensor([1.0, 0.0], device=device)
    log2pi = float(np.log(2 * np.pi))
    phases = {}

    def loss_and_grad():
        optimizer.zero_grad()
        counts["n"] = 0
        state = (batch, torch.zeros(batch.shape[0], device=device))
        zs, deltas = torchdiffeq.odeint_adjoint(
            func, state, times, rtol=cfg.rtol, atol=cfg.atol, method="dopri5"
        )
        phases["forward_nfe"] = counts["n"]
        z0, delta = zs[-1], deltas[-1]
        loss = -(-0.5 * (z0**2).sum(-1) - log2pi - delta).mean()
        loss.backward()
        phases["backward_nfe"] = counts["n"] - phases["forward_nfe"]
        return loss

    def step(carry):
        loss = loss_and_grad()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return carry, jnp.asarray(loss.item())

    snapshot = {k: v.clone() for k, v in func.state_dict().items()}
    loss_and_grad()  # NFE at the shared initial weights, then restore them
    info = dict(phases, torch=torch.__version__, torchdiffeq=metadata.version("torchdiffeq"))
    func.load_state_dict(snapshot)
    optimizer = torch.optim.Adam(func.parameters(), lr=LEARNING_RATE)
    return Workload(TORCHDIFFEQ, step, 0, info=info)


# The run --------------------------------------------------------------------------------------


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
        import torchdiffeq  # noqa: F401
    except ImportError:
        return False
    return True


def run_benchmark(cfg: CNFBenchConfig) -> dict[str, Any]:
    x = _data(cfg)
    params = _initial_params(cfg, x)
    workloads = [
        _jgen_workload(JGEN_TRAINER, cfg, x, params, joint=True),
        _jgen_workload(JGEN_PER_EVENT, cfg, x, params, joint=False),
        _diffrax_workload(cfg, x, params),
    ]
    skipped = None
    if cfg.torch and _torch_available():
        workloads.append(_torch_workload(cfg, x, params))
    else:
        skipped = "torch/torchdiffeq not installed (pip install torch torchdiffeq)"
    compile_s = {w.name: time_first_call(w) for w in workloads}
    steps = cfg.steps or calibrate_steps(
        workloads, target_seconds=cfg.target_seconds, probe_steps=2, min_steps=2, max_steps=200
    )
    wall, cpu = interleaved_step_times(workloads, num_steps=steps, repeats=cfg.repeats)
    rows = []
    for w in workloads:
        rows.append(
            dict(
                model=w.name, median_ms_per_step=1e3 * median(wall[w.name]),
                repeat_ms_per_step=[1e3 * v for v in wall[w.name]],
                median_cpu_ms_per_step=1e3 * median(cpu[w.name]),
                first_call_s=compile_s[w.name], first_loss=w.losses[0], last_loss=w.losses[-1],
                **w.info,
            )
        )  # fmt: skip
    by_model = {r["model"]: r["median_ms_per_step"] for r in rows}
    targets = [
        dict(peer=peer, target=target, ratio=by_model[peer] / by_model[JGEN_TRAINER],
             met=by_model[peer] / by_model[JGEN_TRAINER] >= target)
        for peer, target in TARGETS.items() if peer in by_model
    ]  # fmt: skip
    return dict(
        config=asdict(cfg), steps=steps, rows=rows, targets=targets, skipped=skipped,
        platform=dict(backend=jax.default_backend(), device=str(jax.devices()[0]),
                      cpu_count=len(os.sched_getaffinity(0)), machine=platform.machine(),
                      jax=jax.__version__, diffrax=metadata.version("diffrax")),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )  # fmt: skip


def render_markdown(result: dict[str, Any]) -> str:
    cfg, plat = result["config"], result["platform"]
    lines = [
        f"CNF train step, batch {cfg['batch']}, 2-D, MLP {'x'.join(map(str, cfg['hidden_dims']))}"
        f" tanh, dopri5 rtol=atol={cfg['rtol']:g}, exact trace; {plat['backend']} "
        f"({plat['device']}, {plat['cpu_count']} CPUs), {result['date']}",
        "",
        "| model | ms / step (median) | CPU ms / step | first call (s) | NFE fwd | NFE bwd | "
        "loss first → last |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['median_ms_per_step']:.1f} | {r['median_cpu_ms_per_step']:.1f} | "
            f"{r['first_call_s']:.1f} | "
            f"{r.get('forward_nfe', '')} | {r.get('backward_nfe', '')} | "
            f"{r['first_loss']:.4f} → {r['last_loss']:.4f} |"
        )
    lines.append("")
    for t in result["targets"]:
        lines.append(
            f"- {t['peer']} / jgen (trainer) = {t['ratio']:.2f}x (target ≥ {t['target']}x: "
            f"{'met' if t['met'] else 'NOT met'})"
        )
    if result["skipped"]:
        lines.append(f"- torchdiffeq skipped: {result['skipped']}")
    return "\n".join(lines) + "\n"


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parse_args(argv)
    cfg = CNFBenchConfig(batch=args.batch, repeats=args.repeats, steps=args.steps,
                         torch=not args.no_torch)  # fmt: skip
    if args.quick:
        cfg = CNFBenchConfig(batch=16, hidden_dims=(8,), rtol=1e-3, atol=1e-3, repeats=1,
                             steps=1, torch=not args.no_torch)  # fmt: skip
    print(f"CNF train-step benchmark on {jax.default_backend()}: {cfg}", flush=True)
    result = run_benchmark(cfg)
    table = render_markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cnf_step.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (args.out / "cnf_step.md").write_text(table)
    print()
    print(table)
    return result


if __name__ == "__main__":
    main()
