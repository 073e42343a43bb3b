"""On-device couplings: the Hungarian permutation against scipy, the Sinkhorn plan converging to
the exact assignment as ε shrinks, pairs drawn from the plan's conditionals, the pairing of a
batch sharded over 4 devices equal to the one-device pairing, and the exact solvers on the
device (no host callback) and on the host (scipy, the default on a CPU backend)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from jgen.cnf import CNF, MLPField
from jgen.flow_matching import (
    ExactOT,
    FlowMatchingObjective,
    HostExactOT,
    Independent,
    SchrodingerBridge,
    Sinkhorn,
    couple,
    hungarian_permutation,
    make_coupling,
    sinkhorn_log_plan,
    squared_distances,
)
from jgen.flow_matching.coupling import resolve_exact_solver
from jgen.parallel.mesh import data_mesh, data_sharding
from jgen.validation import ValidationError


def _points(n, seed, dim=2):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((n, dim)).astype(np.float32)
    x1 = (2.0 * rng.standard_normal((n, dim)) + 1.0).astype(np.float32)
    return x0, x1


_hungarian = jax.jit(hungarian_permutation)


@pytest.mark.parametrize("n", [1, 2, 9, 48])
def test_hungarian_matches_scipy_cost(n):
    for seed in range(3):
        x0, x1 = _points(n, seed)
        cost = squared_distances(x0, x1)
        perm = np.asarray(_hungarian(jnp.asarray(cost, jnp.float32)))
        assert sorted(perm.tolist()) == list(range(n))
        rows, cols = linear_sum_assignment(cost)
        assert cost[perm, np.arange(n)].sum() == pytest.approx(cost[rows, cols].sum(), rel=1e-6)


def test_hungarian_with_ties_and_integer_costs():
    rng = np.random.default_rng(0)
    cost = rng.integers(0, 4, (12, 12)).astype(np.float32)  # many optimal assignments
    perm = np.asarray(_hungarian(jnp.asarray(cost)))
    rows, cols = linear_sum_assignment(cost)
    assert sorted(perm.tolist()) == list(range(12))
    assert cost[perm, np.arange(12)].sum() == cost[rows, cols].sum()


def test_sinkhorn_plan_converges_to_the_exact_assignment():
    n = 16
    x0, x1 = _points(n, 3)
    cost = squared_distances(x0, x1)
    exact = np.asarray(_hungarian(jnp.asarray(cost, jnp.float32)))
    exact_plan = np.zeros((n, n))
    exact_plan[exact, np.arange(n)] = 1.0 / n
    optimum = cost[exact, np.arange(n)].sum() / n
    with jax.enable_x64(True):
        solve = jax.jit(
            lambda c, eps: sinkhorn_log_plan(c, eps, threshold=1e-9, max_iterations=50_000)
        )
        scale = cost.mean()
        plans = [np.exp(np.asarray(solve(cost, r * scale))) for r in (1.0, 0.1, 0.01, 1e-3)]
    distances = [np.abs(plan - exact_plan).sum() for plan in plans]
    gaps = [(cost * plan).sum() - optimum for plan in plans]
    for plan in plans:
        np.testing.assert_allclose(plan.sum(0), 1.0 / n, rtol=1e-3)
    assert all(a > b for a, b in itertools.pairwise(distances)), distances
    assert all(a > b for a, b in itertools.pairwise(gaps)), gaps
    assert distances[-1] < 0.15 and gaps[-1] < 1e-4 * optimum, (distances, gaps)
    np.testing.assert_array_equal(plans[-1].argmax(0), exact)  # rounded: the exact permutation
    argmax = np.asarray(Sinkhorn(epsilon=0.01, sample=False).pairing(None, x0, x1))
    assert cost[argmax, np.arange(n)].sum() / n < 1.05 * optimum  # float32, default settings


def test_sinkhorn_draws_pairs_from_the_column_conditionals():
    x0, x1 = _points(3, 5)
    coupling = SchrodingerBridge(sigma=1.0)
    assert coupling.epsilon == 2.0 and not coupling.relative
    log_plan = np.asarray(coupling.log_plan(x0, x1), np.float64)
    conditional = np.exp(log_plan) / np.exp(log_plan).sum(0)
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = np.asarray(jax.jit(jax.vmap(coupling.pairing, (0, None, None)))(keys, x0, x1))
    for j in range(3):
        frequency = np.bincount(draws[:, j], minlength=3) / len(keys)
        np.testing.assert_allclose(frequency, conditional[:, j], atol=0.03)


@pytest.mark.parametrize(
    "coupling",
    [ExactOT(solver="hungarian"), ExactOT(solver="host"), Sinkhorn(), SchrodingerBridge(sigma=0.5)],
    ids=["exact", "exact_host", "sinkhorn", "sb"],
)
def test_pairing_over_four_devices_equals_the_one_device_pairing(coupling):
    assert jax.device_count() >= 4
    x0, x1 = _points(32, 7)
    key = jax.random.key(1)
    pairing = jax.jit(coupling.pairing)
    single = np.asarray(pairing(key, jax.device_put(x0, jax.devices()[0]), x1))
    sharding = data_sharding(data_mesh(num_devices=4))
    x0s, x1s = jax.device_put(x0, sharding), jax.device_put(x1, sharding)
    sharded = pairing(key, x0s, x1s)
    np.testing.assert_array_equal(np.asarray(sharded), single)
    paired = jax.jit(coupling)(key, x0s, x1s)
    np.testing.assert_array_equal(np.asarray(paired), x0[single])


def test_exact_solvers_on_the_device_or_the_host_and_the_default_per_backend():
    cnf = CNF(MLPField((8,)), (2,))
    x = jnp.ones((8, 2))
    objective = FlowMatchingObjective(cnf, coupling=ExactOT(solver="hungarian"))
    params, state = objective.init(jax.random.key(0), {"x": x})

    def jaxpr(coupling):
        fm = FlowMatchingObjective(cnf, coupling=coupling)
        loss = lambda p: fm.loss(p, state, {"x": x}, jax.random.key(1))[0]
        return str(jax.make_jaxpr(jax.grad(loss))(params))

    assert "callback" not in jaxpr(ExactOT(solver="hungarian"))
    assert "callback" in jaxpr("ot_host") and "callback" in jaxpr(ExactOT(solver="host"))
    # 'auto' ('ot'): scipy on a single-process CPU backend (the tests' backend), else the loops.
    assert jax.default_backend() == "cpu" and resolve_exact_solver("auto") == "host"
    assert "callback" in jaxpr("ot")
    # The same exact pairing either way (an optimal assignment of generic points is unique).
    x0, x1 = _points(10, 11)
    on_device = couple(ExactOT(solver="hungarian"), x0, x1)
    np.testing.assert_array_equal(on_device, couple(HostExactOT(), x0, x1))
    np.testing.assert_array_equal(on_device, couple("ot", x0, x1))


def test_coupling_bad_arguments():
    with pytest.raises(ValidationError, match="coupling must be"):
        make_coupling("optimal")
    with pytest.raises(ValidationError, match="give a key"):
        couple("sinkhorn", jnp.zeros((3, 2)), jnp.zeros((3, 2)))
    with pytest.raises(ValidationError, match="epsilon"):
        Sinkhorn(epsilon=0.0)
    with pytest.raises(ValidationError, match="sigma"):
        SchrodingerBridge(sigma=-1.0)
    with pytest.raises(ValidationError, match="same shape"):
        Independent()(None, jnp.zeros((3, 2)), jnp.zeros((4, 2)))
    with pytest.raises(ValidationError, match="ExactOT: solver must be one of"):
        ExactOT(solver="scipy")
    with pytest.raises(ValidationError, match="square"):
        hungarian_permutation(jnp.zeros((3, 4)))
