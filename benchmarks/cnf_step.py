"""CNF train-step benchmark: jgen against hand-written diffrax and FFJORD's reference stack.

The model (issue 3's set-up): FFJORD's 2-D toy CNF with a 3x64 tanh MLP field h([z, t]), batch
512, Dopri5 with rtol = atol = 1e-5, one ODE for the whole batch (FFJORD's joint solve), Adam(1e-3).
The trace is exact (``--trace exact``: D = 2 products) or Hutchinson's estimator with one Gaussian
probe per event, drawn once per solve (``--trace hutchinson``: FFJORD's training default). All
workloads start from the same weights and data, so their trajectories and NFE are comparable:

  jgen                 jgen.cnf.CNF(solve_jointly=True) with jgen's default gradient
                       (RecursiveCheckpointAdjoint: backpropagation through the solver's steps,
                       discretise-then-optimise) in a Flow, stepped by
                       jgen.train.make_train_step (non-finite guard, metrics, donated state).
  jgen (data-parallel) the same with the batch split over the process's devices by jgen's
                       trainer (one per core with XLA_FLAGS=--xla_force_host_platform_device_
                       count=N on a CPU; `publish.py` sets it). Only with several devices.
  jgen (backsolve)     the same with BacksolveAdjoint: FFJORD's continuous adjoint.
  jgen per-event       jgen's default batching: one ODE per event (vmapped, per-event step
                       control). Not the same algorithm: shown for information, no target.
  diffrax (hand)       the `jgen` row's algorithm written directly on diffrax: dynamics (h and
                       its trace, per event by jacfwd or one JVP with the probe), diffeqsolve
                       (Dopri5, PIDController, RecursiveCheckpointAdjoint), jitted Adam.
  torchdiffeq          FFJORD's reference stack with FFJORD's settings: torch module, divergence
                       by autograd (brute force in 2-D, or e^T (∂h/∂z) e with the probe fixed
                       per solve), torchdiffeq.odeint_adjoint(method='dopri5'), torch.optim.Adam.
  torchdiffeq (direct) the same with torchdiffeq.odeint (backpropagation through the solver: the
                       gradient algorithm of the `jgen` row).

The torch rows need the optional extra (`pip install -c constraints.txt -e '.[torch]'`); torch
runs with ``OMP_WAIT_POLICY=PASSIVE`` and as many threads as the process has cores (see
`benchmarks/harness.py`). Times are medians (with quartiles) over interleaved repeats after a
warm-up; compile time is reported apart. NFE per train step is counted: forward by the solver
statistics (JAX) or a call counter (torch), backward (adjoint solve or backpropagation) by a call
counter (torch) or a host callback in an instrumented, untimed copy of the diffrax step.

    python benchmarks/cnf_step.py [--trace exact|hutchinson] [--batch 512] [--repeats 7]
                                  [--steps N] [--no-torch] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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

from benchmarks import harness
from benchmarks.harness import Workload
from jgen.cnf import CNF, ExactTrace, Hutchinson, MLPField, collect_nfe
from jgen.data import sample_toy
from jgen.distributions import Flow
from jgen.flows import DensityObjective
from jgen.parallel import data_mesh, shard_batch
from jgen.train import TrainState, make_train_step

__all__ = ["MODELS", "CNFBenchConfig", "main", "run_benchmark"]

JGEN = "jgen"
JGEN_BACKSOLVE = "jgen (backsolve)"
JGEN_PER_EVENT = "jgen per-event"
JGEN_SHARDED = "jgen (data-parallel)"
DIFFRAX = "diffrax (hand)"
TORCHDIFFEQ = "torchdiffeq"
TORCHDIFFEQ_DIRECT = "torchdiffeq (direct)"
JAX_MODELS = (JGEN, JGEN_SHARDED, JGEN_BACKSOLVE, JGEN_PER_EVENT, DIFFRAX)
TORCH_MODELS = (TORCHDIFFEQ, TORCHDIFFEQ_DIRECT)
MODELS = JAX_MODELS + TORCH_MODELS
TRACES = ("exact", "hutchinson")
# The targets: peer time / jgen time at least this (jgen no slower than hand-written
# diffrax, at least 1.5x faster than torchdiffeq with FFJORD's settings).
TARGETS = {DIFFRAX: 1.0, TORCHDIFFEQ: 1.5}
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class CNFBenchConfig:
    batch: int = 512
    hidden_dims: tuple[int, ...] = (64, 64, 64)
    rtol: float = 1e-5
    atol: float = 1e-5
    trace: str = "exact"
    repeats: int = 7
    steps: int | None = None  # None: calibrated to ~target_seconds per repeat and model
    target_seconds: float = 1.0
    data: str = "8gaussians"
    seed: int = 0
    torch: bool = True


def _data(cfg: CNFBenchConfig) -> np.ndarray:
    return sample_toy(cfg.data, cfg.batch, seed=cfg.seed).astype(np.float32)


# jgen ---------------------------------------------------------------------------------------


def _jgen_objective(
    cfg: CNFBenchConfig, *, joint: bool = True, backsolve: bool = False
) -> DensityObjective:
    cnf = CNF(
        MLPField(cfg.hidden_dims, activation="tanh"),
        event_shape=(2,),
        solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
        adjoint=diffrax.BacksolveAdjoint() if backsolve else diffrax.RecursiveCheckpointAdjoint(),
        trace_estimator=ExactTrace() if cfg.trace == "exact" else Hutchinson("gaussian"),
        solve_jointly=joint,
    )
    return DensityObjective(Flow(cnf, (2,)))


def _initial_params(cfg: CNFBenchConfig, x: np.ndarray):
    """The shared initial weights: jgen's MLPField initialisation (Dense layers hidden_i, out)."""
    params, _ = _jgen_objective(cfg).init(jax.random.key(cfg.seed), {"x": x})
    return params


