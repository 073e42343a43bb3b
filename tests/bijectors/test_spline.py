"""Rational-quadratic splines: oracles (distrax, flowjax), the edges, finite differences, errors.

* Oracles: given the same bin parameters, jgen's spline equals distrax's
  ``RationalQuadraticSpline`` (linear: ``boundary_slopes='identity'``; circular: ``'circular'``
  on [−π, π]) and flowjax's ``RationalQuadraticSpline`` (forward, inverse, log-det) within 1e-5
  in float32. distrax uses jgen's parametrisation with params [widths (K), heights (K), slopes
  (K + 1)]: jgen's K − 1 interior derivative parameters go in the middle (the boundary ones are
  overridden to 1 by 'identity'); for 'circular' jgen's K derivatives are the first K slopes (the
  last is overridden by the first). flowjax (``knots = K − 1`` inner knots, ``interval = B``)
  maps width and height logits with the same softmax-plus-minimum (``min_width``) and its K + 1
  derivatives (boundaries included) as ``softplus(u) + min_derivative``, so its ``u`` is
  ``inv_softplus(d − min_derivative)`` of jgen's derivatives (1 at the boundaries).
* Edges (hypothesis, few examples): inputs exactly at ±B, the floats just inside and outside,
  the interior knots themselves, 0 and ±1e4, with unconstrained parameters from 1e-3 to 1e4 in
  magnitude: values, log-dets and gradients (w.r.t. inputs and parameters) finite, the map
  monotone, and the round trip within the error that the local slope allows.
* Finite differences (float64): gradients of the spline and of a neural spline flow's log-prob.
"""

from __future__ import annotations

import functools
import math

import distrax
import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import paramax
import pytest
from flowjax.bijections import RationalQuadraticSpline as FlowjaxSpline
from hypothesis import given, settings
from hypothesis import strategies as st

from jgen import bijectors as jb
from jgen.bijectors.spline import (
    num_spline_params,
    rational_quadratic_forward,
    rational_quadratic_inverse,
    spline_knots,
)
from tests.gradcheck import gradient_error

K, B = 5, 2.5
MIN_BIN, MIN_DERIVATIVE = 1e-3, 1e-3
# Float32: 1e-5, except the inverse log-det, which is ill-conditioned where the spline is
# curved (measured on a dense grid against float64: jgen, distrax jitted and eager all err by up
# to 8.5e-5 there, at different points), so it gets 1e-4. Float64: the same maths to 1e-9.
ORACLE_TOL = {
    "float32": (dict(rtol=1e-5, atol=1e-5), dict(rtol=1e-4, atol=1e-4)),
    "float64": (dict(rtol=1e-9, atol=1e-9), dict(rtol=1e-9, atol=1e-9)),
}


def _assert_oracle(dtype, ours, theirs):
    """(y, log-det, x = f⁻¹(·), inverse log-det) of jgen against a peer's."""
    tol, inverse_log_det_tol = ORACLE_TOL[dtype]
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.dtype == np.dtype(dtype), a.dtype
        np.testing.assert_allclose(a, b, **(inverse_log_det_tol if i == 3 else tol))


def _raw(seed, shape, circular=False, scale=1.5, dtype=jnp.float32):
    p = num_spline_params(K, circular)
    return scale * jax.random.normal(jax.random.key(seed), (*shape, p), dtype)


def _knots(raw, circular=False, bound=B):
    return spline_knots(
        raw, num_bins=K, low=-bound, high=bound, min_bin_size=MIN_BIN,
        min_derivative=MIN_DERIVATIVE, circular=circular,
    )  # fmt: skip


@functools.partial(jax.jit, static_argnums=(2, 3))  # one program, not many eager operations
def _both_directions(raw, x, circular=False, bound=B):
    knots = _knots(raw, circular, bound)
    y, ld = rational_quadratic_forward(x, knots)
    x_inv, ld_inv = rational_quadratic_inverse(x, knots)  # the inverse at the same points
    return y, ld, x_inv, ld_inv


# Oracles ----------------------------------------------------------------------------------------
def _peer_both_directions(forward, inverse, x):
    return jax.jit(lambda x: (*forward(x), *inverse(x)))(x)  # one program: fast on CPU


dtypes = pytest.mark.parametrize("dtype", ["float32", "float64"])


@dtypes
def test_equals_distrax_linear_boundary(dtype):
    with jax.enable_x64(dtype == "float64"):
        raw = _raw(0, (4,), dtype=getattr(jnp, dtype))  # one spline per coordinate of 4-vectors
        x = jnp.concatenate(
            [jnp.linspace(-4.0, 4.0, 41), jnp.array([-B, B, -1e4, 1e4, 0.0, 2.4999])]
        ).astype(raw.dtype)
        x = jnp.stack([x, -x, 0.5 * x, 2 * x], axis=-1)  # (N, 4)
        y, ld, x_inv, ld_inv = _both_directions(raw, x)
        zero = jnp.zeros((4, 1))
        params = jnp.concatenate([raw[:, : 2 * K], zero, raw[:, 2 * K :], zero], axis=-1)
        reference = distrax.RationalQuadraticSpline(
        params, -B, B, boundary_slopes="identity", min_bin_size=MIN_BIN,
        min_knot_slope=MIN_DERIVATIVE,
    )  # fmt: skip
        theirs = _peer_both_directions(
            reference.forward_and_log_det, reference.inverse_and_log_det, x
        )
        _assert_oracle(dtype, (y, ld, x_inv, ld_inv), theirs)


