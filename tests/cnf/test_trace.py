"""Trace estimators: exactness, unbiasedness (confidence intervals over many probes) and the
variance orderings theory predicts (Rademacher vs Gaussian, Hutch++ vs Hutchinson)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.cnf import ExactTrace, Hutchinson, HutchPlusPlus
from jgen.cnf.trace import UNROLL_MAX_DIM

NUM_SAMPLES = 20_000


def _linear(a):
    return lambda z: a @ z


@functools.partial(jax.jit, static_argnums=(0, 2))
def _estimates(estimator, a, num, key):
    """``num`` independent estimates of tr(a), each with fresh probes."""
    z = jnp.ones(a.shape[0], a.dtype)

    def one(k):
        probes = estimator.init_probes(k, z.shape, z.dtype)
        return estimator(_linear(a), z, probes)[1]

    return jax.vmap(one)(jax.random.split(key, num))


def _random_matrix(dim, seed=0):
    return jax.random.normal(jax.random.key(seed), (dim, dim))


def _decaying_spectrum(dim, rate=0.5, seed=1):
    """Symmetric A = U diag(rate^i) U^T: its mass is concentrated in a few directions."""
    u, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(seed), (dim, dim)))
    return (u * rate ** jnp.arange(dim)) @ u.T


def _diagonal_dominant(dim, seed=2):
    noise = 0.1 * jax.random.normal(jax.random.key(seed), (dim, dim))
    return jnp.diag(jnp.linspace(1.0, 3.0, dim)) + noise


@pytest.mark.parametrize("max_batch", [256, 2], ids=["one_batch", "chunked"])
def test_exact_trace_is_exact(max_batch):
    a = _random_matrix(5)
    z = jnp.linspace(-1.0, 1.0, 5)
    estimator = ExactTrace(max_batch=max_batch)
    f_z, trace = estimator(_linear(a), z, estimator.init_probes(jax.random.key(0), (5,), z.dtype))
    np.testing.assert_allclose(f_z, a @ z, rtol=1e-6)
    np.testing.assert_allclose(trace, jnp.trace(a), rtol=1e-5)

    def nonlinear(v):
        return jnp.tanh(a @ v) * v[::-1]

    _, trace = estimator(nonlinear, z, None)
    np.testing.assert_allclose(trace, jnp.trace(jax.jacfwd(nonlinear)(z)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim", [1, 2, 3], ids=lambda d: f"D={d}")
def test_exact_trace_and_frobenius_on_both_paths(dim):
    """D <= UNROLL_MAX_DIM (separate JVPs) and larger D (one vmapped JVP): trace and squared
    Frobenius norm of the autodiff Jacobian, and f(z)."""
    assert 1 <= UNROLL_MAX_DIM < 3  # both paths are covered by D = 1, 2, 3
    a = _random_matrix(dim, seed=dim)
    z = jnp.linspace(-1.0, 1.0, dim)

    def nonlinear(v):
        return jnp.tanh(a @ v) * v[::-1]

    f_z, trace, frob = ExactTrace().estimate(nonlinear, z, None, frobenius=True)
    jacobian = jax.jacfwd(nonlinear)(z)
    np.testing.assert_allclose(f_z, nonlinear(z), rtol=1e-6)
    np.testing.assert_allclose(trace, jnp.trace(jacobian), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frob, jnp.sum(jacobian**2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["jvp", "vjp"])
@pytest.mark.parametrize("num_probes", [1, 2])
def test_hutchinson_is_the_probes_quadratic_form(mode, num_probes):
    """One probe (a plain product) and several (vmapped): mean_k ε_k^T A ε_k, and ||A ε||^2."""
    a = _random_matrix(4)
    z = jnp.linspace(-1.0, 1.0, 4)
    estimator = Hutchinson(num_probes=num_probes, mode=mode)
    probes = estimator.init_probes(jax.random.key(3), (4,), z.dtype)
    _, trace, frob = estimator.estimate(_linear(a), z, probes, frobenius=True)
    product = a if mode == "jvp" else a.T
    expected = jnp.mean(jnp.einsum("ki,ij,kj->k", probes, a, probes))
    np.testing.assert_allclose(trace, expected, rtol=1e-5)
    np.testing.assert_allclose(frob, jnp.mean(jnp.sum((probes @ product.T) ** 2, -1)), rtol=1e-5)


STOCHASTIC = [
    Hutchinson("gaussian"),
    Hutchinson("rademacher"),
    Hutchinson("gaussian", num_probes=3, mode="vjp"),
    HutchPlusPlus(6),
    HutchPlusPlus(7, distribution="gaussian", mode="vjp"),
]


@pytest.mark.parametrize("estimator", STOCHASTIC, ids=repr)
def test_stochastic_estimators_are_unbiased(estimator):
    a = _random_matrix(8)
    samples = np.asarray(_estimates(estimator, a, NUM_SAMPLES, jax.random.key(3)), np.float64)
    standard_error = samples.std(ddof=1) / np.sqrt(NUM_SAMPLES)
    assert standard_error > 0, "a stochastic estimate that never varies cannot be tested"
    error = abs(samples.mean() - float(jnp.trace(a)))
    assert error < 5 * standard_error, (error, standard_error)


def test_hutchinson_variance_matches_theory_and_rademacher_beats_gaussian():
    a = _diagonal_dominant(8)
    s = (a + a.T) / 2  # ε^T A ε = ε^T S ε
    frobenius = float(jnp.sum(s**2))
    off_diagonal = frobenius - float(jnp.sum(jnp.diag(s) ** 2))
    var = {}
    for dist in ("gaussian", "rademacher"):
        samples = _estimates(Hutchinson(dist), a, NUM_SAMPLES, jax.random.key(4))
        var[dist] = float(np.var(np.asarray(samples, np.float64), ddof=1))
    # Theory: 2 ||S||_F^2 (Gaussian), 2 Σ_{i≠j} S_ij^2 (Rademacher); sample variances of 20k
    # draws are within ~10% (Gaussian has heavy-ish tails: its variance estimate is noisier).
    np.testing.assert_allclose(var["gaussian"], 2 * frobenius, rtol=0.1)
    np.testing.assert_allclose(var["rademacher"], 2 * off_diagonal, rtol=0.1)
    assert var["rademacher"] < 0.1 * var["gaussian"], var


def test_hutch_plus_plus_beats_hutchinson_on_a_fast_decaying_spectrum():
    a = _decaying_spectrum(16)
    matvecs = 9
    var_hpp = np.var(
        np.asarray(_estimates(HutchPlusPlus(matvecs), a, NUM_SAMPLES, jax.random.key(5)))
    )
    var_h = np.var(
        np.asarray(_estimates(Hutchinson(num_probes=matvecs), a, NUM_SAMPLES, jax.random.key(5)))
    )
    assert var_hpp < 0.5 * var_h, (var_hpp, var_h)


def test_hutch_plus_plus_is_exact_when_the_sketch_spans_the_space():
    a = _random_matrix(2)
    estimates = _estimates(HutchPlusPlus(6), a, 16, jax.random.key(6))
    np.testing.assert_allclose(estimates, jnp.trace(a) * jnp.ones(16), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [Hutchinson, HutchPlusPlus], ids=lambda m: m.__name__)
def test_jvp_and_vjp_modes_agree_for_the_same_probes(make):
    # A gradient field has a symmetric Jacobian: Hutch++ sketches A (jvp) or A^T (vjp), so
    # only then are the two modes the same estimate (both are unbiased in any case).
    a = _random_matrix(6)
    z = jnp.linspace(-1.0, 1.0, 6)
    f = jax.grad(lambda v: jnp.sum(jnp.log(jnp.cosh(a @ v))))
    fwd, rev = make(mode="jvp"), make(mode="vjp")
    probes = fwd.init_probes(jax.random.key(7), z.shape, z.dtype)
    (fz1, t1), (fz2, t2) = fwd(f, z, probes), rev(f, z, probes)
    np.testing.assert_allclose(fz1, fz2, rtol=1e-6)
    np.testing.assert_allclose(t1, t2, rtol=1e-4)


def test_probes_shapes_dtypes_and_determinism():
    key = jax.random.key(8)
    probes = Hutchinson(num_probes=3).init_probes(key, (4,), jnp.float32)
    assert probes.shape == (3, 4) and probes.dtype == jnp.float32
    assert set(np.unique(np.asarray(probes))) <= {-1.0, 1.0}
    np.testing.assert_array_equal(
        probes, Hutchinson(num_probes=3).init_probes(key, (4,), jnp.float32)
    )
    hpp = HutchPlusPlus(7).init_probes(key, (5,), jnp.float32)
    assert hpp["sketch"].shape == (2, 5) and hpp["test"].shape == (3, 5)
    assert ExactTrace().init_probes(key, (4,), jnp.float32) is None
    assert not ExactTrace.stochastic and Hutchinson.stochastic and HutchPlusPlus.stochastic


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Hutchinson("uniform"), "distribution"),
        (lambda: Hutchinson(num_probes=0), "num_probes"),
        (lambda: Hutchinson(mode="fwd"), "mode"),
        (lambda: HutchPlusPlus(2), "num_matvecs"),
        (lambda: ExactTrace(max_batch=0), "max_batch"),
    ],
)
def test_bad_arguments_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_estimators_need_one_flat_event():
    with pytest.raises(ValueError, match=r"\(D,\)"):
        ExactTrace()(lambda z: z, jnp.ones((2, 3)), None)