def _jgen_workload(
    name: str, cfg: CNFBenchConfig, x: np.ndarray, params, *, mesh=None, **solve
) -> Workload:
    """jgen's trainer step; with a ``mesh`` the batch is split over its devices (jgen's data
    parallelism: the trainer's default whenever there are several devices)."""
    objective = _jgen_objective(cfg, **solve)
    tx = optax.adam(LEARNING_RATE)
    params = jax.tree.map(jnp.copy, params)  # own buffers: the trainer donates its state
    state = TrainState.create(params=params, model_state={}, tx=tx, rng=jax.random.key_data(
        jax.random.key(cfg.seed)))  # fmt: skip
    train_step = make_train_step(objective.loss, mesh=mesh)
    batch = {"x": jnp.asarray(x)}
    if mesh is not None:
        batch = shard_batch(batch, mesh)

    def step(state):
        state, metrics = train_step(state, batch)
        return state, metrics["loss"]

    _, _, inter = objective._log_prob(
        params, {}, batch["x"], None, train=False, key=jax.random.key(cfg.seed)
    )
    return Workload(name, step, state, info={"forward_nfe": float(jnp.mean(collect_nfe(inter)))})


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


def _diffrax_log_prob(cfg: CNFBenchConfig, field_params, x, probes=None, counter=None):
    """log p(x) by one joint solve; ``probes`` (N, D): Hutchinson's e^T (∂h/∂z) e, else exact."""
    field = _Field(cfg.hidden_dims)

    def dynamics(t, state, args):
        params, probes = args
        z, _ = state
        if counter is not None:
            jax.debug.callback(counter, ordered=False)

        def one(zi, ei):
            f = lambda v: field.apply({"params": params}, v, t)
            if ei is None:
                return f(zi), jnp.trace(jax.jacfwd(f)(zi))
            dz, a_e = jax.jvp(f, (zi,), (ei,))
            return dz, jnp.dot(ei, a_e)

        dz, trace = jax.vmap(one)(z, probes)
        return dz, -trace  # d log p / dt along the flow, integrated data (t1) -> base (t0)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(dynamics), diffrax.Dopri5(), t0=1.0, t1=0.0, dt0=None,
        y0=(x, jnp.zeros(x.shape[0], x.dtype)), args=(field_params, probes),
        stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
        adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=4096,
    )  # fmt: skip
    z0, delta = sol.ys[0][0], sol.ys[1][0]
    # z(t0) = z0, and log p(x) = log N(z0) − ∫ tr dt = log N(z0) + delta (delta integrated
    # backwards in time of −tr).
    log_base = -0.5 * jnp.sum(z0**2, axis=-1) - jnp.log(2 * jnp.pi)
    return log_base - delta, sol


def _diffrax_probes(cfg: CNFBenchConfig, key, shape):
    return None if cfg.trace == "exact" else jax.random.normal(key, shape)