@dtypes
def test_equals_distrax_circular(dtype):
    with jax.enable_x64(dtype == "float64"):
        raw = _raw(1, (3,), circular=True, dtype=getattr(jnp, dtype))
        x = jnp.linspace(-math.pi, math.pi, 37, dtype=raw.dtype)[:, None] * jnp.array(
            [1.0, -0.9, 0.5], raw.dtype
        )
        y, ld, x_inv, ld_inv = _both_directions(raw, x, circular=True, bound=math.pi)
        params = jnp.concatenate([raw, jnp.zeros((3, 1))], axis=-1)  # last slope := first
        reference = distrax.RationalQuadraticSpline(
        params, -math.pi, math.pi, boundary_slopes="circular", min_bin_size=MIN_BIN,
        min_knot_slope=MIN_DERIVATIVE,
    )  # fmt: skip
        theirs = _peer_both_directions(
            reference.forward_and_log_det, reference.inverse_and_log_det, x
        )
        _assert_oracle(dtype, (y, ld, x_inv, ld_inv), theirs)


def test_circular_spline_is_periodic_lift():
    raw = _raw(2, (), circular=True)
    x = jnp.linspace(-3.0, 3.0, 13)
    y, ld, _, _ = _both_directions(raw, x, True, math.pi)
    for n in (-2, 3):
        y_n, ld_n, _, _ = _both_directions(raw, x + 2 * math.pi * n, True, math.pi)
        np.testing.assert_allclose(y_n, y + 2 * math.pi * n, atol=3e-5)
        np.testing.assert_allclose(ld_n, ld, atol=3e-5)


@dtypes
def test_equals_flowjax(dtype):
    with jax.enable_x64(dtype == "float64"):
        raw = _raw(3, (), dtype=getattr(jnp, dtype))
        knots = _knots(raw)
        reference = FlowjaxSpline(
            knots=K - 1, interval=B, min_derivative=MIN_DERIVATIVE, min_width=MIN_BIN
        )
        unconstrained_derivatives = jnp.log(jnp.expm1(knots.derivatives - MIN_DERIVATIVE))
        reference = eqx.tree_at(
            lambda s: (s.x_pos.arr, s.y_pos.arr, s.derivatives.args[0]),
            reference,
            (raw[:K], raw[K : 2 * K], unconstrained_derivatives),
        )
        reference = paramax.unwrap(reference)
        np.testing.assert_allclose(reference.x_pos, knots.x, **ORACLE_TOL[dtype][0])
        np.testing.assert_allclose(reference.derivatives, knots.derivatives, **ORACLE_TOL[dtype][0])
        x = jnp.concatenate([jnp.linspace(-4.0, 4.0, 33), jnp.array([-B, B, 1e4])]).astype(
            raw.dtype
        )
        theirs = _peer_both_directions(
            jax.vmap(reference.transform_and_log_det), jax.vmap(reference.inverse_and_log_det), x
        )
        _assert_oracle(dtype, _both_directions(raw, x), theirs)


# Edges and extreme parameters (hypothesis) -------------------------------------------------------
def _edge_inputs(knots, dtype, bound):
    """±B exactly, the floats next to them on both sides, the interior knots, 0, ±1e4."""
    t = np.dtype(dtype).type
    points = [0.0, 1e4, -1e4]
    for edge in (t(-bound), t(bound)):
        points += [edge, np.nextafter(edge, t(-np.inf)), np.nextafter(edge, t(np.inf))]
    interior = np.asarray(knots.x[1:-1], dtype).ravel().tolist()
    return np.sort(np.asarray(points + interior, dtype))


@functools.cache
def _edge_program(dtype: str, circular: bool):
    bound = math.pi if circular else B

    @jax.jit
    def run(x, raw):
        def both(x, raw):
            knots = _knots(raw, circular, bound)
            y, ld = rational_quadratic_forward(x, knots)
            x_inv, ld_inv = rational_quadratic_inverse(x, knots)
            return y, ld, x_inv, ld_inv

        def total(x, raw):
            return sum(jnp.sum(a) for a in both(x, raw))

        y, ld, x_inv, ld_inv = both(x, raw)
        grads = jax.grad(total, argnums=(0, 1))(x, raw)
        x_rt = rational_quadratic_inverse(y, _knots(raw, circular, bound))[0]
        return dict(y=y, ld=ld, x_inv=x_inv, ld_inv=ld_inv, grads=grads, x_rt=x_rt)

    return run, bound


