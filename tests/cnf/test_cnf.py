"""The CNF bijector: analytic linear flows for every solver, round trips, gradients of both
adjoints against finite differences, composition in a Chain inside a Flow, unbiased stochastic
log-dets, solver statistics (checked against counted evaluations), joint solves, keys, errors,
and the vector fields. Precision-sensitive checks run in float64."""

from __future__ import annotations

import functools

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jgen import bijectors as jb
from jgen.cnf import (
    CNF,
    ConcatSquashDense,
    ConcatSquashField,
    ExactTrace,
    Hutchinson,
    HutchPlusPlus,
    MLPField,
    summarize_stats,
)
from jgen.distributions import Flow

T0, T1 = 0.5, 2.0
MATRIX = np.array([[-0.3, 0.8, 0.1], [-0.5, 0.2, 0.4], [0.3, -0.2, -0.6]])
TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-10)


class LinearField(nn.Module):
    """h(z, t) = A z with A a parameter (float64 under x64), initialised to MATRIX."""

    @nn.compact
    def __call__(self, z, t, context=None):
        a = self.param("a", lambda key: jnp.asarray(MATRIX, jnp.result_type(float)))
        return z @ a.T


def _x(shape=(4, 3), seed=0, dtype=None):
    return jax.random.normal(jax.random.key(seed), shape, dtype or jnp.result_type(float))


def _round_trip(cnf, variables, x):
    """(y, forward log-det, inverse of y, inverse log-det), called eagerly: the CNF compiles
    its solve once per problem and shape, shared by both directions and by init."""
    y, ld = cnf.apply(variables, x, method="forward_and_log_det")
    x_back, ld_inv = cnf.apply(variables, y, method="inverse_and_log_det")
    return y, ld, x_back, ld_inv


# The adjoint only changes how gradients are computed: BacksolveAdjoint's values and gradients
# are compared with RecursiveCheckpointAdjoint's (and finite differences) further down.
RECURSIVE = diffrax.RecursiveCheckpointAdjoint()
BACKSOLVE = diffrax.BacksolveAdjoint()
ADJOINTS = [RECURSIVE, BACKSOLVE]
SOLVERS = [
    # (solver, controller, dt0, tolerance on the map and round trip, adjoint)
    (diffrax.Heun(), diffrax.PIDController(rtol=1e-6, atol=1e-6), None, 1e-4, RECURSIVE),
    (diffrax.Bosh3(), TIGHT, None, 1e-8, RECURSIVE),
    (diffrax.Tsit5(), TIGHT, None, 1e-8, RECURSIVE),
    (diffrax.Dopri5(), TIGHT, None, 1e-8, RECURSIVE),
    (diffrax.Dopri8(), TIGHT, None, 1e-8, RECURSIVE),
    # The adjoint also wraps the primal solve (a custom VJP for backsolve): values once more.
    (diffrax.Heun(), diffrax.PIDController(rtol=1e-6, atol=1e-6), None, 1e-4, BACKSOLVE),
    (diffrax.Bosh3(), TIGHT, None, 1e-8, BACKSOLVE),
    (diffrax.Tsit5(), TIGHT, None, 1e-8, BACKSOLVE),
    (diffrax.Dopri5(), TIGHT, None, 1e-8, BACKSOLVE),
    (diffrax.Dopri8(), TIGHT, None, 1e-8, BACKSOLVE),
    # Constant steps: Euler's error is O(dt), the midpoint rule's O(dt²).
    (diffrax.Euler(), diffrax.ConstantStepSize(), 1e-3, 5e-3, RECURSIVE),
    (diffrax.Midpoint(), diffrax.ConstantStepSize(), 1e-2, 1e-4, RECURSIVE),
]
SOLVER_IDS = [f"{type(s[0]).__name__}-{type(s[4]).__name__}" for s in SOLVERS]