def _diffrax_workload(cfg: CNFBenchConfig, x: np.ndarray, params) -> Workload:
    field_params = jax.tree.map(jnp.copy, params["bijector"]["vector_field"])  # donated below
    tx = optax.adam(LEARNING_RATE)
    batch = jnp.asarray(x)

    def loss_fn(p, key):
        probes = _diffrax_probes(cfg, key, batch.shape)
        return -jnp.mean(_diffrax_log_prob(cfg, p, batch, probes)[0])

    @functools.partial(jax.jit, donate_argnums=(0,))
    def update(carry):
        p, opt_state, key = carry
        key, probe_key = jax.random.split(key)
        loss, grads = jax.value_and_grad(loss_fn)(p, probe_key)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state, key), loss

    counts = {"n": 0}

    def tick():
        counts["n"] += 1

    def count(fn):
        counts["n"] = 0
        jax.block_until_ready(fn())
        jax.effects_barrier()
        return counts["n"]

    probes = _diffrax_probes(cfg, jax.random.key(cfg.seed), batch.shape)
    forward = count(lambda: _diffrax_log_prob(cfg, field_params, batch, probes, tick)[0])
    total = count(
        lambda: jax.grad(lambda p: -jnp.mean(_diffrax_log_prob(cfg, p, batch, probes, tick)[0]))(
            field_params
        )
    )
    info = {"forward_nfe": forward, "backward_nfe": total - forward}
    carry = (field_params, tx.init(field_params), jax.random.key(cfg.seed))
    return Workload(DIFFRAX, update, carry, info=info)


# torchdiffeq ---------------------------------------------------------------------------------


def _torch_workload(name: str, cfg: CNFBenchConfig, x: np.ndarray, params) -> Workload:
    import torch
    import torchdiffeq

    harness.configure_torch()
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    field_params = jax.tree.map(np.asarray, params["bijector"]["vector_field"])
    counts = {"n": 0}
    torch.manual_seed(cfg.seed)

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

    class Dynamics(torch.nn.Module):  # FFJORD's ODEfunc: brute-force or approximate divergence
        def __init__(self):
            super().__init__()
            self.field = Field()
            self.probe = None  # FFJORD's e: drawn once per solve (before_odeint)

        def forward(self, t, state):
            counts["n"] += 1
            z = state[0]
            with torch.set_grad_enabled(True):
                z = z.requires_grad_(True)
                dz = self.field(t, z)
                if self.probe is None:
                    div = sum(
                        torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0][:, i]
                        for i in range(z.shape[1])
                    )
                else:
                    e_dzdx = torch.autograd.grad(dz, z, self.probe, create_graph=True)[0]
                    div = (e_dzdx * self.probe).sum(1)
            return dz, -div

    func = Dynamics().to(device)
    batch = torch.from_numpy(x).to(device)
    times = torch.tensor([1.0, 0.0], device=device)
    log2pi = float(np.log(2 * np.pi))
    odeint = torchdiffeq.odeint_adjoint if name == TORCHDIFFEQ else torchdiffeq.odeint
    phases = {}

    def loss_and_grad(optimizer):
        optimizer.zero_grad()
        counts["n"] = 0
        if cfg.trace == "hutchinson":
            func.probe = torch.randn_like(batch)
        state = (batch, torch.zeros(batch.shape[0], device=device))
        zs, deltas = odeint(func, state, times, rtol=cfg.rtol, atol=cfg.atol, method="dopri5")
        phases["forward_nfe"] = counts["n"]
        z0, delta = zs[-1], deltas[-1]
        loss = -(-0.5 * (z0**2).sum(-1) - log2pi - delta).mean()
        loss.backward()
        phases["backward_nfe"] = counts["n"] - phases["forward_nfe"]
        return loss

    snapshot = {k: v.clone() for k, v in func.state_dict().items()}
    loss_and_grad(torch.optim.Adam(func.parameters(), lr=LEARNING_RATE))  # NFE at the start
    info = dict(phases)
    func.load_state_dict(snapshot)  # back to the shared initial weights
    optimizer = torch.optim.Adam(func.parameters(), lr=LEARNING_RATE)

    def step(carry):
        loss = loss_and_grad(optimizer)
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return carry, jnp.asarray(loss.item())

    return Workload(name, step, 0, info=info)


# The run --------------------------------------------------------------------------------------


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
        import torchdiffeq  # noqa: F401
    except ImportError:
        return False
    return True


def _workloads(cfg: CNFBenchConfig, x: np.ndarray, params) -> list[Workload]:
    workloads = [_jgen_workload(JGEN, cfg, x, params)]
    if jax.device_count() > 1:  # e.g. XLA_FLAGS=--xla_force_host_platform_device_count=2
        mesh = data_mesh()
        workloads.append(_jgen_workload(JGEN_SHARDED, cfg, x, params, mesh=mesh))
    workloads += [
        _jgen_workload(JGEN_BACKSOLVE, cfg, x, params, backsolve=True),
        _jgen_workload(JGEN_PER_EVENT, cfg, x, params, joint=False),
        _diffrax_workload(cfg, x, params),
    ]
    if cfg.torch and torch_available():
        workloads += [_torch_workload(name, cfg, x, params) for name in TORCH_MODELS]
    return workloads


