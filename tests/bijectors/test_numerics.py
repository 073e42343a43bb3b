"""Numerical hardening: every registry bijector at extreme but valid inputs (hypothesis).

For each case of `registry.py`, hypothesis draws forward inputs from the case's ``domain`` and
inverse inputs from its ``codomain`` (both elementwise intervals, the real line by default):

* on the real line, magnitudes from 1e-6 to 1e4: every element at the same magnitude with
  random signs, magnitudes spread over the range within one event, all elements equal (zero
  variance), or the case's own sample rescaled;
* on a bounded interval, points from 10% of its width down to the float next to an edge.

Sometimes the variables are initialised on the extreme inputs too (ActNorm's and BatchNorm's
data-dependent initialisation), otherwise on the case's usual sample. The properties: forward
and inverse outputs and log-dets are finite, and so are the gradients of sum(log-det) and of
sum(output) with respect to the input and to every parameter. The forward followed by the
inverse must give the input back, to the tolerances of `test_properties.py` times the largest
magnitude involved and, where the forward map compresses some direction (its Jacobian's
smallest singular value σ_min < 1), times its inverse's condition 1/σ_min; `SATURATING` cases
(the exact output is not representable) need only be finite.

Every case is swept in float32, `FLOAT64_SWEEP` in float64. The edges the issue names are also
checked at exact points (`test_edges_*`), and an affine coupling whose conditioner outputs
~1e6 · |x| stays finite thanks to its tanh-bounded scale.

No bijector needs a value-dependent domain error: inputs are traced values under jit, so the
bounded-domain bijectors instead clip to the open interval (documented in their modules) and
stay finite even on its closed edges.

Compilation: one jitted program per (case, dtype), cached; hypothesis only varies values.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jgen import bijectors as jb
from jgen.distributions import LogitPreprocess
from jgen.nets import MLP, ConvResNet
from tests.bijectors.registry import Case, Interval, all_cases, make_inputs
from tests.bijectors.test_properties import TOL64

CASES = {case.name: case for case in all_cases()}

# Cases whose forward saturates in floating point: the exact output exists but rounds onto the
# edge of the codomain, so the round trip cannot hold there. Values: why.
_SIGMOID = (
    "σ(x) rounds to 1 for x > logit(1 - eps/2) ≈ 16.6 in float32 (36.7 in float64), and to 0 "
    "below ≈ -87 (-708), where it would be subnormal and the CPU flushes it to zero"
)
_TANH = (
    "tanh(x) rounds to ±1 for |x| > artanh(1 - eps/2) ≈ 8.7 in float32 (18.7 in float64); "
    "XLA's float32 tanh already returns ±1 from |x| ≈ 8"
)
SATURATING = {
    "sigmoid": _SIGMOID,
    "sigmoid_matrix_events": _SIGMOID,
    "chain_mixed_event_ndims": "its outer member is a Sigmoid: " + _SIGMOID,
    "tanh": _TANH,
    "chain_with_distrax_members": "its outer member is distrax.Tanh: " + _TANH,
    "logit_preprocess_image": "its forward is an affine map of σ: " + _SIGMOID,
    "logit_preprocess_vector": "its forward is σ: " + _SIGMOID,
}


# The float64 sweep: the cases whose numerics depend on the dtype (clipping to the open
# interval with eps and tiny of the dtype), and one case of each other family. Every case is
# swept in float32; compiling all of them twice would double the file's time.
FLOAT64_SWEEP = sorted(
    [name for name, case in CASES.items() if case.domain.bounded or case.codomain.bounded]
    + [
        "affine_random_init",
        "lu_linear_gaussian_init_permuted_no_bias",
        "actnorm_image_init_inverse_glow_step",
        "batchnorm",
        "realnvp_half_with_context",
        "coupling_checkerboard_with_context",
        "factor_out_last_vector_coupling",
        "unsqueeze",
        "inverse_of_distrax_block",
    ]
)

# log10 of the input magnitude on the real line, and of the distance to the nearest edge
# (relative to the width) on a bounded interval. The interval ranges reach below the smallest
# subnormal: such points become the float next to the edge.
REAL_LOG10 = (-6.0, 4.0)
EDGE_LOG10 = {"float32": (-46.0, -1.0), "float64": (-330.0, -1.0)}
LAYOUTS = ("uniform", "spread", "constant", "structured")
# The programs run a few times on tiny inputs: XLA's backend optimisations would cost more
# compile time than they save.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _dtype_scope(dtype: str):
    return jax.enable_x64(dtype == "float64")


def _init_variables(case: Case, bijector, x, context):
    """As in `test_properties.py`: data-dependent init on the direction the case asks for."""
    init_input = x
    if case.init_inverse:
        throwaway = bijector.init(jax.random.key(1), x, context, method="forward_and_log_det")
        init_input = bijector.apply(throwaway, x, context, method="forward")
    method = "inverse_and_log_det" if case.init_inverse else "forward_and_log_det"
    return bijector.init(jax.random.key(2), init_input, context, method=method)


@functools.cache
def _program(name: str, dtype: str):
    """(run, x0, codomain template) for one case and dtype; ``run(x0, x, y)`` is jitted.

    Everything, the (data-dependent) initialisation included, is one compiled program: on CPU,
    running Flax's init eagerly would compile each of its many small operations separately,
    which costs more than compiling the whole thing at once. The initialisation data ``x0`` is
    an argument, so XLA cannot constant-fold the initialisation either.
    """
    case = CASES[name]
    with _dtype_scope(dtype):
        x0, context = make_inputs(case, getattr(jnp, dtype))
        bijector = case.make()

        def variables(x0):
            v = _init_variables(case, bijector, x0, context)
            return v.get("params", {}), {k: val for k, val in v.items() if k != "params"}

        def apply(params, state, inputs, method):
            return bijector.apply({"params": params, **state}, inputs, context, method=method)

        def direction(params, state, inputs, method):
            def objective(p, v):
                out, log_det = apply(p, state, v, method)
                return jnp.sum(log_det) + jnp.sum(out), (out, log_det)

            # One gradient, of sum(log-det) + sum(output): it is non-finite whenever either
            # gradient is (inf plus anything is inf or nan).
            try:
                gradient = jax.grad(objective, argnums=(0, 1), has_aux=True)
                (grad_params, grad_inputs), (out, log_det) = gradient(params, inputs)
            except ValueError as error:
                # e.g. a CNF solved with diffrax's ForwardMode adjoint: forward mode instead.
                if "Reverse-mode differentiation" not in str(error):
                    raise
                gradient = jax.jacfwd(objective, argnums=(0, 1), has_aux=True)
                (grad_params, grad_inputs), (out, log_det) = gradient(params, inputs)
            return dict(out=out, log_det=log_det, grad_inputs=grad_inputs, grad_params=grad_params)

        @functools.partial(jax.jit, compiler_options=_FAST_COMPILE)
        def run(x0, x, y):
            params, state = variables(x0)
            fwd = direction(params, state, x, "forward_and_log_det")
            inv = direction(params, state, y, "inverse_and_log_det")
            round_trip = apply(params, state, fwd["out"], "inverse")
            return dict(forward=fwd, inverse=inv, round_trip=round_trip)

        def forward_of_x0(x0):
            params, state = variables(x0)
            return apply(params, state, x0, "forward")

        y_template = jax.eval_shape(forward_of_x0, x0)
    return run, np.asarray(x0), y_template


def _extreme_values(draw, shape, interval: Interval, dtype: str, sample=None) -> np.ndarray:
    """Inputs of ``shape``, extreme but inside the open ``interval`` (see the module docstring).

    ``draw = (level, layout, seed)``: ``level`` in [0, 1] picks the magnitude (real line) or the
    distance to the edges (bounded interval) on a log scale. Layouts:
      'uniform'    every element at that magnitude / distance, random signs / edges;
      'spread'     magnitudes spread on a log scale from 1e-6 up to that magnitude (distances
                   from that distance up to 10% of the width), random signs / edges;
      'constant'   every element equal (one sign / edge): features of zero variance;
      'structured' ``sample`` (the case's own input) rescaled to that magnitude; 'constant'
                   without a sample or on a bounded interval.
    """
    level, layout, seed = draw
    rng = np.random.default_rng(seed)
    one_value = layout in ("constant", "structured")
    if not interval.bounded:
        lo, hi = REAL_LOG10
        log_m = lo + level * (hi - lo)
        if layout == "structured" and sample is not None:
            return (sample * (10.0**log_m / np.max(np.abs(sample)))).astype(dtype)
        if layout == "spread":
            magnitude = 10.0 ** rng.uniform(lo, log_m, shape)
        else:
            magnitude = np.full(shape, 10.0**log_m)
        signs = rng.choice([-1.0, 1.0], () if one_value else shape)
        return (signs * magnitude).astype(dtype)

    lo, hi = EDGE_LOG10[dtype]
    log_d = lo + level * (hi - lo)
    if layout == "spread":
        log_distance = rng.uniform(log_d, -1.0, shape)
    else:
        log_distance = np.full(shape, log_d)
    distance = 10.0**log_distance * (interval.high - interval.low)
    at_low = rng.random(() if one_value else shape) < 0.5
    values = np.where(at_low, interval.low + distance, interval.high - distance)
    # Strictly inside in the test dtype: the float next to an edge is the most extreme input.
    t = np.dtype(dtype).type
    inside_low = np.nextafter(t(interval.low), t(interval.high))
    inside_high = np.nextafter(t(interval.high), t(interval.low))
    return np.clip(values.astype(dtype), inside_low, inside_high)


def _nonfinite(tree) -> list[str]:
    bad = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        leaf = np.asarray(leaf)
        if not np.all(np.isfinite(leaf)):
            bad.append(f"{jax.tree_util.keystr(path)} ({np.sum(~np.isfinite(leaf))} entries)")
    return bad


def _round_trip_tolerance(case: Case, x: np.ndarray, y: np.ndarray, dtype: str) -> float:
    """Absolute tolerance: the round-trip tolerances of `test_properties.py` (which hold at
    inputs of order one), times the largest magnitude in play.

    An affine coupling computes x_B = (y_B - t) · exp(-s): when the shift t is much larger than
    x_B the subtraction loses precision in proportion to |t| ≈ |y_B|, not to |x_B|.
    """
    rtol, atol = (case.rtol, case.atol) if dtype == "float32" else (TOL64["rtol"], TOL64["atol"])
    scale = max(1.0, float(np.max(np.abs(x))), float(np.max(np.abs(y))))
    return (rtol + atol) * scale


def check_case(name: str, dtype: str, x_draw, y_draw, init_on_extremes: bool) -> None:
    """The properties of the module docstring at one draw. With ``init_on_extremes`` the
    variables are initialised on the extreme inputs too (data-dependent init of ActNorm,
    BatchNorm); otherwise on the case's usual sample."""
    case = CASES[name]
    run, x0, y_template = _program(name, dtype)
    x = _extreme_values(x_draw, x0.shape, case.domain, dtype, sample=x0)
    y = _extreme_values(y_draw, y_template.shape, case.codomain, dtype)
    with _dtype_scope(dtype):
        out = jax.device_get(run(x if init_on_extremes else x0, x, y))
    bad = _nonfinite({"forward": out["forward"], "inverse": out["inverse"]})
    assert not bad, (
        f"{name} ({dtype}): non-finite values in {bad}\n"
        f"max |x| = {np.max(np.abs(x)):.3g}, max |y| = {np.max(np.abs(y)):.3g}"
    )
    if name in SATURATING:
        return
    magnitude = float(np.max(np.abs(x)))
    error = float(np.max(np.abs(out["round_trip"] - x)))
    tolerance = _round_trip_tolerance(case, x, out["forward"]["out"], dtype)
    if error > tolerance:  # allowed only as far as the map's own conditioning explains it
        tolerance *= _inverse_condition(name, x0, x, init_on_extremes)
    assert error <= tolerance, (
        f"{name} ({dtype}): round trip error {error:.3g} > {tolerance:.3g} "
        f"at max |x| = {magnitude:.3g}"
    )


def _inverse_condition(name: str, x0, x, init_on_extremes: bool) -> float:
    """1 / σ_min of the forward map's Jacobian at ``x`` (all events at once), in float64.

    A round trip through an inverse that is exact up to rounding can miss the input by this
    factor times the rounding of the output: where a map compresses a direction by 1e-8 (stacked
    spline layers whose conditioners saturate at |x| ~ 1e2-1e3 give σ_min of 1e-10-1e-7), no
    float32 inverse can recover that direction. Computed only for a draw whose round trip misses
    the plain tolerance, so the sweep's usual cost does not grow.
    """
    case = CASES[name]
    with _dtype_scope("float64"):
        _, context = make_inputs(case, jnp.float64)
        bijector = case.make()
        init_data = jnp.asarray(x if init_on_extremes else x0, jnp.float64)
        variables = _init_variables(case, bijector, init_data, context)

        def forward(flat):
            inputs = flat.reshape(x.shape)
            return bijector.apply(variables, inputs, context, method="forward").reshape(-1)

        jacobian = jax.jacfwd(forward)(jnp.asarray(x, jnp.float64).reshape(-1))
    singular_values = np.linalg.svd(np.asarray(jacobian), compute_uv=False)
    return float(1.0 / max(singular_values.min(), np.finfo(np.float64).tiny))


def _draws():
    return st.tuples(st.floats(0.0, 1.0), st.sampled_from(LAYOUTS), st.integers(0, 2**32 - 1))


def test_documented_exceptions_are_registry_cases():
    for table in (SATURATING, {name: None for name in FLOAT64_SWEEP}):
        assert set(table) <= set(CASES), sorted(set(table) - set(CASES))


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=12, deadline=None)
@given(x_draw=_draws(), y_draw=_draws(), init_on_extremes=st.booleans())
def test_extreme_inputs_float32(name, x_draw, y_draw, init_on_extremes):
    check_case(name, "float32", x_draw, y_draw, init_on_extremes)