@pytest.mark.parametrize("circular", [False, True], ids=["linear", "circular"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@settings(max_examples=6, deadline=None)
@given(log10_scale=st.floats(-3.0, 4.0), seed=st.integers(0, 2**16))
def test_edges_and_extreme_parameters(dtype, circular, log10_scale, seed):
    run, bound = _edge_program(dtype, circular)
    with jax.enable_x64(dtype == "float64"):
        raw = _raw(seed, (), circular, scale=10.0**log10_scale, dtype=getattr(jnp, dtype))
        x = _edge_inputs(_knots(raw, circular, bound), dtype, bound)
        out = jax.device_get(run(jnp.asarray(x), raw))
    for name, value in jax.tree_util.tree_flatten_with_path(out)[0]:
        assert np.all(np.isfinite(value)), (jax.tree_util.keystr(name), x, value)
    assert np.all(np.diff(out["y"]) >= 0) and np.all(np.diff(out["x_inv"]) >= 0)
    # Outside the interval (linear tails) the map is the identity.
    if not circular:
        outside = np.abs(x) > bound
        np.testing.assert_array_equal(out["y"][outside], x[outside])
        np.testing.assert_array_equal(out["ld"][outside], 0.0)
    # x = f⁻¹(f(x)) up to the rounding of y, magnified by the local slope 1/f'(x).
    eps = np.finfo(dtype).eps
    tolerance = 64 * eps * (np.abs(out["y"]) + bound) * np.exp(-out["ld"]) + 64 * eps * bound
    assert np.all(np.abs(out["x_rt"] - x) <= tolerance), np.abs(out["x_rt"] - x) / tolerance


# Finite differences (float64) ---------------------------------------------------------------------
def _check_against_finite_differences(f, args):
    """Every component of grad f against central differences (`tests/gradcheck.py`)."""
    analytic, numeric = gradient_error(lambda tree: f(*tree), tuple(args))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_gradients_match_finite_differences_float64():
    with jax.enable_x64(True):
        raw = _raw(5, (3,), dtype=jnp.float64, scale=1.0)
        raw_circular = _raw(6, (3,), circular=True, dtype=jnp.float64, scale=1.0)
        x = jnp.array([[-2.9, -1.3, 0.7], [0.2, 2.2, -0.4]])  # off the knots and edges

        def spline(x, raw):
            y, ld, x_inv, ld_inv = _both_directions(raw, x)
            return jnp.sum(jnp.sin(y) + ld) + jnp.sum(jnp.cos(x_inv) + ld_inv)

        def circular(x, raw):
            y, ld, x_inv, ld_inv = _both_directions(raw, x, circular=True, bound=math.pi)
            return jnp.sum(jnp.sin(y) + ld) + jnp.sum(jnp.cos(x_inv) + ld_inv)

        _check_against_finite_differences(spline, (x, raw))
        _check_against_finite_differences(circular, (x, raw_circular))


def test_neural_spline_flow_gradients_match_finite_differences_float64():
    with jax.enable_x64(True):
        flow = jb.neural_spline_flow(
            3, num_layers=2, num_bins=4, bound=2.0, hidden_dims=(8,), zero_init_last=False
        )
        x = jax.random.normal(jax.random.key(7), (4, 3), jnp.float64)
        init = jax.jit(flow.init, static_argnames="method")
        params = init(jax.random.key(8), x, method="inverse_and_log_det")["params"]

        def log_prob(params, x):
            z, ld = flow.apply({"params": params}, x, method="inverse_and_log_det")
            return jnp.sum(-0.5 * z**2 + ld[:, None])

        _check_against_finite_differences(log_prob, (params, x))


# Behaviour and errors ---------------------------------------------------------------------------
def test_zero_parameters_are_the_identity():
    flow = jb.neural_spline_flow(2, num_layers=2, hidden_dims=(8,))
    x = jnp.array([[-5.0, 0.3], [2.9, -3.0]])
    y, ld = jax.jit(flow.init_with_output, static_argnames="method")(
        jax.random.key(0), x, method="forward_and_log_det"
    )[0]
    np.testing.assert_allclose(y, x, atol=1e-6)
    np.testing.assert_allclose(ld, 0.0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_bins=0), "num_bins"),
        (dict(bound=-1.0), "bound"),
        (dict(num_bins=4, bound=1.0, min_bin_size=0.5), "min_bin_size"),
        (dict(min_derivative=1.0), "min_derivative"),
        (dict(event_shape=3), "event_shape"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        jb.RationalQuadraticSpline(**kwargs)


def test_bad_coupling_options_and_context_are_named():
    with pytest.raises(ValueError, match=r"SplineCoupling: .*num_bins"):
        jb.SplineCoupling((4,), num_bins=0)
    spline = jb.RationalQuadraticSpline((2,), context_dim=3, params_init=nn.initializers.normal())
    x = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match=r"context of shape \(\*batch, 3\), got none"):
        spline.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"context of shape \(\*batch, 3\), got shape \(5, 2\)"):
        spline.init(jax.random.key(0), x, jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"expected parameters of shape \(\.\.\., 14\)"):
        spline_knots(jnp.zeros(13), num_bins=5, low=-1.0, high=1.0)
