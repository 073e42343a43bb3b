"""float64 end to end: flows built, initialised and trained with `jgen.train.fit` under
``jax.enable_x64(True)`` have float64 parameters, optimiser state, log-probs and samples, and
their float64 log-probs agree with float32 ones computed from the same parameters cast down.

Two tiny models: a RealNVP on two moons (trained data-parallel over the 4 simulated devices)
and a multi-scale RealNVP with ActNorm on 8x8 digits (dequantised, logit pre-processing).

Where float64 is not automatic: `Flow.sample` / `sample_and_log_prob` draw their base noise in
``dtype``, whose default is float32 also under x64 (the tests pass ``dtype=jnp.float64``), and
`DensityObjective.sample` has no dtype argument, so its noise is float32: its samples come out
float64 (the float64 parameters promote the computation) but start from float32 noise.
Parameters follow JAX's default float type (couplings included, ``param_dtype=None``) and
computations follow the input's dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.data import Dataset, load_dataset
from jgen.distributions import Flow, LogitPreprocess, uniform_dequantize
from jgen.flows import DensityObjective
from jgen.train import TrainConfig, fit, make_optimizer


def _moons():
    dataset = load_dataset("moons", n_train=512, n_test=128)
    flow = Flow(jb.realnvp(2, num_layers=4, hidden_dims=(16,)), (2,))
    config = TrainConfig(
        steps=40, batch_size=64, log_every=10, eval_batch_size=128, progress=False,
        data_parallel=True,
    )  # fmt: skip
    return DensityObjective(flow), dataset, config, 3e-3


def _digits():
    full = load_dataset("digits")
    dataset = Dataset(
        name="digits", train=full.train[:128], test=full.test[:32], num_levels=full.num_levels
    )
    bijector = jb.Chain(
        [
            LogitPreprocess(0.05, event_ndims=3),
            jb.multiscale_realnvp(
                (8, 8, 1),
                num_scales=2,
                num_couplings_per_scale=1,
                num_final_couplings=1,
                channels=4,
                num_blocks=0,
                actnorm=True,
            ),
        ]
    )
    flow = Flow(bijector, (8, 8, 1))
    config = TrainConfig(
        steps=30, batch_size=16, log_every=10, eval_batch_size=32, progress=False,
        data_parallel=False,
    )  # fmt: skip
    return DensityObjective(flow, num_levels=full.num_levels), dataset, config, 1e-2


MODELS = {"realnvp_moons": _moons, "multiscale_digits": _digits}
KINDS = sorted(MODELS)


class _JittedInit:
    """The objective with its ``init`` jitted: Flax's init run eagerly compiles each of its many
    small operations separately, which costs more than compiling it once."""

    def __init__(self, objective):
        self._objective = objective
        self.init = jax.jit(objective.init)

    def __getattr__(self, name):
        return getattr(self._objective, name)


@functools.cache
def trained(kind: str):
    """(objective, dataset, FitResult, float64 data for log-prob checks), trained under x64."""
    with jax.enable_x64(True):
        objective, dataset, config, learning_rate = MODELS[kind]()
        tx = make_optimizer(learning_rate=learning_rate, total_steps=config.steps)
        result = fit(_JittedInit(objective), dataset, tx, config)
        x = jnp.asarray(dataset.test[:16])
        if objective.num_levels is not None:
            x = uniform_dequantize(jax.random.key(0), x, objective.num_levels)
        else:
            x = x.astype(jnp.float64)
    return objective, dataset, result, np.asarray(x)


def _float_leaves(tree):
    return [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)]


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_state_and_optimiser_are_float64(kind):
    _, _, result, _ = trained(kind)
    state = result.state
    for name, tree in (
        ("params", state.params),
        ("model_state", state.model_state),
        ("opt_state", state.opt_state),
    ):
        dtypes = {str(leaf.dtype) for leaf in _float_leaves(tree)}
        assert dtypes <= {"float64"}, f"{name} has leaves of dtype {dtypes}"
    assert _float_leaves(state.params), "no parameters"


@pytest.mark.parametrize("kind", KINDS)
def test_training_in_float64_decreases_the_loss(kind):
    _, _, result, _ = trained(kind)
    losses = [r["loss"] for r in result.history if r["split"] == "train"]
    assert len(losses) >= 3 and np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0] - 0.05 * abs(losses[0]), losses
    assert result.stopped_early is None
    assert all(r["skipped"] == 0 for r in result.history if r["split"] == "train")
    assert result.eval_metrics and all(np.isfinite(v) for v in result.eval_metrics.values())


def _log_prob(objective, params, model_state, x):
    return jax.jit(lambda p, s, x: objective.log_prob(p, s, x))(params, model_state, x)


@pytest.mark.parametrize("kind", KINDS)
def test_log_prob_and_samples_are_float64(kind):
    objective, dataset, result, x = trained(kind)
    params, model_state = result.state.params, result.state.model_state

    @jax.jit
    def sample_and_log_prob(variables, key):
        return objective.flow.apply(
            variables, key, 8, dtype=jnp.float64, method=Flow.sample_and_log_prob
        )

    with jax.enable_x64(True):
        log_p = _log_prob(objective, params, model_state, jnp.asarray(x))
        samples, log_q = sample_and_log_prob({"params": params, **model_state}, jax.random.key(1))
        log_p_samples = _log_prob(objective, params, model_state, samples)
    for name, value in (("log_prob", log_p), ("samples", samples), ("sample log-prob", log_q)):
        assert value.dtype == jnp.float64, f"{name} is {value.dtype}"
        assert np.all(np.isfinite(np.asarray(value))), name
    assert samples.shape == (8, *dataset.event_shape)
    # One forward pass and one inverse pass give the same density in float64.
    np.testing.assert_allclose(log_q, log_p_samples, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_float64_log_prob_matches_float32_with_the_same_parameters(kind):
    objective, _, result, x = trained(kind)
    params, model_state = result.state.params, result.state.model_state
    with jax.enable_x64(True):
        log_p64 = np.asarray(_log_prob(objective, params, model_state, jnp.asarray(x)))
    to32 = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float32), tree)
    log_p32 = _log_prob(objective, to32(params), to32(model_state), jnp.asarray(x, jnp.float32))
    assert log_p32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(log_p32), log_p64, rtol=1e-4, atol=1e-4)
