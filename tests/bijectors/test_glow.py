"""Glow's structure and temperature sampling (`Flow.sample(..., temperature=T)`); the property
suite covers Glow through `cases_glow.py`."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.distributions import Flow
from jgen.validation import ValidationError


def test_glow_layout_and_parameter_count():
    flow = jb.glow((4, 4, 1), num_levels=2, num_steps=2, channels=4, num_blocks=0)
    x = jax.random.uniform(jax.random.key(0), (3, 4, 4, 1))
    (z, log_det), variables = jax.jit(flow.init_with_output, static_argnames="method")(
        jax.random.key(1), x, method="inverse_and_log_det"
    )
    assert z.shape == x.shape and log_det.shape == (3,)
    params = variables["params"]
    # Level 1 on 2x2x4: unsqueeze (no parameters, so not counted in the names), 2 steps of
    # ActNorm, Conv1x1(4), coupling, then the FactorOut holding level 2 on 1x1x8, then a squeeze.
    steps = ["0_act_norm", "1_conv1x1", "2_affine_coupling", "3_act_norm", "4_conv1x1",
             "5_affine_coupling"]  # fmt: skip
    assert sorted(params) == [*steps, "6_factor_out"]
    assert "lu" in params["1_conv1x1"]  # the Conv1x1
    level2 = params["6_factor_out"]["inner"]
    assert sorted(level2) == steps


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_scales_the_base_noise(temperature):
    # A zero-initialised MAF is the identity: draws are the base noise, N(0, T² I).
    flow = Flow(jb.masked_autoregressive_flow(2, num_layers=1, hidden_dims=(4,)), (2,))
    variables = flow.init(jax.random.key(0), jnp.zeros((1, 2)))
    sample = jax.jit(
        lambda key: flow.apply(
            variables, key, 4000, temperature=temperature, method=Flow.sample_and_log_prob
        )
    )
    draws, log_prob = sample(jax.random.key(1))
    assert abs(float(jnp.std(draws)) - temperature) < 0.05 * temperature
    # log p is the model's (standard normal) density at the draws.
    expected = -0.5 * jnp.sum(draws**2, -1) - jnp.log(2 * jnp.pi)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-5)


def test_temperature_needs_a_positive_number_and_the_gaussian_base():
    base = distrax.Independent(distrax.Uniform(jnp.zeros(2), jnp.ones(2)), 1)
    for flow, temperature, match in (
        (Flow(jb.Identity(), (2,)), -1.0, "temperature must be a positive number"),
        (Flow(jb.Identity(), (2,), base=base), 0.5, "needs the standard normal base"),
    ):
        with pytest.raises(ValidationError, match=match):
            flow.apply({}, jax.random.key(0), 3, temperature=temperature, method=Flow.sample)
