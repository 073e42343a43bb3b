"""The direct-call API for research code (`jgen.init`, `jgen.bind`, `to_distrax(flow, ...)`)
and the traps it removes: placeholder init of ActNorm, unbound members, modes switched by
mutability, traced ``num_samples``, positional parameter names."""

import inspect

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen
from jgen import bijectors as jb
from jgen.distributions import Flow
from jgen.flows import DensityObjective
from jgen.validation import ValidationError

X = jax.random.normal(jax.random.key(0), (64, 2)) * jnp.array([2.0, 0.5]) + 1.0


def _coupling(parity):
    return jb.AffineCoupling((2,), "alternating", parity=parity, hidden_dims=(8,),
                             zero_init_last=False)  # fmt: skip


@pytest.fixture(scope="module")
def flow_and_variables():
    flow = Flow(jb.Chain([jb.ActNorm(), _coupling(0), jb.Reverse(), jb.ActNorm(), _coupling(1)]),
                (2,))  # fmt: skip
    return flow, jgen.init(flow, jax.random.key(1), X)


@pytest.fixture(scope="module")
def residual():
    flow = Flow(jb.residual_flow((2,), num_blocks=1, hidden_dims=(8,), logdet="roulette"), (2,))
    return flow, jgen.init(flow, jax.random.key(2), X)


# Initialisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, match",
    [(jnp.zeros((16, 2)), "constant"), (X[:1], "at least 2 examples"),
     (X.at[:, 1].set(3.0), r"feature\(s\) 1 ")],
)  # fmt: skip
def test_actnorm_refuses_a_degenerate_init_batch(data, match):
    flow = Flow(jb.Chain([jb.ActNorm(), _coupling(0)]), (2,))
    with pytest.raises(ValidationError, match=match):
        jgen.init(flow, jax.random.key(0), data)
    # The README's old pattern fails the same way instead of setting log_scale ≈ -6.9.
    with pytest.raises(ValidationError, match="ActNorm"):
        flow.init(jax.random.key(0), data, method=Flow.log_prob)


def test_init_on_data_normalises_and_later_calls_do_not_check_again(flow_and_variables):
    flow, variables = flow_and_variables
    z = jgen.bind(flow, variables).bijector.bijectors[0].inverse(X)
    np.testing.assert_allclose(jnp.std(z, axis=0), 1.0, rtol=1e-3)
    # A one-example (or constant) batch is fine once the parameters exist.
    assert jgen.bind(flow, variables).log_prob(jnp.zeros((1, 2))).shape == (1,)


# Bound objects ----------------------------------------------------------------------------------


def test_bound_flow_matches_apply_and_members_are_bound(flow_and_variables):
    flow, variables = flow_and_variables
    model = jgen.bind(flow, variables)
    np.testing.assert_array_equal(model.log_prob(X), flow.apply(variables, X, method="log_prob"))
    assert model.sample(jax.random.key(3), 5).shape == (5, 2)
    # Members use the flow's variables: no {'params': variables['params']['bijector']} surgery.
    chain = model.bijector
    z, ld = chain.inverse_and_log_det(X)
    h, ld_parts = X, 0.0
    for member in chain.bijectors:
        h, part = member.inverse_and_log_det(h)
        ld_parts = ld_parts + part
    np.testing.assert_allclose(h, z, rtol=1e-6)
    np.testing.assert_allclose(ld_parts, ld, rtol=1e-5)
    x_back, _ = chain.forward_and_log_det(z)
    np.testing.assert_allclose(x_back, X, rtol=1e-4, atol=1e-5)


