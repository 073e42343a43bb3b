"""Neural spline flow train step and test NLL: jgen against flowjax, distrax and zuko.

The same NSF on 8gaussians (D = 2): 8 rational-quadratic spline couplings, K = 8 bins on
[-B, B] with identity tails, 2x128 ReLU MLP conditioners, Adam(1e-3), batch 512; every model
draws its batch of step t from the same training set with the same keys:

  jgen      jgen.bijectors.neural_spline_flow in jgen.distributions.Flow.
  flowjax   flowjax.flows.coupling_flow with transformer RationalQuadraticSpline(knots=K-1,
            interval=B) (flowjax counts inner knots: K - 1 of them make K bins).
  distrax   distrax.SplitCoupling layers with distrax.RationalQuadraticSpline
            (boundary_slopes='identity') from Flax MLP conditioners.
  zuko      (only when the optional torch extra is installed, `pip install -c constraints.txt
            -e '.[torch]'`; skipped otherwise or with --no-torch) zuko's NSF, i.e.
            zuko.flows.MAF with MonotonicRQSTransform(bound=B) and passes=2 (coupling),
            torch.optim.Adam in eager mode, torch's threads pinned by `harness.configure_torch`.
            With D = 2 and passes=2 a zuko layer also transforms the conditioning coordinate by
            an unconditional spline (its parameters are the MADE's output biases), so it has
            slightly more parameters than the others.

Reported: ms per train step (median over interleaved repeats, `benchmarks/harness.py`) and the
test NLL (nats, 10k points) after the same number of steps. The target (checked on a quiet
machine): jgen's step at least 1.2x faster than the fastest peer, with no worse NLL. Under load
the record says ``"publishable": false``.

    python benchmarks/splines.py [--steps 2000] [--repeats 5] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
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
from jgen import bijectors as jb
from jgen.data import sample_toy
from jgen.distributions import Flow
from jgen.nets import MLP

JGEN, FLOWJAX, DISTRAX, ZUKO = "jgen", "flowjax", "distrax", "zuko"
LAYERS, BINS, BOUND, HIDDEN, BATCH, LEARNING_RATE = 8, 8, 4.0, (128, 128), 512, 1e-3
TARGET_SPEEDUP = 1.2


def batch_index(t, num_examples: int) -> jax.Array:
    """The indices of step t's batch into the training set (every model draws the same)."""
    return jax.random.randint(jax.random.fold_in(jax.random.key(0), t), (BATCH,), 0, num_examples)


def _adam_workload(
    name: str, log_prob: Callable[[Any, jax.Array], jax.Array], params: Any, data: jax.Array
):
    """A `harness.Workload` whose step draws batch t from ``data`` (the same keys for every
    model) and takes one Adam step on the mean NLL; and the test-NLL function of its carry."""
    tx = optax.adam(LEARNING_RATE)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(carry):
        params, opt_state, t = carry
        index = batch_index(t, len(data))
        loss, grads = jax.value_and_grad(lambda p: -jnp.mean(log_prob(p, data[index])))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, t + 1), loss

    size = int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
    workload = harness.Workload(name, step, (params, tx.init(params), 0), {"num_params": size})
    nll = jax.jit(lambda carry, x: -jnp.mean(log_prob(carry[0], x)))
    return workload, nll


def jgen_model(data):
    conditioner = functools.partial(MLP, HIDDEN, activation=jax.nn.relu, zero_init_last=True)
    flow = Flow(
        jb.neural_spline_flow(
            2, num_layers=LAYERS, num_bins=BINS, bound=BOUND, conditioner=conditioner
        ),
        (2,),
    )
    params = jax.jit(flow.init)(jax.random.key(0), data[:BATCH])["params"]
    return _adam_workload(JGEN, lambda p, x: flow.apply({"params": p}, x), params, data)


def flowjax_model(data):
    dist = flowjax.flows.coupling_flow(
        jax.random.key(0),
        base_dist=flowjax.distributions.StandardNormal((2,)),
        transformer=flowjax.bijections.RationalQuadraticSpline(knots=BINS - 1, interval=BOUND),
        flow_layers=LAYERS,
        nn_width=HIDDEN[0],
        nn_depth=len(HIDDEN),
        nn_activation=jax.nn.relu,
    )
    params, static = eqx.partition(
        dist, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )

    def log_prob(params, x):
        return paramax.unwrap(eqx.combine(params, static)).log_prob(x)

    return _adam_workload(FLOWJAX, log_prob, params, data)


class DistraxNSF(nn.Module):
    """distrax.SplitCoupling layers (split 1 | 1, swapped every other layer) whose inner
    bijector is distrax.RationalQuadraticSpline with identity boundary slopes."""

    @nn.compact
    def __call__(self, x):
        layers = []
        for i in range(LAYERS):
            net = MLP(HIDDEN, 3 * BINS + 1, activation=jax.nn.relu, name=f"net{i}")
            layers.append(
                distrax.SplitCoupling(
                    1, 1, lambda h, net=net: net(h)[..., None, :],
                    lambda p: distrax.RationalQuadraticSpline(
                        p, -BOUND, BOUND, boundary_slopes="identity"
                    ),
                    swap=bool(i % 2),
                )
            )  # fmt: skip
        base = distrax.Independent(distrax.Normal(jnp.zeros(2), jnp.ones(2)), 1)
        return distrax.Transformed(base, distrax.Chain(layers)).log_prob(x)


