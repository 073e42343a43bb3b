"""`Repeat` and the builders' ``scan_layers``: given the same parameters the scanned flow is the
unrolled one (outputs and log-dets, both directions), its parameters keep readable names, and
its traced program does not grow with the depth. Round trips, log-dets against autodiff
Jacobians, float64 and jit/vmap are the registry case ``realnvp_scan_layers``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb

D, CONTEXT = 4, 2
TINY = dict(hidden_dims=(8,), zero_init_last=False)


def _stacked(unrolled: dict, num_layers: int, kind: str) -> dict:
    """The unrolled chain's parameters in the scanned flow's layout: coupling 2j + p becomes
    entry j of ``['0_repeat']['body'][f'{p}_{kind}']``; an odd last coupling stays unrolled."""
    body = {
        f"{p}_{kind}": jax.tree.map(
            lambda *layers: jnp.stack(layers),
            *[unrolled[f"{2 * j + p}_{kind}"] for j in range(num_layers // 2)],
        )
        for p in (0, 1)
    }
    params = {"0_repeat": {"body": body}}
    if num_layers % 2:
        params[f"1_{kind}"] = unrolled[f"{num_layers - 1}_{kind}"]
    return params


@pytest.mark.parametrize(
    "builder,kind,num_layers",
    [(jb.realnvp, "affine_coupling", 3), (jb.neural_spline_flow, "spline_coupling", 2)],
)
def test_scanned_flow_equals_the_unrolled_chain(builder, kind, num_layers):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, D)), jnp.float32)
    context = jnp.asarray(rng.normal(size=(3, CONTEXT)), jnp.float32)
    unrolled = builder(D, num_layers=num_layers, context_dim=CONTEXT, **TINY)
    scanned = builder(D, num_layers=num_layers, context_dim=CONTEXT, scan_layers=True, **TINY)
    params = unrolled.init(jax.random.key(1), x, context, inverse=True)["params"]
    stacked = _stacked(params, num_layers, kind)
    reference = scanned.init(jax.random.key(1), x, context, inverse=True)["params"]
    assert jax.tree.map(jnp.shape, stacked) == jax.tree.map(jnp.shape, reference)
    for inverse in (False, True):
        y, log_det = unrolled.apply({"params": params}, x, context, inverse=inverse)
        y_scan, log_det_scan = scanned.apply({"params": stacked}, x, context, inverse=inverse)
        np.testing.assert_allclose(y_scan, y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(log_det_scan, log_det, rtol=1e-5, atol=1e-5)


def _dot_count(num_layers: int) -> int:
    flow = jb.realnvp(D, num_layers=num_layers, scan_layers=True, **TINY)
    x = jnp.zeros((2, D))
    variables = jax.eval_shape(lambda: flow.init(jax.random.key(0), x, inverse=True))
    jaxpr = jax.make_jaxpr(lambda v: flow.apply(v, x, inverse=True))(variables)
    return str(jaxpr).count("dot_general")


def test_the_traced_program_does_not_grow_with_depth():
    assert _dot_count(4) == _dot_count(16) > 0


def test_repeat_checks_its_arguments():
    with pytest.raises(TypeError, match="body must be a jgen Bijector"):
        jb.Repeat(lambda x: x, 2)
    with pytest.raises(ValueError, match="num_repeats"):
        jb.Repeat(jb.Identity(), 0)
    with pytest.raises(TypeError, match="scan_layers must be a bool"):
        jb.realnvp(D, scan_layers="yes")
