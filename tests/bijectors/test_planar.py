"""Planar and radial flows beyond the registry's property suite: the invertibility constraints,
the planar root find, the implicit gradients of the inverses, the amortized layout and errors."""

from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from jgen.bijectors.planar import solve_planar_root
from jgen.validation import ValidationError, ValidationTypeError


def test_num_context_params():
    assert jb.Planar.num_context_params(5) == 11
    assert jb.Radial.num_context_params(5) == 7
    assert jb.Planar(5).num_context_params(2) == 5  # also callable on an instance
    with pytest.raises(ValidationError, match="dim must be a positive int, got 0"):
        jb.Planar.num_context_params(0)


@pytest.mark.parametrize("cls", [jb.Planar, jb.Radial])
def test_bad_arguments(cls):
    name = cls.__name__
    with pytest.raises(ValidationError, match=f"{name}: dim must be a positive int, got 0"):
        cls(0)
    with pytest.raises(ValidationTypeError, match=r"dim must be a positive int, got 2\.5"):
        cls(2.5)
    with pytest.raises(ValidationTypeError, match="amortized must be a bool, got 'yes'"):
        cls(2, amortized="yes")
    with pytest.raises(ValidationError, match="init_scale must be >= 0, got -1"):
        cls(2, init_scale=-1.0)
    z = jnp.zeros((3, 2))
    bijector = cls(2, amortized=True)
    with pytest.raises(
        ValidationError, match=r"expected a context of shape \(\*batch, \d\).*got None"
    ):
        bijector.init(jax.random.key(0), z)
    with pytest.raises(ValidationError, match=r"got \(3, 9\)"):
        bijector.init(jax.random.key(0), z, jnp.zeros((3, 9)))