def distrax_model(data):
    model = DistraxNSF()
    params = jax.jit(model.init)(jax.random.key(0), data[:BATCH])["params"]
    return _adam_workload(DISTRAX, lambda p, x: model.apply({"params": p}, x), params, data)


def torch_available() -> bool:
    """Whether the optional torch peer can run (torch and zuko importable)."""
    try:
        import torch  # noqa: F401
        import zuko  # noqa: F401
    except ImportError:
        return False
    return True


class _HostBatchIndices:
    """`batch_index` for a host (torch) loop: made by JAX 1024 steps at a time, so the timed
    step pays one small JAX call per 1024 steps instead of one per step."""

    BLOCK = 1024

    def __init__(self, num_examples: int):
        make = jax.vmap(lambda t: batch_index(t, num_examples))
        self._make = jax.jit(lambda start: make(start + jnp.arange(self.BLOCK)))
        self._start, self._block = None, None

    def __call__(self, t: int) -> np.ndarray:
        start = t - t % self.BLOCK
        if start != self._start:
            self._start, self._block = start, np.array(self._make(start))  # writable
        return self._block[t - start]


def zuko_model(data):
    """zuko's NSF with bound B (module docstring), trained by torch.optim.Adam in eager mode;
    the workload's carry is the step number."""
    import torch
    import zuko

    harness.configure_torch()
    torch.manual_seed(0)
    flow = zuko.flows.MAF(
        2, transforms=LAYERS, passes=2, hidden_features=HIDDEN, activation=torch.nn.ReLU,
        univariate=functools.partial(zuko.transforms.MonotonicRQSTransform, bound=BOUND),
        shapes=[(BINS,), (BINS,), (BINS - 1,)],
    )  # fmt: skip
    train = torch.from_numpy(np.array(data))  # a writable host copy
    indices = _HostBatchIndices(len(data))
    optimizer = torch.optim.Adam(flow.parameters(), lr=LEARNING_RATE)

    def step(t):
        optimizer.zero_grad()
        loss = -flow().log_prob(train[torch.from_numpy(indices(t))]).mean()
        loss.backward()
        optimizer.step()
        return t + 1, loss.item()  # a host float: the step has finished (torch CPU is eager)

    def nll(t, x):
        with torch.no_grad():
            return -flow().log_prob(torch.from_numpy(np.array(x))).mean().item()

    size = sum(p.numel() for p in flow.parameters() if p.requires_grad)
    return harness.Workload(ZUKO, step, 0, {"num_params": int(size)}), nll


JAX_BUILDERS = {JGEN: jgen_model, FLOWJAX: flowjax_model, DISTRAX: distrax_model}
BUILDERS = {**JAX_BUILDERS, **({ZUKO: zuko_model} if torch_available() else {})}


def run(
    steps: int, repeats: int, *, torch: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    train = jnp.asarray(sample_toy("8gaussians", 50_000, seed=0), jnp.float32)
    test = jnp.asarray(sample_toy("8gaussians", 10_000, seed=1), jnp.float32)
    builders = BUILDERS if torch else JAX_BUILDERS
    built = {name: build(train) for name, build in builders.items()}
    workloads = [w for w, _ in built.values()]
    compile_s = {w.name: harness.time_first_call(w) for w in workloads}
    per_repeat = max(1, (steps - 1) // repeats)
    wall, cpu = harness.interleaved_step_times(workloads, num_steps=per_repeat, repeats=repeats)
    rows = []
    for w in workloads:
        nll = float(built[w.name][1](w.carry, test))
        row = harness.timed_row(w.name, wall[w.name], cpu[w.name])
        row.update(w.info, compile_s=compile_s[w.name], steps=1 + per_repeat * repeats,
                   test_nll=nll)  # fmt: skip
        log(f"{w.name:8s} {row['median_ms_per_step']:8.2f} ms/step  test NLL {nll:.4f}")
        rows.append(row)
    by_name = {r["model"]: r for r in rows}
    fastest_peer = min(
        (r for r in rows if r["model"] != JGEN), key=lambda r: r["median_ms_per_step"]
    )
    speedup = fastest_peer["median_ms_per_step"] / by_name[JGEN]["median_ms_per_step"]
    best_peer_nll = min(r["test_nll"] for r in rows if r["model"] != JGEN)
    target = {
        "fastest_peer": fastest_peer["model"],
        "speedup_over_fastest_peer": speedup,
        "speedup_target": TARGET_SPEEDUP,
        "nll_not_worse_than_best_peer": by_name[JGEN]["test_nll"] <= best_peer_nll + 1e-3,
        "met": speedup >= TARGET_SPEEDUP and by_name[JGEN]["test_nll"] <= best_peer_nll + 1e-3,
    }
    return {"rows": rows, "target": target}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 steps, 2 repeats (smoke test)")
    parser.add_argument("--no-torch", action="store_true", help="leave out the torch peer (zuko)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    steps, repeats = (3, 2) if args.quick else (args.steps, args.repeats)
    config = dict(
        layers=LAYERS, bins=BINS, bound=BOUND, hidden=list(HIDDEN), batch=BATCH,
        learning_rate=LEARNING_RATE, steps=steps, repeats=repeats, data="8gaussians",
    )  # fmt: skip
    with harness.LoadMonitor() as monitor:
        metrics = run(steps, repeats, torch=not args.no_torch)
    name = "splines_quick.json" if args.quick else "splines.json"
    record = harness.write_record(
        args.out / name, config=config, metrics=metrics, load=monitor.summary()
    )
    print(harness.load_line(record["load_average"]))
    return record


if __name__ == "__main__":
    main()