def run_benchmark(cfg: CNFBenchConfig) -> dict[str, Any]:
    """Time every model (see the module docstring); returns the rows, ratios and targets."""
    if cfg.trace not in TRACES:
        raise ValueError(f"trace must be one of {TRACES}, got {cfg.trace!r}")
    x = _data(cfg)
    params = _initial_params(cfg, x)
    workloads = _workloads(cfg, x, params)
    compile_s = {w.name: harness.time_first_call(w) for w in workloads}
    steps = cfg.steps or harness.calibrate_steps(
        workloads, target_seconds=cfg.target_seconds, probe_steps=2, min_steps=2, max_steps=200
    )
    wall, cpu = harness.interleaved_step_times(workloads, num_steps=steps, repeats=cfg.repeats)
    rows = [
        dict(**harness.timed_row(w.name, wall[w.name], cpu[w.name]),
             first_call_s=compile_s[w.name], first_loss=w.losses[0], last_loss=w.losses[-1],
             **w.info)
        for w in workloads
    ]  # fmt: skip
    ms = {r["model"]: r["median_ms_per_step"] for r in rows}
    for r in rows:
        r["time_over_jgen"] = r["median_ms_per_step"] / ms[JGEN]
    targets = [
        dict(peer=peer, target=target, ratio=ms[peer] / ms[JGEN], met=ms[peer] / ms[JGEN] >= target)
        for peer, target in TARGETS.items() if peer in ms
    ]  # fmt: skip
    skipped = None
    if not (cfg.torch and torch_available()):
        skipped = "--no-torch" if not cfg.torch else "torch/torchdiffeq not installed"
    return dict(config=asdict(cfg), steps_per_repeat=steps, rows=rows, targets=targets,
                torch_skipped=skipped)  # fmt: skip


def render_markdown(result: dict[str, Any], load: dict[str, Any] | None = None) -> str:
    cfg = result["config"]
    trace = "exact trace" if cfg["trace"] == "exact" else "Hutchinson (1 Gaussian probe)"
    lines = [
        f"CNF train step, {trace}: batch {cfg['batch']}, 2-D, MLP "
        f"{'x'.join(map(str, cfg['hidden_dims']))} tanh, dopri5 rtol=atol={cfg['rtol']:g}, one "
        f"joint solve; median of {cfg['repeats']} interleaved repeats of "
        f"{result['steps_per_repeat']} steps.",
        "",
        "| model | ms / step: median (IQR) | CPU ms / step | cores used | time / jgen "
        "| first call (s) | NFE fwd | NFE bwd | loss first → last |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['median_ms_per_step']:.1f} ({r['ms_per_step']['iqr']:.1f}) "
            f"| {r['median_cpu_ms_per_step']:.1f} | {r['cores_used']:.2f} "
            f"| {r['time_over_jgen']:.2f} | {r['first_call_s']:.1f} "
            f"| {r.get('forward_nfe', '')} | {r.get('backward_nfe', '')} "
            f"| {r['first_loss']:.4f} → {r['last_loss']:.4f} |"
        )
    lines.append("")
    for t in result["targets"]:
        lines.append(
            f"- {t['peer']} / jgen = {t['ratio']:.2f}x (target ≥ {t['target']}x: "
            f"{'met' if t['met'] else 'NOT met'})"
        )
    if result["torch_skipped"]:
        lines.append(f"- torch rows skipped: {result['torch_skipped']}")
    if load is not None:
        lines.append(f"- {harness.load_line(load)}")
    return "\n".join(lines) + "\n"


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", choices=TRACES, default="exact")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--target-seconds", type=float, default=1.0)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke run)")
    parser.add_argument("--out", type=Path, default=harness.REPO / "benchmarks" / "results")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> CNFBenchConfig:
    if args.quick:
        return CNFBenchConfig(batch=16, hidden_dims=(8,), rtol=1e-3, atol=1e-3, trace=args.trace,
                              repeats=2, steps=1, torch=not args.no_torch)  # fmt: skip
    return CNFBenchConfig(batch=args.batch, trace=args.trace, repeats=args.repeats,
                          steps=args.steps, target_seconds=args.target_seconds,
                          torch=not args.no_torch)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parse_args(argv)
    cfg = config_from_args(args)
    print(f"CNF train-step benchmark on {jax.default_backend()}: {cfg}", flush=True)
    with harness.LoadMonitor() as monitor:
        result = run_benchmark(cfg)
    load = monitor.summary()
    name = f"cnf_step_{cfg.trace}"
    record = harness.write_record(
        args.out / f"{name}.json", config=asdict(cfg), metrics=result, load=load
    )
    table = render_markdown(result, load)
    (args.out / f"{name}.md").write_text(table)
    print()
    print(table)
    return record


if __name__ == "__main__":
    main()
