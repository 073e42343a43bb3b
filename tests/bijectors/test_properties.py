"""Property tests over the registry of every bijector (see `registry.py`).

For each case and for float32 and float64: round trip, log-det against slogdet of the autodiff
Jacobian, forward log-det = -inverse log-det at the matching point, jit and vmap agree with the
plain call, and distrax interop (a jgen bijector as a distrax.Bijector in distrax.Transformed).
All quantities of one (case, dtype) are computed once and shared by the tests.
"""

from __future__ import annotations

import functools

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bijectors as jb
from tests.bijectors.registry import all_cases, make_inputs

CASES = all_cases()
DTYPES = ["float32", "float64"]
TOL64 = dict(rtol=1e-7, atol=1e-8)


def _tol(case, dtype, logdet=False):
    if dtype == "float64":
        return dict(rtol=TOL64["rtol"] * 100, atol=TOL64["atol"] * 100) if logdet else TOL64
    return dict(rtol=case.rtol, atol=case.logdet_atol if logdet else case.atol)


@functools.cache
def evaluate(name: str, dtype: str) -> dict[str, np.ndarray]:
    case = next(c for c in CASES if c.name == name)
    with jax.enable_x64(dtype == "float64"):
        x, context = make_inputs(case, getattr(jnp, dtype))
        bij = case.make()
        init_method = "inverse_and_log_det" if case.init_inverse else "forward_and_log_det"
        init_input = x
        if case.init_inverse:
            # Initialise on data-space points: push x through a throwaway default init first.
            fwd0 = bij.init(jax.random.key(1), x, context, method="forward_and_log_det")
            init_input = bij.apply(fwd0, x, context, method="forward")
        variables = bij.init(jax.random.key(2), init_input, context, method=init_method)

        def fwd(v, x, c):
            return bij.apply(v, x, c, method="forward_and_log_det")

        def inv(v, y, c):
            return bij.apply(v, y, c, method="inverse_and_log_det")

        def per_event_logdet(v, xi, ci):
            # log|det J| of one event from the autodiff Jacobian of the flattened map.
            def flat_forward(z):
                c = None if ci is None else ci[None]
                return fwd(v, z.reshape((1, *xi.shape)), c)[0].reshape(-1)

            jac = jax.jacfwd(flat_forward)(xi.reshape(-1))
            return jnp.linalg.slogdet(jac)[1]

        @jax.jit
        def compute(v, x, c):
            y, ld_f = fwd(v, x, c)
            x_rt, ld_i = inv(v, y, c)
            jac_ld = jax.vmap(per_event_logdet, in_axes=(None, 0, 0 if c is not None else None))(
                v, x, c
            )
            one = lambda xi, ci: fwd(v, xi[None], None if ci is None else ci[None])
            y_vm, ld_vm = jax.vmap(one, in_axes=(0, 0 if c is not None else None))(x, c)
            return dict(
                y=y, ld_f=ld_f, x_rt=x_rt, ld_i=ld_i, jac_ld=jac_ld,
                y_vmap=y_vm[:, 0], ld_vmap=ld_vm[:, 0],
            )  # fmt: skip

        out = compute(variables, x, context)
        y_eager, ld_eager = fwd(variables, x, context)
        out.update(x=x, y_eager=y_eager, ld_eager=ld_eager)

        dbij = jb.to_distrax(bij, variables, context=context)
        y_d, ld_d = dbij.forward_and_log_det(x)
        base = distrax.Independent(
            distrax.Normal(jnp.zeros(case.event_shape, x.dtype), 1.0), len(case.event_shape)
        )
        out.update(y_distrax=y_d, ld_distrax=ld_d)
        if context is None:
            # distrax.Transformed: log q(y) = log p(f⁻¹(y)) + log|det J_{f⁻¹}(y)|
            y_shape = out["y"].shape[1:]
            if y_shape == case.event_shape:
                transformed = distrax.Transformed(base, dbij)
                out["lp_distrax"] = transformed.log_prob(out["y"])
                out["lp_manual"] = base.log_prob(out["x_rt"]) + out["ld_i"]
        return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(
    scope="module",
    params=[(c.name, d) for c in CASES for d in DTYPES],
    ids=[f"{c.name}-{d}" for c in CASES for d in DTYPES],
)
def name_and_dtype(request):
    """One (case, dtype): a module-scoped parameter, so pytest runs the tests of one case
    together (and a test worker computes `evaluate` once per case, not once per test)."""
    return request.param


