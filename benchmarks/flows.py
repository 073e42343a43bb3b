"""RealNVP train-step throughput: jgen against distrax, flowjax and the MLP compute floor.

One process times, for each event size D, the same 8-layer affine-coupling flow (conditioners
D_in -> 128 -> 128 -> 2·D_out) trained by maximum likelihood with Adam(1e-3):

  jgen (trainer)   jgen.bijectors.realnvp in jgen.distributions.Flow, stepped by
                   jgen.train.make_train_step (the trainer's step: non-finite guard, metrics,
                   PRNG fold-in, donated state).
  jgen (plain jit) the same model and loss in a hand-written jitted Adam step (the trainer's
                   overhead is the difference).
  jgen (trainer, scan_layers)  the trainer's step of realnvp(..., scan_layers=True): the same
                   flow with the couplings' parameters stacked and the pairs of couplings run in
                   a scan (compile time flat in the depth).
  distrax          distrax.SplitCoupling layers (distrax's efficient coupling: the conditioner
                   reads the D/2 conditioning coordinates) with ScalarAffine inner bijectors
                   from Flax MLP conditioners, distrax.Chain, distrax.Transformed.
  flowjax          flowjax.flows.coupling_flow with its defaults but for the sizes (Affine
                   transformer, permutations between layers; equinox model, trainable arrays
                   partitioned out as flowjax's own fit_to_data does).
  MLP floor        the 8 conditioner MLPs alone, chained, with a trivial loss: the compute a
                   coupling flow cannot go below.
  zuko, nflows     (only when the optional torch extra is installed: `pip install -c
                   constraints.txt -e '.[torch]'`; skipped otherwise or with --no-torch) the
                   same flow in PyTorch: zuko.flows.RealNVP, and nflows AffineCouplingTransform
                   layers with nflows' plain MLP conditioners, each trained by torch.optim.Adam
                   in eager mode (zuko's defaults but for the sizes), with torch pinned to
                   as many threads as the process has cores and OMP_WAIT_POLICY=PASSIVE
                   (`benchmarks/harness.py`).

Every JAX step except the trainer's is built by the same `_adam_step` (jit, donated state).
Compile time is the first call; then steps are timed round-robin across the models (see
`benchmarks/harness.py`) and reported as the median (and quartiles) over the repeats. With
``--depths`` the first-call time of the JAX models is also measured for each number of layers
(compile time against depth, D = 2).

    python benchmarks/flows.py [--dims 2 64] [--batch 512] [--repeats 7] [--steps N] [--no-torch]
                               [--depths 8 16 32] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import distrax
import equinox as eqx
import flax.linen as nn
import flowjax.bijections
import flowjax.distributions
import flowjax.flows
import jax
import jax.numpy as jnp
import numpy as np
import optax
import paramax

from benchmarks import harness
from benchmarks.harness import (
    Workload,
    calibrate_steps,
    interleaved_step_times,
    time_first_call,
)
from jgen.distributions import Flow
from jgen.nets import MLP
from jgen.train import TrainState, make_train_step, stateless

__all__ = ["MODELS", "BenchConfig", "main", "run_benchmark"]

JGEN_TRAINER = "jgen (trainer)"
JGEN_PLAIN = "jgen (plain jit)"
JGEN_SCAN = "jgen (trainer, scan_layers)"
DISTRAX = "distrax"
FLOWJAX = "flowjax"
FLOOR = "MLP floor"
MODELS = (JGEN_TRAINER, JGEN_PLAIN, JGEN_SCAN, DISTRAX, FLOWJAX, FLOOR)
PEERS = (DISTRAX, FLOWJAX)  # the peers the speed-up target is about
ZUKO = "zuko"
NFLOWS = "nflows"
TORCH_MODELS = (ZUKO, NFLOWS)  # optional torch peers: extra rows and ratios

# The targets: jgen at least this much faster than the fastest peer ...
TARGET_SPEEDUP_OVER_PEERS = 1.1
# ... and at most this much slower than the MLP floor.
TARGET_TIME_OVER_FLOOR = 1.05

ACTIVATIONS = {"relu": jax.nn.relu, "gelu": nn.gelu}
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class BenchConfig:
    dims: tuple[int, ...] = (2, 64)
    batch: int = 512
    repeats: int = 7
    steps: int | None = None  # None: calibrated so a repeat takes ~target_seconds per model
    target_seconds: float = 1.0
    num_layers: int = 8
    hidden_dims: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    jgen_mask: str = "alternating"
    seed: int = 0
    warm_up: bool = True
    torch: bool = True  # add the torch peers when torch, zuko and nflows are installed
    depths: tuple[int, ...] = ()  # layer counts whose compile time is measured (D = 2)


# Model builders: each returns a Workload whose step is (carry) -> (carry, loss). -------------


def _num_params(tree: Any) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(tree)))


def _adam_step(loss_fn: Callable[[Any, Any], Any], params: Any, batch: Any) -> tuple[Any, Any]:
    """The hand-written step shared by all non-trainer models: value_and_grad + Adam.

    Returns ``(step, carry)`` with ``step(carry) -> (carry, loss)``; carry = (params, opt_state).
    """
    tx = optax.adam(LEARNING_RATE)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def update(carry, batch):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return (lambda carry: update(carry, batch)), (params, tx.init(params))


@functools.cache
def _jgen_flow(dim: int, cfg: BenchConfig, scan_layers: bool = False) -> Flow:
    from jgen.bijectors.realnvp import realnvp

    # realnvp's default conditioner is MLP(hidden_dims) with GELU; another activation is passed
    # as a conditioner factory that is otherwise the same network (zero-initialised last layer).
    conditioner = None
    if cfg.activation != "gelu":
        conditioner = functools.partial(
            MLP, tuple(cfg.hidden_dims), activation=ACTIVATIONS[cfg.activation], zero_init_last=True
        )
    bijector = realnvp(
        dim,
        num_layers=cfg.num_layers,
        hidden_dims=tuple(cfg.hidden_dims),
        mask=cfg.jgen_mask,
        conditioner=conditioner,
        scan_layers=scan_layers,
    )
    return Flow(bijector, (dim,))


@functools.cache
def _jgen_init(flow: Flow) -> Callable[[jax.Array, jax.Array], Any]:
    """The flow's jitted init, compiled once for both jgen workloads (each gets fresh arrays:
    the steps donate their state)."""
    return jax.jit(functools.partial(flow.init, method=Flow.log_prob))


def _jgen_params(flow: Flow, batch: jax.Array, seed: int) -> Any:
    variables = _jgen_init(flow)(jax.random.PRNGKey(seed), batch)
    extra = set(variables) - {"params"}
    if extra:
        raise RuntimeError(f"the benchmark expects a flow with only params, got {sorted(extra)}")
    return variables["params"]


def jgen_trainer_workload(
    dim: int, batch: jax.Array, cfg: BenchConfig, scan_layers: bool = False
) -> Workload:
    flow = _jgen_flow(dim, cfg, scan_layers)
    params = _jgen_params(flow, batch, cfg.seed)

    def loss_fn(params, batch, key):
        log_prob = flow.apply({"params": params}, batch, method=Flow.log_prob)
        return -jnp.mean(log_prob), {}

    train_step = make_train_step(stateless(loss_fn))
    state = TrainState.create(
        params=params, model_state={}, tx=optax.adam(LEARNING_RATE), rng=jax.random.PRNGKey(0)
    )

    def step(state):
        state, metrics = train_step(state, batch)
        return state, metrics["loss"]

    name = JGEN_SCAN if scan_layers else JGEN_TRAINER
    return Workload(name, step, state, {"num_params": _num_params(params)})


def jgen_plain_workload(dim: int, batch: jax.Array, cfg: BenchConfig) -> Workload:
    flow = _jgen_flow(dim, cfg)
    params = _jgen_params(flow, batch, cfg.seed)

    def loss_fn(params, batch):
        return -jnp.mean(flow.apply({"params": params}, batch, method=Flow.log_prob))

    step, carry = _adam_step(loss_fn, params, batch)
    return Workload(JGEN_PLAIN, step, carry, {"num_params": _num_params(params)})


class _SplitAffineConditioner(nn.Module):
    """Flax MLP on the conditioning part -> (log_scale, shift) of the ``num_transformed``
    transformed coordinates, with jgen's layout (raw log-scale first) and bounded scale
    log_scale = scale ⊙ tanh(raw) (learnable ``scale``, initialised to 1); last layer
    zero-initialised. With the same weights it is jgen's coupling conditioner."""

    num_transformed: int
    hidden_dims: Sequence[int]
    activation: Callable[[jax.Array], jax.Array]

    @nn.compact
    def __call__(self, x_conditioning):
        n = self.num_transformed
        net = MLP(self.hidden_dims, 2 * n, self.activation, zero_init_last=True, name="net")
        out = net(x_conditioning)
        raw_log_scale, shift = out[..., :n], out[..., n:]
        scale = self.param("scale", nn.initializers.ones_init(), (n,))
        return shift, scale * jnp.tanh(raw_log_scale)