def test_bound_calls_are_pure_functions_under_jit_vmap_and_grad(flow_and_variables):
    flow, variables = flow_and_variables
    expected = jgen.bind(flow, variables).log_prob(X)
    jitted = jax.jit(lambda v, x: jgen.bind(flow, v).log_prob(x))(variables, X)
    np.testing.assert_allclose(jitted, expected, rtol=1e-5)
    model = jgen.bind(flow, variables)  # bound outside, called inside the transforms
    per_example = jax.vmap(lambda x: model.log_prob(x[None])[0])(X)
    np.testing.assert_allclose(per_example, expected, rtol=1e-5)

    def nll(v):
        return -jnp.mean(jgen.bind(flow, v).log_prob(X))

    grads = jax.grad(nll)(variables)
    leaf = variables["params"]["bijector"]["0_act_norm"]["shift"]
    eps = 1e-3
    bumped = jax.tree.map(lambda a: a, variables)
    bumped["params"]["bijector"]["0_act_norm"]["shift"] = leaf.at[0].add(eps)
    finite_difference = (nll(bumped) - nll(variables)) / eps
    np.testing.assert_allclose(
        grads["params"]["bijector"]["0_act_norm"]["shift"][0], finite_difference, rtol=0.05
    )


def test_residual_members_are_bound_with_their_spectral_vectors(residual):
    flow, variables = residual
    assert set(variables) == {"params", "spectral"}
    block = jgen.bind(flow, variables).bijector.bijectors[1]
    assert isinstance(block.module, jb.ResidualBlock)
    y = block.forward(block.inverse(X))
    np.testing.assert_allclose(y, X, atol=1e-4)


def test_to_distrax_takes_the_flows_own_variables(flow_and_variables):
    flow, variables = flow_and_variables
    d = jb.to_distrax(flow, variables)
    z, ld = d.inverse_and_log_det(X)
    base = distrax.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2))
    np.testing.assert_allclose(
        base.log_prob(z) + ld, jgen.bind(flow, variables).log_prob(X), rtol=1e-5
    )
    member = jb.to_distrax(jgen.bind(flow, variables).bijector.bijectors[1])
    assert member.forward(X).shape == X.shape
    with pytest.raises(TypeError, match="to_distrax expects"):
        jb.to_distrax(object(), variables)


# Modes ------------------------------------------------------------------------------------------


def test_batchnorm_mode_is_explicit_and_mutability_only_writes():
    flow = Flow(jb.Chain([jb.BatchNorm(), _coupling(0)]), (2,))
    variables = jgen.init(flow, jax.random.key(0), X)
    stats = variables["batch_stats"]["bijector"]["0_batch_norm"]
    written = lambda updates: updates["batch_stats"]["bijector"]["0_batch_norm"]
    y = X[:8] * 3.0
    eval_lp = flow.apply(variables, y, method=Flow.log_prob)
    # Mutable but not train: evaluation, nothing written.
    lp, updates = flow.apply(variables, y, method=Flow.log_prob, mutable=["batch_stats"])
    np.testing.assert_array_equal(lp, eval_lp)
    jax.tree.map(np.testing.assert_array_equal, written(updates), stats)
    # Train and immutable: batch statistics are used, nothing can be written.
    train_lp = jgen.bind(flow, variables).log_prob(y, train=True)
    assert not np.allclose(train_lp, eval_lp)
    # Train and mutable: the same values, and the running statistics move.
    lp, updates = flow.apply(variables, y, train=True, method=Flow.log_prob,
                             mutable=["batch_stats"])  # fmt: skip
    np.testing.assert_array_equal(lp, train_lp)
    assert not np.allclose(written(updates)["mean"], stats["mean"])


def test_residual_estimator_follows_the_mode_not_the_collections(residual):
    flow, variables = residual
    exact = jgen.bind(flow, variables).log_prob(X)
    key = {"trace": jax.random.key(5)}
    # The 'spectral' collection mutable in evaluation: still the exact evaluation estimator.
    lp, _ = flow.apply(variables, X, method=Flow.log_prob, mutable=["spectral"])
    np.testing.assert_allclose(lp, exact, rtol=1e-5)
    # Train mode, immutable: the roulette estimator (needs the 'trace' stream, says so).
    with pytest.raises(ValueError, match="rngs=\\{'trace'"):
        jgen.bind(flow, variables).log_prob(X, train=True)
    roulette = jgen.bind(flow, variables, rngs=key).log_prob(X, train=True)
    assert not np.allclose(roulette, exact)
    with jb.mode(train=True):
        np.testing.assert_array_equal(jgen.bind(flow, variables, rngs=key).log_prob(X), roulette)