@pytest.fixture
def name(name_and_dtype):
    return name_and_dtype[0]


@pytest.fixture
def dtype(name_and_dtype):
    return name_and_dtype[1]


def _case(name):
    return next(c for c in CASES if c.name == name)


def test_output_dtype_and_shapes(name, dtype):
    r = evaluate(name, dtype)
    case = _case(name)
    assert r["y"].dtype == np.dtype(dtype), f"forward output is {r['y'].dtype}, expected {dtype}"
    assert r["ld_f"].shape == (r["x"].shape[0],), "log-det must have the batch shape"
    assert r["ld_i"].shape == (r["x"].shape[0],)
    assert r["y"].size == r["x"].size
    assert r["x"].shape[1:] == case.event_shape
    assert np.all(np.isfinite(r["y"])) and np.all(np.isfinite(r["ld_f"]))


def test_round_trip(name, dtype):
    r = evaluate(name, dtype)
    np.testing.assert_allclose(r["x_rt"], r["x"], **_tol(_case(name), dtype))


def test_log_det_matches_autodiff_jacobian(name, dtype):
    r = evaluate(name, dtype)
    np.testing.assert_allclose(r["ld_f"], r["jac_ld"], **_tol(_case(name), dtype, logdet=True))


def test_inverse_log_det_is_minus_forward(name, dtype):
    r = evaluate(name, dtype)
    np.testing.assert_allclose(r["ld_i"], -r["ld_f"], **_tol(_case(name), dtype, logdet=True))


def test_jit_and_vmap_match_plain_call(name, dtype):
    r = evaluate(name, dtype)
    tol = _tol(_case(name), dtype)
    np.testing.assert_allclose(r["y"], r["y_eager"], **tol)
    np.testing.assert_allclose(r["ld_f"], r["ld_eager"], **_tol(_case(name), dtype, True))
    np.testing.assert_allclose(r["y_vmap"], r["y"], **tol)
    np.testing.assert_allclose(r["ld_vmap"], r["ld_f"], **_tol(_case(name), dtype, True))


def test_distrax_interop(name, dtype):
    r = evaluate(name, dtype)
    tol = _tol(_case(name), dtype)
    np.testing.assert_allclose(r["y_distrax"], r["y"], **tol)
    np.testing.assert_allclose(r["ld_distrax"], r["ld_f"], **_tol(_case(name), dtype, True))
    if "lp_distrax" in r:
        np.testing.assert_allclose(r["lp_distrax"], r["lp_manual"], **tol)


def test_registry_covers_every_public_bijector():
    """Every concrete Bijector exported by jgen.bijectors or jgen.cnf has a registry case."""
    covered = set()
    for case in CASES:
        stack = [case.make()]
        while stack:
            b = stack.pop()
            covered.add(type(b))
            for attr in ("bijectors", "bijector", "inner"):
                child = getattr(b, attr, None)
                if isinstance(child, (list, tuple)):
                    stack.extend(c for c in child if isinstance(c, jb.Bijector))
                elif isinstance(child, jb.Bijector):
                    stack.append(child)
    from jgen import cnf

    exported = {
        obj
        for module in (jb, cnf)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, jb.Bijector) and obj is not jb.Bijector
    }
    missing = sorted(t.__name__ for t in exported - covered)
    assert not missing, f"bijectors without a registry case: {missing}"