@pytest.mark.parametrize("solver,controller,dt0,tol,adjoint", SOLVERS, ids=SOLVER_IDS)
def test_linear_field_matches_matrix_exponential_and_trace(solver, controller, dt0, tol, adjoint):
    """h = A z: the map is expm((t1 - t0) A) and the log-det (t1 - t0) tr A (eqs. 2.19-2.22)."""
    with jax.enable_x64(True):
        cnf = CNF(
            LinearField(),
            event_shape=(3,),
            t0=T0,
            t1=T1,
            solver=solver,
            stepsize_controller=controller,
            dt0=dt0,
            adjoint=adjoint,
        )
        x = _x()
        variables = cnf.init(jax.random.key(0), x, method="forward_and_log_det")
        assert variables["params"]["vector_field"]["a"].dtype == jnp.float64
        y, ld, x_back, ld_inv = _round_trip(cnf, variables, x)
        expected_y = x @ jax.scipy.linalg.expm((T1 - T0) * jnp.asarray(MATRIX)).T
        expected_ld = (T1 - T0) * np.trace(MATRIX)
        assert y.dtype == jnp.float64 and ld.shape == (4,)
        np.testing.assert_allclose(y, expected_y, rtol=tol, atol=tol)
        np.testing.assert_allclose(ld, np.full(4, expected_ld), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ld_inv, -ld, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(x_back, x, rtol=tol, atol=tol)


def _mlp_cnf(**kwargs):
    field = MLPField((8,), activation="tanh")  # float64 parameters under x64 (the default)
    return CNF(field, event_shape=(2,), stepsize_controller=TIGHT, **kwargs)


def test_log_likelihood_gradients_backsolve_recursive_and_finite_differences():
    """Gradients of the mean log-likelihood (inverse direction) w.r.t. the field's params."""
    with jax.enable_x64(True):
        x = _x((3, 2), seed=2)
        base = _mlp_cnf()
        variables = base.init(jax.random.key(3), x, method="inverse_and_log_det")
        assert all(p.dtype == jnp.float64 for p in jax.tree.leaves(variables))

        def mean_log_likelihood(cnf, v):
            z, ld = cnf.apply(v, x, method="inverse_and_log_det")
            return jnp.mean(-0.5 * jnp.sum(z**2, -1) + ld)

        values, grads = {}, {}
        for name, adjoint in [
            ("recursive", diffrax.RecursiveCheckpointAdjoint()),
            ("backsolve", diffrax.BacksolveAdjoint(stepsize_controller=TIGHT)),
        ]:
            cnf = _mlp_cnf(adjoint=adjoint)
            value_and_grad = jax.value_and_grad(functools.partial(mean_log_likelihood, cnf))
            values[name], grads[name] = jax.jit(value_and_grad)(variables)
        np.testing.assert_allclose(values["backsolve"], values["recursive"], rtol=1e-12)
        flat = {k: ravel_pytree(g)[0] for k, g in grads.items()}
        assert np.linalg.norm(flat["recursive"]) > 1e-3
        np.testing.assert_allclose(flat["backsolve"], flat["recursive"], rtol=1e-6, atol=1e-8)

        # Central finite differences along random directions of the parameter space.
        theta, unravel = ravel_pytree(variables)

        def value(th):  # eager: every evaluation reuses the solve compiled by init above
            return mean_log_likelihood(base, unravel(th))

        eps = 1e-4
        for seed in range(3):
            direction = jax.random.normal(jax.random.key(10 + seed), theta.shape)
            fd = (value(theta + eps * direction) - value(theta - eps * direction)) / (2 * eps)
            np.testing.assert_allclose(flat["recursive"] @ direction, fd, rtol=1e-5, atol=1e-7)


def test_cnf_in_a_chain_inside_a_flow_is_the_change_of_variables():
    with jax.enable_x64(True):
        # ForwardMode so that the reference Jacobian can be taken in forward mode (cheaper to
        # compile than reverse mode through the solver).
        cnf = _mlp_cnf(adjoint=diffrax.ForwardMode())
        bijector = jb.Chain([jb.LULinear(2, weight_init=nn.initializers.normal(1.0)), cnf])
        flow = Flow(bijector, event_shape=(2,))
        x = _x((4, 2), seed=4)
        variables = flow.init(jax.random.key(5), x, method=Flow.log_prob)
        log_prob = flow.apply(variables, x, method=Flow.log_prob)

        bound = bijector.bind({"params": variables["params"]["bijector"]})
        z = bound.inverse(x)

        def inverse_one(xi):
            return bound.inverse(xi[None])[0]

        jacobians = jax.vmap(jax.jacfwd(inverse_one))(x)
        expected = -0.5 * jnp.sum(z**2, -1) - jnp.log(2 * jnp.pi) + jnp.linalg.slogdet(jacobians)[1]
        np.testing.assert_allclose(log_prob, expected, rtol=1e-7, atol=1e-7)

        samples, sample_lp = flow.apply(
            variables, jax.random.key(6), 4, dtype=jnp.float64, method=Flow.sample_and_log_prob
        )
        np.testing.assert_allclose(
            flow.apply(variables, samples, method=Flow.log_prob), sample_lp, rtol=1e-7, atol=1e-7
        )


@pytest.mark.parametrize("estimator", [Hutchinson(), HutchPlusPlus(3)], ids=repr)
def test_stochastic_log_det_is_an_unbiased_estimate(estimator):
    """Every event draws its own probes, so a batch of copies of one point gives independent
    estimates of that point's log-det; their mean matches ExactTrace within 5 standard errors."""
    num = 500
    x = jnp.broadcast_to(jnp.array([0.7, -1.1, 0.4]), (num, 3))
    field = MLPField((8,))
    exact_cnf = CNF(field, event_shape=(3,))
    variables = exact_cnf.init(jax.random.key(7), x[:1], method="forward_and_log_det")
    exact = exact_cnf.apply(variables, x[:1], method="forward_and_log_det")[1][0]
    cnf = CNF(field, event_shape=(3,), trace_estimator=estimator)
    run = jax.jit(lambda v, x, k: cnf.apply(v, x, method="forward_and_log_det", rngs={"trace": k}))
    y, estimates = run(variables, x, jax.random.key(8))
    np.testing.assert_allclose(y, jnp.broadcast_to(y[0], y.shape), rtol=1e-4, atol=1e-4)
    estimates = np.asarray(estimates, np.float64)
    standard_error = estimates.std(ddof=1) / np.sqrt(num)
    assert standard_error > 0
    assert abs(estimates.mean() - float(exact)) < 5 * standard_error


# Float32 tests share one small field and batch shape, so the compiled solves are reused (a
# CNF compiles one solve per configuration and input shape, shared by both directions).
SMALL_FIELD = MLPField((4,))


def _small_x():
    return _x((3, 2), dtype=jnp.float32) * jnp.array([[0.1], [1.0], [4.0]])


def test_stochastic_estimator_needs_a_trace_key_except_at_init():
    cnf = CNF(SMALL_FIELD, event_shape=(2,), trace_estimator=Hutchinson())
    x = _small_x()
    # Flow/DensityObjective initialise with a single key: the 'params' key stands in.
    variables = cnf.init(jax.random.key(0), x, method="inverse_and_log_det")
    with pytest.raises(ValueError, match="rngs=\\{'trace': key\\}"):
        cnf.apply(variables, x, method="inverse_and_log_det")
    ld1 = cnf.apply(variables, x, method="inverse_and_log_det", rngs={"trace": jax.random.key(1)})
    ld2 = cnf.apply(variables, x, method="inverse_and_log_det", rngs={"trace": jax.random.key(1)})
    np.testing.assert_array_equal(ld1[1], ld2[1])


_count = [0]


def _bump(*_):
    _count[0] += 1


class CountingField(nn.Module):
    """An MLP field that counts its evaluations on the host."""

    @nn.compact
    def __call__(self, z, t, context=None):
        jax.debug.callback(_bump, t)
        return MLPField((4,))(z, t, context)


@pytest.mark.parametrize(
    "solver,controller,dt0",
    [
        (diffrax.Tsit5(), diffrax.PIDController(rtol=1e-6, atol=1e-6), None),
        (diffrax.Heun(), diffrax.PIDController(rtol=1e-4, atol=1e-4), 0.1),
        (diffrax.Euler(), diffrax.ConstantStepSize(), 0.25),
    ],
    ids=["Tsit5", "Heun", "Euler"],
)
def test_reported_nfe_equals_counted_evaluations(solver, controller, dt0):
    cnf = CNF(
        CountingField(), event_shape=(2,), solver=solver, stepsize_controller=controller, dt0=dt0
    )
    x = _x((1, 2), dtype=jnp.float32)
    variables = cnf.init(jax.random.key(0), x, method="forward_and_log_det")
    jax.effects_barrier()
    _count[0] = 0
    _, state = cnf.apply(variables, x, method="forward_and_log_det", mutable=["intermediates"])
    jax.effects_barrier()
    (stats,) = state["intermediates"]["cnf_stats"]
    assert int(stats["nfe"][0]) == _count[0] > 0
    assert int(stats["num_steps"][0]) == int(stats["num_accepted_steps"][0]) + int(
        stats["num_rejected_steps"][0]
    )


def test_stats_are_per_event_and_summarized_over_blocks():
    chain = jb.Chain([CNF(SMALL_FIELD, event_shape=(2,)) for _ in range(2)])
    x = _small_x()
    variables = chain.init(jax.random.key(0), x, method="inverse_and_log_det")
    assert set(variables) == {"params"}, "init must not record statistics"
    _, state = chain.apply(variables, x, method="inverse_and_log_det", mutable=["intermediates"])
    recorded = [state["intermediates"][f"{i}_cnf"]["cnf_stats"] for i in range(2)]
    assert [len(r) for r in recorded] == [1, 1], "one record per solve"
    per_block = [r[0] for r in recorded]
    for stats in per_block:
        assert set(stats) == {
            "num_steps",
            "num_accepted_steps",
            "num_rejected_steps",
            "nfe",
            "succeeded",
        }
        assert all(v.shape == (3,) for v in stats.values())
        assert bool(jnp.all(stats["succeeded"]))
        # Tsit5 is FSAL with 7 stages: 6 evaluations per step plus the first one.
        np.testing.assert_array_equal(stats["nfe"], 1 + 6 * stats["num_steps"])
    summary = summarize_stats(state)
    assert int(summary["num_solves"]) == 2 and bool(summary["all_succeeded"])
    expected = sum(float(jnp.mean(s["nfe"])) for s in per_block)
    np.testing.assert_allclose(summary["nfe"], expected)


def test_joint_solve_shares_steps_and_agrees_with_per_event_solves():
    x = _small_x()
    per_event = CNF(SMALL_FIELD, event_shape=(2,))
    joint = CNF(SMALL_FIELD, event_shape=(2,), solve_jointly=True)
    variables = per_event.init(jax.random.key(0), x, method="forward_and_log_det")

    def run(cnf, x):
        return cnf.apply(variables, x, method="forward_and_log_det", mutable=["intermediates"])

    (y_e, ld_e), s_e = run(per_event, x)
    (y_j, ld_j), s_j = run(joint, x)
    np.testing.assert_allclose(y_j, y_e, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ld_j, ld_e, rtol=1e-4, atol=1e-4)
    steps_e = s_e["intermediates"]["cnf_stats"][0]["num_steps"]
    steps_j = s_j["intermediates"]["cnf_stats"][0]["num_steps"]
    assert len(set(np.asarray(steps_j).tolist())) == 1, "a joint solve shares its steps"
    assert int(steps_j[0]) >= int(jnp.max(steps_e))
    # A per-event solve does not depend on the rest of the batch (up to float32 round-off of
    # batched vs unbatched arithmetic, far below the solver tolerance).
    (y_0, ld_0), s_0 = run(per_event, x[:1])
    np.testing.assert_allclose(y_0[0], y_e[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ld_0[0], ld_e[0], rtol=1e-5, atol=1e-6)
    assert int(s_0["intermediates"]["cnf_stats"][0]["num_steps"][0]) == int(steps_e[0])


def test_events_with_several_axes():
    """event_shape (2, 2) with a row-wise field is two independent 2-D flows: its log-det is
    the sum of theirs (up to the solver tolerance: the adaptive steps differ)."""
    cnf_matrix = CNF(SMALL_FIELD, event_shape=(2, 2))
    cnf_rows = CNF(SMALL_FIELD, event_shape=(2,))
    x = _x((3, 2, 2), dtype=jnp.float32)
    variables = cnf_rows.init(jax.random.key(0), x[0], method="forward_and_log_det")
    assert cnf_matrix.event_ndims == 2
    y, ld = cnf_matrix.apply(variables, x, method="forward_and_log_det")
    y_rows, ld_rows = cnf_rows.apply(variables, x.reshape(6, 2), method="forward_and_log_det")
    assert y.shape == (3, 2, 2) and ld.shape == (3,)
    np.testing.assert_allclose(y, y_rows.reshape(3, 2, 2), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ld, ld_rows.reshape(3, 2).sum(-1), rtol=1e-4, atol=1e-4)


def test_context_conditions_the_flow():
    cnf = CNF(ConcatSquashField((8,)), event_shape=(2,))
    x = _x((3, 2), dtype=jnp.float32)
    context = _x((3, 4), seed=1, dtype=jnp.float32)
    variables = cnf.init(jax.random.key(0), x, context, method="forward_and_log_det")
    y, ld = cnf.apply(variables, x, context, method="forward_and_log_det")
    y2, _ = cnf.apply(variables, x, 2 * context, method="forward_and_log_det")
    assert np.max(np.abs(y - y2)) > 1e-3
    x_back, ld_inv = cnf.apply(variables, y, context, method="inverse_and_log_det")
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ld_inv, -ld, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="context"):
        cnf.apply(variables, x, context[:2], method="forward_and_log_det")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(event_shape=()), ValueError, "event_shape"),
        (dict(event_shape=(2, 0)), ValueError, "event_shape"),
        (dict(t0=1.0, t1=1.0), ValueError, "t0 < t1"),
        (dict(solver="tsit5"), TypeError, "solver"),
        (dict(stepsize_controller=None), TypeError, "stepsize_controller"),
        (dict(trace_estimator="hutchinson"), TypeError, "trace_estimator"),
        (dict(stepsize_controller=diffrax.ConstantStepSize()), ValueError, "dt0"),
        (dict(dt0=-0.1), ValueError, "dt0"),
        (dict(max_steps=0), ValueError, "max_steps"),
        (dict(vector_field=lambda z, t: z), TypeError, "vector_field"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    arguments = dict(vector_field=MLPField((4,)), event_shape=(2,)) | kwargs
    with pytest.raises(error, match=match):
        CNF(**arguments)


def test_bad_inputs_are_rejected():
    cnf = CNF(SMALL_FIELD, event_shape=(2,))
    variables = cnf.init(jax.random.key(0), _small_x(), method="forward_and_log_det")
    with pytest.raises(ValueError, match="event shape"):
        cnf.apply(variables, jnp.ones((3, 3)), method="forward_and_log_det")
    with pytest.raises(TypeError, match="floating"):
        cnf.apply(variables, jnp.ones((3, 2), jnp.int32), method="forward_and_log_det")


@pytest.mark.parametrize("field_cls", [MLPField, ConcatSquashField], ids=lambda c: c.__name__)
def test_vector_fields_act_on_one_event_or_a_batch(field_cls):
    field = field_cls((8, 8), activation="softplus")
    z = _x((5, 3), dtype=jnp.float32)
    context = _x((5, 2), seed=1, dtype=jnp.float32)
    variables = field.init(jax.random.key(0), z, 0.3, context)
    batched = field.apply(variables, z, 0.3, context)
    single = field.apply(variables, z[2], 0.3, context[2])
    per_time = field.apply(variables, z, jnp.full((5,), 0.3), context)
    assert batched.shape == (5, 3)
    np.testing.assert_allclose(single, batched[2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(per_time, batched, rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(field.apply(variables, z, 0.9, context) - batched)) > 1e-4
    with jax.enable_x64(True):
        out = field.apply(variables, z.astype(jnp.float64), 0.3, context)
        assert out.dtype == jnp.float64
    with pytest.raises(ValueError, match="activation"):
        field_cls((8,), activation="relu6")


def test_concat_squash_dense_formula():
    """out = (W x + b) ⊙ sigmoid(W_g [t, c] + b_g) + W_b [t, c]   (FFJORD's ConcatSquashLinear)."""
    layer = ConcatSquashDense(4)
    x, c, t = _x((3, 5), dtype=jnp.float32), _x((3, 2), seed=1, dtype=jnp.float32), 0.7
    variables = layer.init(jax.random.key(0), x, t, c)
    p = variables["params"]
    s = jnp.concatenate([jnp.full((3, 1), t), c], axis=-1)
    expected = (x @ p["layer"]["kernel"] + p["layer"]["bias"]) * jax.nn.sigmoid(
        s @ p["hyper_gate"]["kernel"] + p["hyper_gate"]["bias"]
    ) + s @ p["hyper_bias"]["kernel"]
    assert "bias" not in p["hyper_bias"]
    np.testing.assert_allclose(layer.apply(variables, x, t, c), expected, rtol=1e-6, atol=1e-6)


def test_exact_trace_is_the_default_and_event_ndims_is_one():
    cnf = CNF(MLPField((4,)), event_shape=(2,))
    assert isinstance(cnf.trace_estimator, ExactTrace)
    assert cnf.event_ndims == 1


@pytest.mark.parametrize("adjoint", ADJOINTS, ids=lambda a: type(a).__name__)
def test_linear_field_log_det_gradient_is_analytic_for_both_adjoints(adjoint):
    """h = A z: ∂ log-det / ∂A = (t1 - t0) I forward and −(t1 - t0) I inverse, through either
    adjoint (float64, 1e-5); the values of both adjoints are checked for every adaptive solver
    by `test_linear_field_matches_matrix_exponential_and_trace`."""
    with jax.enable_x64(True):
        x = _x()
        cnf = CNF(LinearField(), event_shape=(3,), t0=T0, t1=T1, stepsize_controller=TIGHT,
                  adjoint=adjoint)  # fmt: skip
        variables = cnf.init(jax.random.key(0), x, method="forward_and_log_det")
        y = cnf.apply(variables, x, method="forward")

        def mean_log_det(variables, points, method):
            return jnp.mean(cnf.apply(variables, points, method=method)[1])

        grad_fn = jax.jit(jax.grad(mean_log_det), static_argnums=2)
        identity = (T1 - T0) * np.eye(3)
        for points, method, sign in (
            (x, "forward_and_log_det", 1.0),
            (y, "inverse_and_log_det", -1.0),
        ):
            grad = grad_fn(variables, points, method)
            np.testing.assert_allclose(
                grad["params"]["vector_field"]["a"], sign * identity, atol=1e-5
            )