def test_density_objective_trains_in_train_mode_and_evaluates_in_eval_mode(residual):
    flow, _ = residual
    objective = DensityObjective(flow)
    params, state = objective.init(jax.random.key(0), {"x": X})
    variables = {"params": params, **state}
    metrics = objective.evaluate(params, state, {"x": X}, jax.random.key(1))
    np.testing.assert_allclose(-metrics["nll"], jgen.bind(flow, variables).log_prob(X), rtol=1e-5)


# Sampling and names -----------------------------------------------------------------------------


def test_traced_num_samples_gets_a_clear_error(flow_and_variables):
    flow, variables = flow_and_variables
    model = jgen.bind(flow, variables)
    with pytest.raises(TypeError, match="static_argnames='num_samples'"):
        jax.jit(lambda key, n: model.sample(key, n))(jax.random.key(0), 3)
    sample = jax.jit(lambda key, n: model.sample(key, n), static_argnames="n")
    assert sample(jax.random.key(0), n=3).shape == (3, 2)


def test_chain_parameter_names_are_readable_and_stable(flow_and_variables):
    _, variables = flow_and_variables
    assert sorted(variables["params"]["bijector"]) == [
        "0_act_norm", "1_affine_coupling", "2_act_norm", "3_affine_coupling"
    ]  # fmt: skip
    # Inserting a parameter-free layer renames nothing.
    flow = Flow(jb.Chain([jb.Reverse(), jb.ActNorm(), jb.Permute((1, 0)), _coupling(0)]), (2,))
    names = jgen.init(flow, jax.random.key(0), X)["params"]["bijector"]
    assert sorted(names) == ["0_act_norm", "1_affine_coupling"]
    chain = jb.Chain([jb.Reverse(), jb.Reverse(), jb.LULinear(2), jb.Chain([jb.Affine((2,))])])
    assert [b.name for b in chain.bijectors] == ["0_reverse", "0_reverse_1", "0_lu_linear",
                                                 "1_chain"]  # fmt: skip
    nested = jgen.init(chain, jax.random.key(0), X)["params"]
    assert sorted(nested["1_chain"]) == ["0_affine"]


# One log_prob convention ------------------------------------------------------------------------


def test_objectives_share_one_log_prob_convention(flow_and_variables):
    """log_prob(params, model_state, x, ...) -> log p(x) of shape (B,): an array, no state."""
    from jgen.autoregressive import MADE, AutoregressiveObjective
    from jgen.flow_matching import FlowMatchingObjective, MoserObjective
    from jgen.seq2seq import Seq2SeqObjective
    from jgen.train import TrainEvalObjective
    from jgen.vi import ReverseKL

    for cls in (DensityObjective, TrainEvalObjective, FlowMatchingObjective, MoserObjective,
                AutoregressiveObjective, ReverseKL, Seq2SeqObjective):  # fmt: skip
        names = list(inspect.signature(cls.log_prob).parameters)[:4]
        assert names[:3] == ["self", "params", "model_state"] and names[3] in ("x", "z"), names

    flow, variables = flow_and_variables
    params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    made = AutoregressiveObjective(MADE((4,), 3, hidden_dims=(8,)))
    tokens = jnp.array([[0, 1, 2, 1], [2, 2, 0, 0], [1, 0, 0, 2]])
    made_params, made_state = made.init(jax.random.key(0), {"x": tokens})
    vi = ReverseKL(flow, energy=lambda z: jnp.sum(z**2, -1) / 2)
    cases = [
        (DensityObjective(flow).log_prob(params, state, X), X.shape[0],
         jgen.bind(flow, variables).log_prob(X)),
        (made.log_prob(made_params, made_state, tokens), 3,
         -made.evaluate(made_params, made_state, {"x": tokens}, None)["nll"]),
        (vi.log_prob(params, state, X), X.shape[0], jgen.bind(flow, variables).log_prob(X)),
    ]  # fmt: skip
    for log_prob, batch, expected in cases:
        assert isinstance(log_prob, jax.Array) and log_prob.shape == (batch,)
        np.testing.assert_allclose(log_prob, expected, rtol=1e-5)
