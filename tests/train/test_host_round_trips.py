"""Host round trips of the training loop in steady state (what an accelerator pays per step).

`fit` runs with its step wrapped so that, from step GUARD_STEP to the last step, the loop body
(batch preparation, dispatch, bookkeeping) is checked for host round trips:

* device→host reads: ``jax.transfer_guard_device_to_host('disallow_explicit')`` makes any read
  (``float(x)``, ``np.asarray(x)``, ``jax.device_get``) raise on an accelerator. On the CPU
  backend a host read is zero-copy and the guard does not fire, so reads through
  ``jax.Array._value`` (``float``, ``int``, ``bool``, ``tolist``, ``jax.device_get``) and waits
  (``block_until_ready``) are also counted; only ``np.asarray`` of a CPU array escapes that
  count (the guard covers it on accelerators: run this file there too);
* host→device copies: ``jax.transfer_guard_host_to_device('disallow')`` makes an implicit one
  (a NumPy array handed to a jitted function) raise on every backend; the one explicit copy a
  step needs, its batch (``shard_batch``), is counted.

Logging, evaluation, checkpoints and the non-finite check are off: they read from the device
on purpose every ``log_every`` / ``eval_every`` / ``checkpoint_every`` / ``max_nonfinite_steps``
steps. A flow and a CNF (whose adaptive solve is a device-side while loop) are checked, and a
loop that reads the loss every step is shown to fail the check.
"""

import jax
import numpy as np
import pytest
from jax._src.array import ArrayImpl

import jgen.train.loop as loop
from jgen import bijectors as jb
from jgen.cnf import MLPField, make_cnf
from jgen.data import Dataset
from jgen.distributions import Flow
from jgen.flows import DensityObjective
from jgen.train import TrainConfig, fit, make_optimizer

STEPS = 6
GUARD_STEP = 3  # steps are counted from 1, as dispatched by the loop


def _guarded_fit(objective, monkeypatch, *, read_loss: bool = False) -> dict[str, int]:
    """`fit` for STEPS steps with the checks on from GUARD_STEP (module docstring); returns
    the counts seen while they were on."""
    counts = {"dispatched": 0, "batch_puts": 0, "host_reads": 0, "waits": 0}
    guards = []
    build_step, put, value = loop.run_train_step, loop.shard_batch, ArrayImpl._value
    block, block_array = jax.block_until_ready, ArrayImpl.block_until_ready

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += bool(guards)
            return fn(*args, **kwargs)

        return wrapper

    def guarded_builder(*args, **kwargs):
        step = build_step(*args, **kwargs)

        def dispatch(state, batch):
            counts["dispatched"] += 1
            if counts["dispatched"] == GUARD_STEP:
                guards.append(jax.transfer_guard_device_to_host("disallow_explicit"))
                guards.append(jax.transfer_guard_host_to_device("disallow"))
                for g in guards:
                    g.__enter__()
            if counts["dispatched"] == STEPS:  # the loop reads the state after the last step
                while guards:
                    guards.pop().__exit__(None, None, None)
            state, metrics = step(state, batch)
            if read_loss:
                float(metrics["loss"])  # a per-step host read: what the check must catch
            return state, metrics

        return dispatch

    monkeypatch.setattr(loop, "run_train_step", guarded_builder)
    monkeypatch.setattr(loop, "shard_batch", counted("batch_puts", put))
    monkeypatch.setattr(ArrayImpl, "_value", property(counted("host_reads", value.fget)))
    monkeypatch.setattr(ArrayImpl, "block_until_ready", counted("waits", block_array))
    monkeypatch.setattr(jax, "block_until_ready", counted("waits", block))
    config = TrainConfig(
        steps=STEPS, batch_size=16, log_every=0, eval_every=0, checkpoint_every=0,
        max_nonfinite_steps=0, progress=False, num_devices=1, eval_batch_size=32,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    train, test = (rng.standard_normal((n, 2)).astype(np.float32) for n in (256, 32))
    tx = make_optimizer(learning_rate=1e-2, total_steps=STEPS)
    try:
        result = fit(objective, Dataset(name="normal", train=train, test=test), tx, config)
    finally:
        while guards:
            guards.pop().__exit__(None, None, None)
    assert int(result.state.step) == STEPS and np.isfinite(result.eval_metrics["nll"])
    assert counts["dispatched"] == STEPS
    return counts


def _objective(model: str) -> DensityObjective:
    if model == "flow":
        bijector = jb.realnvp(2, num_layers=2, hidden_dims=(8,))
    else:
        bijector = make_cnf(MLPField((4,)), (2,), solver="bosh3", rtol=1e-2, atol=1e-2)
    return DensityObjective(Flow(bijector, (2,)))


@pytest.mark.parametrize("model", ["flow", "cnf"])
def test_steady_state_steps_do_not_sync_with_the_host(model, monkeypatch):
    counts = _guarded_fit(_objective(model), monkeypatch)
    assert counts["host_reads"] == 0 and counts["waits"] == 0
    # One explicit batch placement per guarded loop body (steps GUARD_STEP + 1 .. STEPS: the
    # batch of step GUARD_STEP was placed before the checks went on) and nothing else.
    assert counts["batch_puts"] == STEPS - GUARD_STEP


def test_a_loop_that_reads_the_loss_every_step_fails_the_check(monkeypatch):
    try:
        counts = _guarded_fit(_objective("flow"), monkeypatch, read_loss=True)
    except Exception as e:  # an accelerator: the transfer guard fires
        assert "Disallowed device-to-host transfer" in str(e)
    else:  # the CPU backend: the read is counted
        assert counts["host_reads"] == STEPS - GUARD_STEP
