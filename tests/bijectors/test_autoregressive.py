"""Masked autoregressive flows: MAF's log-prob against a by-hand autoregressive sum, IAF as
MAF's inverse, jitted sampling, argument errors. (Round trips, Jacobians, jit/vmap, distrax
interop and the edge sweep are the registry's: `cases_autoregressive.py`.)"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.bijectors.spline import apply_spline
from jgen.distributions import Flow
from jgen.masked import MaskedMLP

D = 4


def _maf(transformer):
    options = dict(num_bins=4, bound=2.0) if transformer == "spline" else {}
    return jb.MaskedAutoregressive(
        D, hidden_dims=(16, 16), transformer=transformer, zero_init_last=False, **options
    )


@pytest.mark.parametrize("transformer", ["affine", "spline"])
def test_maf_log_prob_equals_by_hand_autoregressive_sum(transformer):
    """log p(x) = Σ_d log N(z_d) + log|∂z_d/∂x_d| with z_d = T⁻¹(x_d; θ_d(x_<d)), where θ_d is
    read off the MADE with x_d, ..., x_D replaced by noise (so it cannot have seen them)."""
    maf = _maf(transformer)
    x = 1.5 * jax.random.normal(jax.random.key(0), (5, D))
    flow = Flow(maf, (D,))
    variables = flow.init(jax.random.key(1), x, method=Flow.log_prob)
    log_prob = jax.jit(lambda v, x: flow.apply(v, x, method=Flow.log_prob))(variables, x)

    params = variables["params"]["bijector"]
    made = MaskedMLP(D, 2 if transformer == "affine" else 3 * 4 - 1, (16, 16))
    made_fn = jax.jit(lambda x: made.apply({"params": params["made"]}, x))
    total = jnp.zeros(x.shape[0])
    for d in range(D):
        noise = 10.0 * jax.random.normal(jax.random.key(10 + d), x.shape)
        seen = jnp.where(jnp.arange(D) < d, x, noise)  # only x_<d is real
        raw = made_fn(seen)[:, d]
        if transformer == "affine":
            log_scale = params["scale"][d] * jnp.tanh(raw[:, 0])
            z = (x[:, d] - raw[:, 1]) * jnp.exp(-log_scale)
            log_det = -log_scale
        else:
            z, log_det = apply_spline(x[:, d], raw, inverse=True, num_bins=4, bound=2.0)
        total += -0.5 * z**2 - 0.5 * math.log(2 * math.pi) + log_det
    np.testing.assert_allclose(log_prob, total, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transformer", ["affine", "spline"])
def test_iaf_is_the_inverse_of_maf_with_the_same_parameters(transformer):
    maf = _maf(transformer)
    iaf = jb.InverseAutoregressive(
        D, hidden_dims=(16, 16), transformer=transformer, zero_init_last=False,
        **(dict(num_bins=4, bound=2.0) if transformer == "spline" else {}),
    )  # fmt: skip
    x = jax.random.normal(jax.random.key(2), (3, D))
    variables = maf.init(jax.random.key(3), x, method="inverse_and_log_det")

    @jax.jit
    def run(v, x):
        maf_inv = maf.apply(v, x, method="inverse_and_log_det")
        iaf_fwd = iaf.apply(v, x, method="forward_and_log_det")
        maf_fwd = maf.apply(v, x, method="forward_and_log_det")
        iaf_inv = iaf.apply(v, x, method="inverse_and_log_det")
        return maf_inv, iaf_fwd, maf_fwd, iaf_inv

    maf_inv, iaf_fwd, maf_fwd, iaf_inv = run(variables, x)
    for a, b in ((maf_inv, iaf_fwd), (maf_fwd, iaf_inv)):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-6)


def test_maf_samples_under_jit_and_starts_as_identity():
    flow = Flow(jb.masked_autoregressive_flow(3, num_layers=2, hidden_dims=(8,)), (3,))
    x = jnp.zeros((2, 3))
    variables = flow.init(jax.random.key(0), x, method=Flow.log_prob)
    sample = jax.jit(lambda v, key: flow.apply(v, key, 7, method=Flow.sample_and_log_prob))
    draws, log_prob = sample(variables, jax.random.key(1))
    assert draws.shape == (7, 3) and np.all(np.isfinite(draws))
    # zero-initialised MADE outputs: the flow is the identity, so log p is the base's.
    expected = -0.5 * jnp.sum(draws**2, -1) - 1.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(event_dim=0), "event_dim"),
        (dict(event_dim=3, transformer="cubic"), "transformer must be one of"),
        (dict(event_dim=3, transformer="spline", num_bins=0), "num_bins"),
        (dict(event_dim=3, hidden_dims=()), "hidden_dims"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        layer = jb.MaskedAutoregressive(**kwargs)
        layer.init(jax.random.key(0), jnp.zeros((1, 3)), method="inverse_and_log_det")


def test_bad_inputs_and_context_are_named():
    layer = jb.MaskedAutoregressive(3, hidden_dims=(4,), context_dim=2)
    with pytest.raises(ValueError, match=r"MaskedAutoregressive: expected inputs of shape"):
        layer.init(jax.random.key(0), jnp.zeros((1, 4)), method="inverse_and_log_det")
    with pytest.raises(ValueError, match="context_dim=2 but no context"):
        layer.init(jax.random.key(0), jnp.zeros((1, 3)), method="inverse_and_log_det")
    with pytest.raises(ValueError, match=r"context of shape \(\.\.\., 2\), got \(1, 5\)"):
        layer.init(
            jax.random.key(0), jnp.zeros((1, 3)), jnp.zeros((1, 5)), method="inverse_and_log_det"
        )
