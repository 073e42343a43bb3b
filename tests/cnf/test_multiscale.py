"""FFJORD's multi-scale CNF: one bijector (round trip, log-det against the Jacobian, latent
shape), argument errors, and maximum-likelihood learning on the 8x8 digits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors import Chain, FactorOut
from jgen.cnf import CNF, ConcatSquashField, FlattenedField, MLPField, multiscale_cnf
from jgen.data import load_dataset
from jgen.distributions import Flow, LogitPreprocess
from jgen.flows import DensityObjective
from jgen.validation import ValidationError
from tests.cnf.training import adam_steps


def _mlp_field(shape):
    return FlattenedField(MLPField((8,)))


def test_multiscale_cnf_is_one_invertible_map():
    """Structure, latent shape, round trip and forward log-det = −inverse log-det. (Each CNF's
    log-det against its Jacobian is the bijector registry's check, tests/bijectors/cases_cnf.py;
    the multi-scale composition is `jgen.bijectors.multiscale`'s, checked against the Jacobian
    through `multiscale_realnvp`'s registry case.)"""
    flow = multiscale_cnf((4, 4, 1), _mlp_field, num_scales=2, rtol=1e-6, atol=1e-6)
    # Data side first: CNF on 4x4x1, squeeze, CNF on 2x2x4, factor-out of a CNF on 2x2x2.
    cnfs = [m for m in flow.bijectors if isinstance(m, CNF)]
    assert [c.event_shape for c in cnfs] == [(4, 4, 1), (2, 2, 4)]
    factor_out = next(m for m in flow.bijectors if isinstance(m, FactorOut))
    assert factor_out.inner.bijectors[0].event_shape == (2, 2, 2)
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
    params = flow.init(jax.random.key(1), x, method="inverse_and_log_det")
    z, inverse_log_det = flow.apply(params, x, method="inverse_and_log_det")
    back, forward_log_det = flow.apply(params, z, method="forward_and_log_det")
    assert z.shape == x.shape and inverse_log_det.shape == (2,)
    assert float(jnp.min(jnp.abs(inverse_log_det))) > 0.05  # not the identity
    np.testing.assert_allclose(back, x, atol=1e-4)
    np.testing.assert_allclose(forward_log_det, -inverse_log_det, atol=1e-4)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="multiscale_cnf: with num_scales=3, H and W"):
        multiscale_cnf((6, 6, 1), _mlp_field, num_scales=3)
    with pytest.raises(ValidationError, match="num_blocks"):
        multiscale_cnf((4, 4, 1), _mlp_field, num_blocks=0)
    with pytest.raises(TypeError, match="field must be a function"):
        multiscale_cnf((4, 4, 1), MLPField((8,)))


def test_multiscale_cnf_learns_digits():
    """150 Hutchinson steps of maximum likelihood (2 scales, 3 CNFs, fixed-step Heun) on the
    8x8 digits; the exact-trace test bits/dim must be well below the uniform distribution's
    log2(17) = 4.09 (about 6.4 at initialisation)."""

    def flow(trace):
        cnfs = multiscale_cnf(
            (8, 8, 1), lambda shape: FlattenedField(ConcatSquashField((32,))),
            num_scales=2, solver="heun", step_size=0.5, trace=trace,
        )  # fmt: skip
        return Flow(Chain([LogitPreprocess(0.05, event_ndims=3), cnfs]), (8, 8, 1))

    train = DensityObjective(flow("hutchinson"), num_levels=17)
    exact = DensityObjective(flow("exact"), num_levels=17)
    data = load_dataset("digits")
    x, test = jnp.asarray(data.train), {"x": jnp.asarray(data.test[:100])}
    params, state = jax.jit(train.init)(jax.random.key(0), {"x": x[:32]})

    trained = adam_steps(
        lambda p, batch, key: train.loss(p, state, batch, key)[0], params, x,
        steps=150, batch_size=32, learning_rate=3e-3,
    )  # fmt: skip
    bpd = float(jnp.mean(exact.evaluate(trained, state, test, jax.random.key(2))["bpd"]))
    assert bpd < math.log2(17) - 0.5, bpd