def _scalar_affine(params):
    shift, log_scale = params
    return distrax.ScalarAffine(shift=shift, log_scale=log_scale)


class DistraxRealNVP(nn.Module):
    """The RealNVP a distrax user writes with distrax's efficient coupling: a Flax module whose
    ``__call__`` is log p(x), made of ``distrax.SplitCoupling`` layers (split at k = D // 2;
    layer i transforms x[k:] from x[:k] for even i and x[:k] from x[k:] for odd i, as jgen's
    ``mask='half'``), ``distrax.Chain`` and ``distrax.Transformed``."""

    dim: int
    num_layers: int
    hidden_dims: Sequence[int]
    activation: Callable[[jax.Array], jax.Array]

    def setup(self):
        k = self.dim // 2
        self.conditioners = [
            _SplitAffineConditioner(
                self.dim - k if i % 2 == 0 else k, tuple(self.hidden_dims), self.activation
            )
            for i in range(self.num_layers)
        ]

    def _distribution(self) -> distrax.Transformed:
        layers = [
            distrax.SplitCoupling(self.dim // 2, 1, conditioner, _scalar_affine, swap=bool(i % 2))
            for i, conditioner in enumerate(self.conditioners)
        ]
        base = distrax.Independent(
            distrax.Normal(jnp.zeros(self.dim), jnp.ones(self.dim)), reinterpreted_batch_ndims=1
        )
        return distrax.Transformed(base, distrax.Chain(layers))

    def __call__(self, x):
        return self._distribution().log_prob(x)


def distrax_workload(dim: int, batch: jax.Array, cfg: BenchConfig) -> Workload:
    model = DistraxRealNVP(dim, cfg.num_layers, tuple(cfg.hidden_dims), ACTIVATIONS[cfg.activation])
    params = jax.jit(model.init)(jax.random.PRNGKey(cfg.seed), batch)["params"]

    def loss_fn(params, batch):
        return -jnp.mean(model.apply({"params": params}, batch))

    step, carry = _adam_step(loss_fn, params, batch)
    return Workload(DISTRAX, step, carry, {"num_params": _num_params(params)})


def flowjax_workload(dim: int, batch: jax.Array, cfg: BenchConfig) -> Workload:
    if len(set(cfg.hidden_dims)) != 1:
        raise ValueError(f"flowjax needs equal hidden widths, got {cfg.hidden_dims}")
    dist = flowjax.flows.coupling_flow(
        jax.random.PRNGKey(cfg.seed),
        base_dist=flowjax.distributions.StandardNormal((dim,)),
        transformer=flowjax.bijections.Affine(),
        flow_layers=cfg.num_layers,
        nn_width=cfg.hidden_dims[0],
        nn_depth=len(cfg.hidden_dims),
        nn_activation=ACTIVATIONS[cfg.activation],
    )
    # Trainable = inexact arrays not marked NonTrainable (as flowjax's fit_to_data does).
    params, static = eqx.partition(
        dist, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )

    def loss_fn(params, batch):
        model = paramax.unwrap(eqx.combine(params, static))
        return -jnp.mean(model.log_prob(batch))

    step, carry = _adam_step(loss_fn, params, batch)
    return Workload(FLOWJAX, step, carry, {"num_params": _num_params(params)})


class MLPStack(nn.Module):
    """jgen's 8 conditioner MLPs alone: layer i maps the conditioning half (size of parity i%2)
    to 2 × the transformed half; the next layer reads its input from this output (a chain, like
    the couplings). Returns the trivial loss Σ_i mean(out_i²)."""

    dim: int
    num_layers: int
    hidden_dims: Sequence[int]
    activation: Callable[[jax.Array], jax.Array]

    @nn.compact
    def __call__(self, x):
        loss = 0.0
        h = x[..., 0::2]
        for i in range(self.num_layers):
            parity = i % 2
            num_conditioning = len(range(parity, self.dim, 2))
            num_transformed = self.dim - num_conditioning
            out = MLP(tuple(self.hidden_dims), 2 * num_transformed, activation=self.activation)(
                h[..., :num_conditioning]
            )
            loss = loss + jnp.mean(jnp.square(out))
            h = out
        return loss


def floor_workload(dim: int, batch: jax.Array, cfg: BenchConfig) -> Workload:
    model = MLPStack(dim, cfg.num_layers, tuple(cfg.hidden_dims), ACTIVATIONS[cfg.activation])
    params = jax.jit(model.init)(jax.random.PRNGKey(cfg.seed), batch)["params"]

    def loss_fn(params, batch):
        return model.apply({"params": params}, batch)

    step, carry = _adam_step(loss_fn, params, batch)
    return Workload(FLOOR, step, carry, {"num_params": _num_params(params)})


# The torch peers (optional) -------------------------------------------------------------------


def torch_available() -> bool:
    """Whether the optional torch peers can run (torch, zuko and nflows importable)."""
    try:
        import nflows  # noqa: F401
        import torch  # noqa: F401
        import zuko  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_activation(name: str):
    """(module constructor, function) of the activation, as JAX's (flax's gelu is the tanh one)."""
    import torch

    if name == "relu":
        return torch.nn.ReLU, torch.nn.functional.relu
    return (
        lambda: torch.nn.GELU(approximate="tanh"),
        lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    )


def zuko_model(dim: int, cfg: BenchConfig):
    """zuko's RealNVP: alternating masks (parity i % 2, as jgen's), conditioner MLPs
    D_in -> hidden -> 2·D_out, monotonic affine transformer. Call ``model()`` for the flow."""
    import torch
    import zuko

    torch.manual_seed(cfg.seed)
    return zuko.flows.RealNVP(
        dim,
        transforms=cfg.num_layers,
        hidden_features=tuple(cfg.hidden_dims),
        activation=_torch_activation(cfg.activation)[0],
    )


def nflows_model(dim: int, cfg: BenchConfig):
    """nflows: AffineCouplingTransform layers (alternating masks) with nflows' plain MLP
    conditioners (D_in -> hidden -> 2·D_out) in a CompositeTransform over a standard normal."""
    import torch
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow as NFlow
    from nflows.nn.nets import MLP as NMLP
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import AffineCouplingTransform

    torch.manual_seed(cfg.seed)
    activation = _torch_activation(cfg.activation)[1]

    class Conditioner(torch.nn.Module):  # nflows' MLP; the coupling also passes a context
        def __init__(self, num_in, num_out):
            super().__init__()
            self.net = NMLP((num_in,), (num_out,), list(cfg.hidden_dims), activation=activation)

        def forward(self, x, context=None):
            return self.net(x)

    # mask > 0: transformed. Layer i leaves parity i % 2 unchanged, as jgen's 'alternating'.
    layers = [
        AffineCouplingTransform(torch.as_tensor(np.arange(dim) % 2 != i % 2).int(), Conditioner)
        for i in range(cfg.num_layers)
    ]
    return NFlow(CompositeTransform(layers), StandardNormal([dim]))


def _torch_workload(name: str, dim: int, batch: jax.Array, cfg: BenchConfig) -> Workload:
    import torch

    harness.configure_torch()
    model = {ZUKO: zuko_model, NFLOWS: nflows_model}[name](dim, cfg)
    log_prob = (lambda x: model().log_prob(x)) if name == ZUKO else model.log_prob
    data = torch.from_numpy(np.array(batch))  # a writable host copy
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

    def step(carry):
        optimizer.zero_grad()
        loss = -log_prob(data).mean()
        loss.backward()
        optimizer.step()
        return carry, loss.item()  # a host float: the step has finished (torch CPU is eager)

    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Workload(name, step, 0, {"num_params": int(num_params)})


def zuko_workload(dim: int, batch: jax.Array, cfg: BenchConfig) -> Workload:
    return _torch_workload(ZUKO, dim, batch, cfg)


def nflows_workload(dim: int, batch: jax.Array, cfg: BenchConfig) -> Workload:
    return _torch_workload(NFLOWS, dim, batch, cfg)


BUILDERS = {
    JGEN_TRAINER: jgen_trainer_workload,
    JGEN_PLAIN: jgen_plain_workload,
    JGEN_SCAN: functools.partial(jgen_trainer_workload, scan_layers=True),
    DISTRAX: distrax_workload,
    FLOWJAX: flowjax_workload,
    FLOOR: floor_workload,
    ZUKO: zuko_workload,
    NFLOWS: nflows_workload,
}


def models(cfg: BenchConfig) -> tuple[str, ...]:
    """The models this configuration runs: the JAX ones, and the torch peers when asked for and
    installed."""
    return MODELS + (TORCH_MODELS if cfg.torch and torch_available() else ())


# Running and reporting -----------------------------------------------------------------------


def _bench_dim(dim: int, cfg: BenchConfig, log: Callable[[str], None]) -> list[dict[str, Any]]:
    data = jax.random.normal(jax.random.PRNGKey(cfg.seed + 1), (cfg.batch, dim), jnp.float32)
    workloads, compile_s = [], {}
    for name in models(cfg):
        w = BUILDERS[name](dim, data, cfg)
        compile_s[name] = time_first_call(w)
        log(f"  D={dim} {name}: first call (trace + compile + 1 step) {compile_s[name]:.2f} s")
        workloads.append(w)
    if cfg.steps is None:
        steps = calibrate_steps(workloads, target_seconds=cfg.target_seconds)
    else:
        steps = cfg.steps
        for w in workloads:  # warm-up
            w.advance(max(1, min(steps, 5)))
    log(f"  D={dim}: {cfg.repeats} interleaved repeats of {steps} steps per model")
    times, cpu_times = interleaved_step_times(workloads, num_steps=steps, repeats=cfg.repeats)
    rows = []
    for w in workloads:
        row = harness.timed_row(w.name, times[w.name], cpu_times[w.name])
        seconds = row["median_ms_per_step"] / 1e3
        rows.append(
            {
                **row,
                "dim": dim,
                "batch": cfg.batch,
                "num_params": w.info["num_params"],
                "compile_s": compile_s[w.name],
                "steps_per_repeat": steps,
                "steps_per_s": 1.0 / seconds,
                "examples_per_s": cfg.batch / seconds,
                "first_loss": w.losses[0],
                "last_loss": w.losses[-1],
            }
        )
    _add_ratios(rows)
    return rows


def compile_times(cfg: BenchConfig, depths: Sequence[int], dim: int = 2) -> list[dict[str, Any]]:
    """First-call seconds (trace + compile + one step) of every JAX model at each depth."""
    data = jax.random.normal(jax.random.PRNGKey(cfg.seed + 1), (cfg.batch, dim), jnp.float32)
    rows = []
    for depth in depths:
        deep = dataclasses.replace(cfg, num_layers=depth)
        for name in MODELS:
            rows.append(
                {
                    "model": name,
                    "dim": dim,
                    "num_layers": depth,
                    "first_call_s": time_first_call(BUILDERS[name](dim, data, deep)),
                }
            )
    return rows


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """jgen speed-up over each peer (peer / jgen trainer time) and time / floor time."""
    ms = {row["model"]: row["median_ms_per_step"] for row in rows}
    for row in rows:
        row["jgen_speedup"] = (
            row["median_ms_per_step"] / ms[JGEN_TRAINER]
            if row["model"] in PEERS + TORCH_MODELS
            else None
        )
        row["time_over_floor"] = row["median_ms_per_step"] / ms[FLOOR]


def _targets(rows: list[dict[str, Any]], dims: Sequence[int]) -> list[dict[str, Any]]:
    out = []
    for dim in dims:
        ms = {r["model"]: r["median_ms_per_step"] for r in rows if r["dim"] == dim}
        fastest_peer = min(PEERS, key=lambda p: ms[p])
        for jgen in (JGEN_TRAINER, JGEN_PLAIN, JGEN_SCAN):
            speedup = ms[fastest_peer] / ms[jgen]
            over_floor = ms[jgen] / ms[FLOOR]
            out.append(
                {
                    "dim": dim,
                    "jgen": jgen,
                    "fastest_peer": fastest_peer,
                    "speedup_over_fastest_peer": speedup,
                    "speedup_target": TARGET_SPEEDUP_OVER_PEERS,
                    "speedup_met": speedup >= TARGET_SPEEDUP_OVER_PEERS,
                    "time_over_floor": over_floor,
                    "floor_target": TARGET_TIME_OVER_FLOOR,
                    "floor_met": over_floor <= TARGET_TIME_OVER_FLOOR,
                }
            )
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _torch_lines(record: dict[str, Any]) -> list[str]:
    """The torch peers' ratios (peer time / jgen trainer time), or why they were skipped."""
    result = record["metrics"]
    if result.get("torch_skipped"):
        return ["", f"Torch peers (zuko, nflows) skipped: {result['torch_skipped']}."]
    versions, threads = record["versions"], record["threads"]
    lines = [
        "",
        f"Torch peers (torch {versions['torch']}, zuko {versions['zuko']}, nflows "
        f"{versions['nflows']}; eager mode, {threads.get('torch_num_threads')} threads, "
        f"OMP_WAIT_POLICY={threads.get('OMP_WAIT_POLICY')}):",
        "",
    ]
    for r in result["rows"]:
        if r["model"] in TORCH_MODELS:
            lines.append(
                f"- D={r['dim']}, {r['model']} / jgen (trainer) = {r['jgen_speedup']:.2f}× wall, "
                f"{r['median_cpu_ms_per_step'] / _cpu_ms(result, r['dim']):.2f}× CPU time"
            )
    return lines


def _cpu_ms(result: dict[str, Any], dim: int) -> float:
    return next(
        r["median_cpu_ms_per_step"]
        for r in result["rows"]
        if r["model"] == JGEN_TRAINER and r["dim"] == dim
    )


def _compile_lines(result: dict[str, Any]) -> list[str]:
    rows = result.get("compile_by_depth") or []
    if not rows:
        return []
    depths = sorted({r["num_layers"] for r in rows})
    seconds = {(r["model"], r["num_layers"]): r["first_call_s"] for r in rows}
    lines = [
        "",
        f"Compile time against depth (first call: trace + compile + one step, D = "
        f"{rows[0]['dim']}, seconds):",
        "",
        "| model | " + " | ".join(f"{d} layers" for d in depths) + " |",
        "|---|" + "---:|" * len(depths),
    ]
    for model in dict.fromkeys(r["model"] for r in rows):
        cells = " | ".join(f"{seconds[(model, d)]:.2f}" for d in depths)
        lines.append(f"| {model} | {cells} |")
    return lines


def render_markdown(record: dict[str, Any]) -> str:
    result = record["metrics"]
    cfg, hw = result["config"], record["hardware"]
    lines = [
        "# RealNVP train-step throughput",
        "",
        f"{cfg['num_layers']} affine couplings, conditioners {tuple(cfg['hidden_dims'])} "
        f"{cfg['activation']}, batch {cfg['batch']}, float32, Adam({LEARNING_RATE:g}). "
        f"{hw['cpu']} ({hw['cores_available']} cores), backend {hw['backend']}, jax "
        f"{record['versions']['jax']}, {record['date']}. Median (IQR) of {cfg['repeats']} "
        "interleaved repeats.",
        "",
        harness.load_line(record["load_average"]),
        "",
        "| model | D | params | compile s | ms/step (IQR) | examples/s "
        "| jgen speed-up (peer/jgen) | time / floor | CPU ms/step | cores used |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['dim']} | {r['num_params']:,} | {r['compile_s']:.2f} "
            f"| {r['median_ms_per_step']:.3f} ({r['ms_per_step']['iqr']:.3f}) "
            f"| {r['examples_per_s']:,.0f} | {_fmt(r['jgen_speedup'], '.2f')} "
            f"| {r['time_over_floor']:.2f} | {r['median_cpu_ms_per_step']:.3f} "
            f"| {r['cores_used']:.2f} |"
        )
    lines += [
        "",
        "Targets (jgen ≥ "
        f"{TARGET_SPEEDUP_OVER_PEERS}× faster than the fastest JAX peer; jgen time ≤ "
        f"{TARGET_TIME_OVER_FLOOR}× the floor):",
        "",
    ]
    for t in result["targets"]:
        lines.append(
            f"- D={t['dim']}, {t['jgen']}: speed-up over the fastest peer ({t['fastest_peer']}) "
            f"{t['speedup_over_fastest_peer']:.2f}× → {'MET' if t['speedup_met'] else 'NOT MET'}; "
            f"time / floor {t['time_over_floor']:.2f}× → {'MET' if t['floor_met'] else 'NOT MET'}"
        )
    lines += _torch_lines(record)
    lines += _compile_lines(result)
    lines += [
        "",
        "Notes:",
        "- jgen speed-up is relative to jgen (trainer), the step jgen's trainer runs "
        "(non-finite guard, grad-norm metric, PRNG fold-in); jgen (plain jit) is the same "
        "model in the hand-written jitted Adam step that distrax, flowjax and the floor use.",
        f"- jgen's couplings split the vector (mask '{cfg['jgen_mask']}'): a conditioner reads "
        "the D/2 conditioning coordinates and outputs log-scale and shift for the D/2 "
        "transformed ones. distrax's SplitCoupling does the same with contiguous halves; "
        "flowjax also splits (first D/2 conditioning) and adds a fixed permutation after each "
        "coupling; its Affine transformer uses a softplus scale.",
        "- jgen and distrax bound the log-scale as scale·tanh(raw) with a learnable scale vector; "
        "the floor is the conditioner MLPs alone (chained, loss Σ mean(out²)), which a "
        "coupling flow cannot be faster than.",
        "- zuko and nflows (torch, eager, optional) have the same layers, masks and conditioner "
        "sizes; their affine transformers bound the scale differently (zuko: a monotonic affine "
        "with a bounded log-scale; nflows: sigmoid(raw + 2) + 1e-3). Their compile s is the "
        "first step (no compilation). The speed-up target is about the JAX peers only.",
        "- compile s: the first call (tracing, compilation and one step), after a warm-up of "
        "every library on a tiny model so that no model pays JAX's one-time start-up costs.",
        "- ms/step is wall time (the median over the repeats; ratios use it). CPU ms/step is the "
        "process CPU time of the same steps summed over threads; cores used = CPU / wall.",
    ]
    return "\n".join(lines) + "\n"


def _warm_up(cfg: BenchConfig) -> None:
    """Run every builder once on a tiny model, so JAX's and each library's one-time costs (backend
    start-up, first compilations of small helper ops) are not charged to the first model timed."""
    tiny = BenchConfig(num_layers=1, hidden_dims=(4,), activation=cfg.activation, torch=cfg.torch)
    data = jnp.ones((2, 2), jnp.float32)
    for name in models(cfg):
        BUILDERS[name](2, data, tiny).advance(2)


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every model at every D, then (with ``cfg.depths``) compile times against depth."""
    if cfg.warm_up:
        _warm_up(cfg)
    rows = []
    for dim in cfg.dims:
        rows += _bench_dim(dim, cfg, log)
    return {
        "config": config_dict(cfg),
        "rows": rows,
        "targets": _targets(rows, cfg.dims),
        "torch_skipped": _torch_skipped(cfg),
        "compile_by_depth": compile_times(cfg, cfg.depths),
    }


def config_dict(cfg: BenchConfig) -> dict[str, Any]:
    return {**cfg.__dict__, **{k: list(getattr(cfg, k)) for k in ("dims", "hidden_dims", "depths")}}


def _torch_skipped(cfg: BenchConfig) -> str | None:
    """Why the torch peers did not run (None when they did)."""
    if not cfg.torch:
        return "--no-torch"
    if not torch_available():
        return "torch, zuko or nflows not installed (pip install -c constraints.txt -e '.[torch]')"
    return None


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 64], help="event sizes D")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per model (median)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per repeat (default: enough for --target-seconds per repeat of the slowest)",
    )
    p.add_argument("--target-seconds", type=float, default=1.0)
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--jgen-mask", choices=("alternating", "half"), default="alternating")
    p.add_argument("--no-torch", action="store_true", help="leave out the torch peers")
    p.add_argument(
        "--depths", type=int, nargs="*", default=[], help="layer counts for compile times (D=2)"
    )
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for a smoke test: batch 16, 1 repeat, 2 steps, 2 layers of width 16",
    )
    return p.parse_args(argv)


def _config(args: argparse.Namespace) -> BenchConfig:
    cfg = BenchConfig(
        dims=tuple(args.dims),
        batch=args.batch,
        repeats=args.repeats,
        steps=args.steps,
        target_seconds=args.target_seconds,
        activation=args.activation,
        jgen_mask=args.jgen_mask,
        torch=not args.no_torch,
        depths=tuple(args.depths),
    )
    if args.quick:
        cfg = BenchConfig(
            dims=cfg.dims,
            batch=16,
            repeats=1,
            steps=2,
            num_layers=2,
            hidden_dims=(16, 16),
            activation=cfg.activation,
            jgen_mask=cfg.jgen_mask,
            warm_up=False,
            torch=cfg.torch,
            depths=tuple(range(1, len(cfg.depths) + 1)),  # 1, 2, ... layers
        )
    if min(cfg.dims) < 2 or cfg.batch < 1 or cfg.repeats < 1 or (cfg.steps or 1) < 1:
        raise SystemExit(f"invalid settings: {cfg}")
    return cfg


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parse_args(argv)
    cfg = _config(args)
    print(f"RealNVP train-step benchmark on {jax.default_backend()}: {cfg}")
    with harness.LoadMonitor() as monitor:
        result = run_benchmark(cfg)
    record = harness.write_record(
        args.out / "flows.json", config=config_dict(cfg), metrics=result, load=monitor.summary()
    )
    table = render_markdown(record)
    (args.out / "flows.md").write_text(table)
    print()
    print(table)
    print(f"wrote {args.out / 'flows.json'} and {args.out / 'flows.md'}")
    return record


if __name__ == "__main__":
    main()