@pytest.mark.parametrize("name", FLOAT64_SWEEP)
@settings(max_examples=6, deadline=None)
@given(x_draw=_draws(), y_draw=_draws(), init_on_extremes=st.booleans())
def test_extreme_inputs_float64(name, x_draw, y_draw, init_on_extremes):
    check_case(name, "float64", x_draw, y_draw, init_on_extremes)


def test_multiscale_realnvp_round_trips_at_small_inputs():
    """Regression: ConvResNet's LayerNorm epsilon (jgen/nets.py) once broke this round trip."""
    run, x0, y_template = _program("multiscale_realnvp_digits", "float32")
    x = (x0 * (1e-4 / np.max(np.abs(x0)))).astype(np.float32)
    out = jax.device_get(run(x0, x, np.zeros(y_template.shape, y_template.dtype)))
    np.testing.assert_allclose(out["round_trip"], x, rtol=1e-3, atol=1e-6)


# The edges the issue names: exact values, both dtypes -------------------------------------------
def _values_and_gradients(bijector, inputs, method):
    """(output, log-det, d sum(log-det)/d input, d sum(output)/d input) of a parameter-free
    elementwise bijector (event_ndims=0)."""

    def apply(v):
        return bijector.apply({}, v, method=method)

    @jax.jit  # one small program instead of many eagerly compiled operations
    def run(v):
        out, log_det = apply(v)
        grad_log_det = jax.grad(lambda v: jnp.sum(apply(v)[1]))(v)
        grad_out = jax.grad(lambda v: jnp.sum(apply(v)[0]))(v)
        return out, log_det, grad_log_det, grad_out

    return tuple(np.asarray(a) for a in run(inputs))