def test_planar_constraint_holds_for_adversarial_u():
    """wᵀû = -1 + softplus(wᵀu) > -1 even for u = -10 w (where wᵀu ≪ -1); the log-det stays
    finite and equals log(1 + wᵀû h'(a))."""
    w = jnp.array([[0.6, -0.8]])
    context = jnp.concatenate([w, -10.0 * w, jnp.array([[0.3]])], axis=-1)
    z = jnp.array([[0.1, 0.2]])
    bijector = jb.Planar(2, amortized=True)
    _, log_det = jax.jit(bijector.apply, static_argnames="method")(
        {}, z, context, method="forward_and_log_det"
    )
    m = -1.0 + jax.nn.softplus(-10.0)
    a = jnp.sum(w * z) + 0.3
    assert m > -1.0
    np.testing.assert_allclose(log_det, np.log1p(m * (1 - np.tanh(a) ** 2)), rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_planar_root_find_converges_to_round_off(dtype):
    """Residual of a + m tanh(a) = c at round-off level, including m → -1 at c ≈ 0 (g'(0) → 0,
    Newton only linear) and |c| up to 1e4; the root agrees with a long bisection."""
    with jax.enable_x64(dtype == "float64"):
        eps = float(np.finfo(dtype).eps)
        m_values = jnp.asarray([-1 + 1e-6, -0.999, -0.5, 0.0, 0.7, 5.0, 15.56, 80.0], dtype)
        c_values = jnp.asarray([-1e4, -3.0, -1e-3, 0.0, 1e-7, 0.4, 2.0, 14.21, 1e4], dtype)
        m, c = (v.ravel() for v in jnp.meshgrid(m_values, c_values))
        # And random pairs: m = -1 + 10^U(-6, 3), c within ±(2|m| + 5). (Regression: m = 15.56,
        # c = 14.21 once made plain Newton-in-bracket bounce between the sides of the root.)
        rng = np.random.default_rng(0)
        m_random = -1 + 10 ** rng.uniform(-6, 3, 4096)
        c_random = rng.uniform(-1, 1, 4096) * (2 * np.abs(m_random) + 5)
        m = jnp.concatenate([m, jnp.asarray(m_random, dtype)])
        c = jnp.concatenate([c, jnp.asarray(c_random, dtype)])
        a = jax.jit(solve_planar_root)(m, c)
        residual = a + m * jnp.tanh(a) - c
        scale = 1 + jnp.abs(c) + jnp.abs(m)
        assert np.all(np.abs(residual) <= 8 * eps * scale), np.max(np.abs(residual) / scale)

        # Reference: 200 steps of pure bisection on the same bracket.
        def bisect(_, bracket):
            low, high = bracket
            mid = 0.5 * (low + high)
            below = mid + m * jnp.tanh(mid) - c < 0
            return jnp.where(below, mid, low), jnp.where(below, high, mid)

        low, high = jax.lax.fori_loop(0, 200, bisect, (c - jnp.abs(m), c + jnp.abs(m)))
        reference = 0.5 * (low + high)
        # A residual of δ moves the root by δ / g'(a): the error bound follows the conditioning.
        slope = 1 + m * (1 - jnp.tanh(reference) ** 2)
        error = np.abs(np.asarray(a - reference))
        assert np.all(error <= 16 * eps * scale / slope), np.max(error * slope / scale)


def _random_variables(bijector, dim, dtype=jnp.float32):
    z = jax.random.normal(jax.random.key(0), (4, dim), dtype)
    return jax.jit(bijector.init)(jax.random.key(1), z), z


@pytest.mark.parametrize("cls", [jb.Planar, jb.Radial])
def test_inverse_gradients_are_the_implicit_ones(cls):
    """d f⁻¹/dy = (∂f/∂z)⁻¹ and d f⁻¹/dθ = -(∂f/∂z)⁻¹ ∂f/∂θ (finite differences), float64."""
    with jax.enable_x64(True):
        dim = 3
        bijector = cls(dim, init_scale=1.0)
        variables, z = _random_variables(bijector, dim, jnp.float64)
        flat, unravel = jax.flatten_util.ravel_pytree(variables)

        def forward(theta, x):
            return bijector.apply(unravel(theta), x[None], method="forward")[0]

        def objective(theta, y):
            # Through the log-det too.
            x, log_det = bijector.apply(unravel(theta), y[None], method="inverse_and_log_det")
            return jnp.sum(jnp.sin(x)) + jnp.sum(log_det)

        @jax.jit  # one program: Jacobians, gradient and central differences
        def run(theta, z1):
            y1 = forward(theta, z1)
            inverse = lambda y: bijector.apply(unravel(theta), y[None], method="inverse")[0]
            h = 1e-6
            numeric = jax.vmap(
                lambda e: (objective(theta + e, y1) - objective(theta - e, y1)) / (2 * h)
            )(h * jnp.eye(theta.size))
            return (
                jax.jacrev(inverse)(y1), jax.jacfwd(forward, argnums=1)(theta, z1),
                jax.grad(objective)(theta, y1), numeric,
            )  # fmt: skip

        jac_inverse, jac_forward, grad, numeric = run(flat, z[0])
        np.testing.assert_allclose(jac_inverse, np.linalg.inv(jac_forward), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [jb.Planar, jb.Radial])
def test_amortized_equals_shared_with_the_same_parameters(cls):
    """The context layout: [w, u, b] (planar), [z0, α̂, β̂] (radial); one context row per event,
    and a context with fewer batch axes broadcasts against z."""
    dim = 3
    shared = cls(dim, init_scale=1.0)
    variables, z = _random_variables(shared, dim)
    params = variables["params"]
    order = ("w", "u", "b") if cls is jb.Planar else ("z0", "alpha_raw", "beta_raw")
    row = jnp.concatenate([jnp.atleast_1d(params[k]) for k in order]).astype(jnp.float32)
    assert row.shape == (cls.num_context_params(dim),)
    amortized = cls(dim, amortized=True)
    assert amortized.init(jax.random.key(0), z, row[None]) == {}

    @jax.jit
    def both_ways(v, z, context):
        methods = ("forward_and_log_det", "inverse_and_log_det")
        expected = [shared.apply(v, z, method=m) for m in methods]
        got = [amortized.apply({}, z, c, method=m) for c in (context, context[0]) for m in methods]
        return expected * 2, got

    expected, got = both_ways(variables, z, jnp.tile(row, (4, 1)))
    flat = jax.flatten_util.ravel_pytree
    np.testing.assert_allclose(flat(got)[0], flat(expected)[0], rtol=1e-5, atol=1e-6)


def test_radial_at_its_centre():
    """At z = z0 (r = 0): f(z0) = z0, log-det = d log(1 + β/α), finite gradients."""
    dim = 2
    bijector = jb.Radial(dim, init_scale=1.0)
    variables = jax.jit(bijector.init)(jax.random.key(3), jnp.zeros((1, dim)))
    p = variables["params"]
    z0 = p["z0"][None]

    def total(v, z):
        for method in ("forward_and_log_det", "inverse_and_log_det"):
            out, ld = bijector.apply(v, z, method=method)
            z = out + jnp.sum(ld)
        return jnp.sum(z)

    @jax.jit
    def run(v, z):
        y, log_det = bijector.apply(v, z, method="forward_and_log_det")
        x = bijector.apply(v, z, method="inverse")
        return y, log_det, x, jax.grad(total, argnums=(0, 1))(v, z)

    y, log_det, x, grads = run(variables, z0)
    np.testing.assert_allclose(y, z0, atol=1e-6)
    np.testing.assert_allclose(x, z0, atol=1e-6)
    alpha = jax.nn.softplus(p["alpha_raw"])
    beta = -alpha + jax.nn.softplus(p["beta_raw"])
    np.testing.assert_allclose(log_det, [dim * np.log1p(beta / alpha)], rtol=1e-5)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_planar_with_zero_w_is_a_translation():
    """w = 0: f(z) = z + u tanh(b) (û = u, no division by ‖w‖²) with log-det 0, both ways."""
    context = jnp.array([[0.0, 0.0, 1.5, -2.0, 0.4]])
    z = jnp.array([[0.3, -0.7]])
    bijector = jb.Planar(2, amortized=True)

    @jax.jit
    def run(z, context):
        y, log_det = bijector.apply({}, z, context, method="forward_and_log_det")
        x, inverse_log_det = bijector.apply({}, y, context, method="inverse_and_log_det")
        return y, log_det, x, inverse_log_det

    y, log_det, x, inverse_log_det = run(z, context)
    np.testing.assert_allclose(y, z + np.tanh(0.4) * np.array([1.5, -2.0]), rtol=1e-6)
    np.testing.assert_allclose(x, z, rtol=1e-6)
    np.testing.assert_allclose([log_det[0], inverse_log_det[0]], 0.0, atol=1e-6)