def _assert_finite(dtype, *arrays):
    for a in arrays:
        assert a.dtype == np.dtype(dtype), a.dtype
        assert np.all(np.isfinite(a)), a


def _unit_interval_edges(dtype):
    """0, a subnormal, the smallest normal, 1/2, the largest float below 1, and 1."""
    f = np.finfo(dtype)
    return np.array([0.0, f.smallest_subnormal, f.tiny, 0.5, 1 - f.epsneg, 1.0], dtype)


HUGE = np.array([-1e30, -1e4, -200.0, -20.0, 0.0, 20.0, 200.0, 1e4, 1e30])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edges_sigmoid_and_logit(dtype):
    f = np.finfo(dtype)
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(HUGE, dtype)
        for bijector, method in (
            (jb.Sigmoid(event_ndims=0), "forward_and_log_det"),
            (jb.Logit(event_ndims=0), "inverse_and_log_det"),
        ):
            y, log_det, *grads = _values_and_gradients(bijector, x, method)
            _assert_finite(dtype, y, log_det, *grads)
            assert np.all((y >= 0) & (y <= 1)) and np.all(np.diff(y) >= 0)
            # log σ'(x) = -|x| - 2 softplus(-|x|): exactly -|x| once e^{-|x|} is negligible.
            np.testing.assert_allclose(log_det[[0, 1, -2, -1]], -np.abs(HUGE[[0, 1, -2, -1]]))

        u = jnp.asarray(_unit_interval_edges(dtype))
        for bijector, method in (
            (jb.Logit(event_ndims=0), "forward_and_log_det"),
            (jb.Sigmoid(event_ndims=0), "inverse_and_log_det"),
        ):
            z, log_det, *grads = _values_and_gradients(bijector, u, method)
            _assert_finite(dtype, z, log_det, *grads)
            assert np.all(np.diff(z) >= 0)
            # The closed edges are clipped to [tiny, 1 - eps/2]: logit(tiny), logit(1 - eps/2).
            np.testing.assert_allclose(z[[0, -1]], [np.log(f.tiny), -np.log(f.epsneg)], rtol=1e-6)
            np.testing.assert_allclose(z[2], np.log(f.tiny), rtol=1e-6)
            # log|d logit/du| = -log u - log(1 - u) at the clipped u.
            np.testing.assert_allclose(log_det[[0, 2]], -np.log(f.tiny), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edges_tanh(dtype):
    f = np.finfo(dtype)
    with jax.enable_x64(dtype == "float64"):
        y, log_det, *grads = _values_and_gradients(
            jb.Tanh(event_ndims=0), jnp.asarray(HUGE, dtype), "forward_and_log_det"
        )
        _assert_finite(dtype, y, log_det, *grads)
        np.testing.assert_array_equal(y[[0, 1, -2, -1]], [-1, -1, 1, 1])
        # log(1 - tanh²x) = 2 (log 2 - |x| - softplus(-2|x|)) ≈ 2 log 2 - 2|x|, not log 0.
        expected = 2 * np.log(2.0) - 2 * np.abs(HUGE[[0, 1, -2, -1]])
        np.testing.assert_allclose(log_det[[0, 1, -2, -1]], expected)

        edges = jnp.asarray([-1.0, -(1 - f.epsneg), 0.0, 1 - f.epsneg, 1.0], dtype)
        x, log_det, *grads = _values_and_gradients(
            jb.Tanh(event_ndims=0), edges, "inverse_and_log_det"
        )
        _assert_finite(dtype, x, log_det, *grads)
        edge = np.arctanh(np.float64(1 - f.epsneg))  # 8.7 in float32, 18.7 in float64
        np.testing.assert_allclose(x, [-edge, -edge, 0.0, edge, edge], rtol=1e-5)
        assert np.all(log_det >= 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_edges_logit_preprocess(alpha, dtype):
    """The inverse at y = 0 and 1, subnormal y, and the floats next to the edges of its domain
    (-α/(1-2α), (1-α)/(1-2α)); the forward at huge |z|. Before the fix, alpha = 0 gave ±inf
    outputs and log-dets and infinite gradients at y = 0, y = 1 and subnormal y."""
    bijector = LogitPreprocess(alpha, event_ndims=0)
    low, high = -alpha / (1 - 2 * alpha), (1 - alpha) / (1 - 2 * alpha)
    t = np.dtype(dtype).type
    with jax.enable_x64(dtype == "float64"):
        inside = [np.nextafter(t(low), t(high)), np.nextafter(t(high), t(low))]
        edges = _unit_interval_edges(dtype).tolist() + inside
        y = jnp.asarray(sorted(edges), dtype)
        z, log_det, *grads = _values_and_gradients(bijector, y, "inverse_and_log_det")
        _assert_finite(dtype, z, log_det, *grads)
        assert np.all(np.diff(z) >= 0)
        # Away from the edges it is the exact map: z(0) = logit(α), z(1) = logit(1 - α).
        if alpha > 0:
            interior = np.isin(np.asarray(y), [0.0, 1.0])
            logit_alpha = np.log(alpha) - np.log1p(-alpha)
            np.testing.assert_allclose(z[interior], [logit_alpha, -logit_alpha], rtol=1e-6)

        x = jnp.asarray(HUGE, dtype)
        y, log_det, *grads = _values_and_gradients(bijector, x, "forward_and_log_det")
        _assert_finite(dtype, y, log_det, *grads)
        rounding = 4 * np.finfo(dtype).eps  # (σ(z) - α)/(1 - 2α) is rounded twice
        assert np.all((y >= low - rounding) & (y <= high + rounding))


# Coupling scales: a conditioner with huge outputs -----------------------------------------------
class _Amplified(nn.Module):
    """A conditioner whose outputs are multiplied by ``gain`` (raw log-scales and shifts)."""

    net: nn.Module
    gain: float

    def __call__(self, h):
        return self.gain * self.net(h)


_HUGE_CONDITIONER_CASES = {
    "vector_half": ((4,), "half", lambda n: _Amplified(MLP((8,), n), 1e6)),
    "image_checkerboard": (
        (4, 4, 2),
        "checkerboard",
        lambda n: _Amplified(ConvResNet(4, 0, n), 1e6),
    ),
}


@functools.cache
def _huge_conditioner_program(kind: str):
    event_shape, mask, factory = _HUGE_CONDITIONER_CASES[kind]
    coupling = jb.AffineCoupling(event_shape, mask, conditioner=factory)
    x0 = jax.random.normal(jax.random.key(0), (3, *event_shape))

    @functools.partial(jax.jit, compiler_options=_FAST_COMPILE)
    def run(x0, x):  # initialised inside the program, as in `_program`
        params = coupling.init(jax.random.key(1), x0, method="forward_and_log_det")["params"]

        def objective(p, v):
            y, log_det = coupling.apply({"params": p}, v, method="forward_and_log_det")
            return jnp.sum(log_det) + jnp.sum(y), (y, log_det)

        (grad_params, grad_x), (y, log_det) = jax.grad(objective, (0, 1), has_aux=True)(params, x)
        x_rt, inverse_log_det = coupling.apply({"params": params}, y, method="inverse_and_log_det")
        return dict(
            y=y, log_det=log_det, x_rt=x_rt, inverse_log_det=inverse_log_det,
            grad_params=grad_params, grad_x=grad_x,
        )  # fmt: skip

    return run, np.asarray(x0)


@pytest.mark.parametrize("kind", sorted(_HUGE_CONDITIONER_CASES))
@settings(max_examples=8, deadline=None)
@given(draw=_draws())
def test_coupling_scale_bounded_with_huge_conditioner_outputs(kind, draw):
    """raw log-scales of ~1e6 · |x| saturate tanh: s = ±scale exactly (scale = 1 at init), so
    exp(s) stays in [1/e, e] and the log-det in [-|B|, |B|]; shifts of ~1e6 stay finite."""
    run, x0 = _huge_conditioner_program(kind)
    x = _extreme_values(draw, x0.shape, Interval(), "float32", sample=x0)
    out = jax.device_get(run(x0, x))
    assert not _nonfinite(out), _nonfinite(out)
    transformed = x0[0].size // 2  # |B|: half the coordinates (D = 4; 8 of 16 pixels x 2)
    assert np.all(np.abs(out["log_det"]) <= transformed * (1 + 1e-6))
    np.testing.assert_allclose(out["inverse_log_det"], -out["log_det"], rtol=1e-6, atol=1e-6)
    tolerance = 100 * np.finfo(np.float32).eps * max(1.0, float(np.max(np.abs(out["y"]))))
    np.testing.assert_allclose(out["x_rt"], x, rtol=0, atol=tolerance)
