"""Flow matching: the loss is minimal (and 0 for a point mass) at the analytic marginal field,
the OT coupling is an optimal permutation (brute force), a small model learns 8gaussians
through the shared data-parallel trainer, and its exact log-likelihood through the CNF agrees
with the Hutchinson estimate's mean."""

from __future__ import annotations

import itertools

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.cnf import CNF, ConcatSquashField, FlattenedField, Hutchinson, MLPField
from jgen.data import load_dataset
from jgen.distributions import bits_per_dim
from jgen.flow_matching import (
    FlowMatchingObjective,
    InterpolantPath,
    LinearGaussianPath,
    couple,
    ot_permutation,
    squared_distances,
)
from jgen.train import TrainConfig, fit, make_optimizer

_LOOSE = diffrax.PIDController(rtol=1e-3, atol=1e-3)


class GaussianMarginalField(nn.Module):
    """The marginal field of the linear Gaussian path from N(0, I) to N(m, s² I), plus a
    constant ``shift`` (a parameter): x_t = a_t x0 + t x1 with a_t = 1 − (1 − σ) t and
    u = x1 − (1 − σ) x0 are jointly Gaussian, so

        E[u | x_t = x] = m + (t s² − (1 − σ) a_t) / (a_t² + t² s²) (x − t m).
    """

    mean: tuple[float, ...]
    std: float
    sigma_min: float
    shift: tuple[float, ...]

    @nn.compact
    def __call__(self, z, t, context=None):
        shift = self.param("shift", lambda key: jnp.asarray(self.shift, z.dtype))
        t = jnp.asarray(t, z.dtype)
        t = t[..., None] if t.ndim else t
        m = jnp.asarray(self.mean, z.dtype)
        a = 1.0 - (1.0 - self.sigma_min) * t
        s2 = self.std**2
        gain = (t * s2 - (1.0 - self.sigma_min) * a) / (a**2 + t**2 * s2)
        return m + gain * (z - t * m) + shift


def _analytic_loss(std, sigma_min, shift, num=20_000, seed=0):
    mean = (1.5, -0.5)
    field = GaussianMarginalField(mean, std, sigma_min, shift)
    objective = FlowMatchingObjective(CNF(field, (2,)), path=LinearGaussianPath(sigma_min))
    data_key, loss_key = jax.random.split(jax.random.key(seed))
    x = jnp.asarray(mean) + std * jax.random.normal(data_key, (num, 2))
    params, state = objective.init(jax.random.key(1), {"x": x[:4]})
    return float(jnp.mean(objective.per_example_loss(params, state, x, loss_key)))


def test_conditional_loss_is_zero_at_the_field_of_a_point_mass():
    # Data = δ_m: the conditional field is the marginal one, and the loss vanishes exactly.
    assert _analytic_loss(0.0, 0.05, (0.0, 0.0)) < 1e-9
    assert _analytic_loss(0.0, 0.05, (0.1, 0.0)) == pytest.approx(0.01, rel=1e-3)


def test_loss_is_minimal_at_the_marginal_field_gaussian_to_gaussian():
    # L(v) = E||v − v*||² + const: with the same draws, a constant shift c adds ||c||².
    best = _analytic_loss(0.7, 1e-4, (0.0, 0.0))
    assert best > 0.1  # the conditional targets are not a function of (x_t, t)
    for shift in [(0.3, -0.2), (-0.1, 0.05), (0.0, 0.5)]:
        excess = _analytic_loss(0.7, 1e-4, shift) - best
        assert excess == pytest.approx(np.sum(np.square(shift)), abs=0.02)


def test_interpolant_path_targets_the_segment():
    path = InterpolantPath(sigma=0.0)
    x0, x1 = jnp.zeros((3, 2)), jnp.ones((3, 2))
    x_t, u = path.sample(jax.random.key(0), x0, x1, jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(x_t[:, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(u, 1.0)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_ot_permutation_is_an_optimal_permutation(n):
    rng = np.random.default_rng(n)
    for _ in range(3):
        x0 = rng.standard_normal((n, 3)).astype(np.float32)
        x1 = rng.standard_normal((n, 3)).astype(np.float32)
        perm = np.asarray(ot_permutation(jnp.asarray(x0), jnp.asarray(x1)))
        assert sorted(perm.tolist()) == list(range(n))
        cost = squared_distances(x0, x1)
        best = min(sum(cost[p[j], j] for j in range(n)) for p in itertools.permutations(range(n)))
        assert sum(cost[perm[j], j] for j in range(n)) == pytest.approx(best, rel=1e-9)
        paired = np.asarray(jax.jit(lambda a, b: couple("ot", a, b))(x0, x1))
        np.testing.assert_array_equal(paired, x0[perm])


def test_bad_arguments():
    cnf = CNF(MLPField((4,)), (2,))
    with pytest.raises(ValueError, match="coupling"):
        FlowMatchingObjective(cnf, coupling="optimal")
    with pytest.raises(ValueError, match="t0=0"):
        FlowMatchingObjective(CNF(MLPField((4,)), (2,), t0=0.0, t1=2.0))
    with pytest.raises(ValueError, match="sigma_min"):
        LinearGaussianPath(1.0)
    with pytest.raises(ValueError, match="same shape"):
        ot_permutation(jnp.zeros((3, 2)), jnp.zeros((4, 2)))


@pytest.fixture(scope="module")
def trained_8gaussians():
    """OT flow matching on 8gaussians through `fit` (4 data-parallel CPU devices)."""
    dataset = load_dataset("8gaussians", n_train=4096, n_test=256, seed=0)
    cnf = CNF(ConcatSquashField((64, 64), activation="tanh"), (2,))
    objective = FlowMatchingObjective(cnf, coupling="ot")
    steps = 400
    tx = make_optimizer(learning_rate=5e-3, total_steps=steps, schedule="cosine")
    config = TrainConfig(
        steps=steps, batch_size=128, log_every=0, eval_every=0, eval_batch_size=256,
        progress=False,
    )  # fmt: skip
    result = fit(objective, dataset, tx, config)
    return objective, result, dataset


def test_small_model_learns_8gaussians(trained_8gaussians):
    objective, result, _ = trained_8gaussians
    # A single Gaussian fits 8gaussians at 4.26 nats, the data's entropy is about 2.84.
    assert result.eval_metrics["nll"] < 3.6, result.eval_metrics
    samples, stats = objective.sample_with_stats(
        result.state.params, result.state.model_state, jax.random.key(0), 256
    )
    radius = np.linalg.norm(np.asarray(samples), axis=-1)
    assert abs(np.median(radius) - 4 / 1.414) < 0.3  # on the ring of the 8 modes
    assert bool(stats["all_succeeded"]) and float(stats["nfe"]) > 0


def test_exact_log_likelihood_agrees_with_hutchinson_mean(trained_8gaussians):
    objective, result, dataset = trained_8gaussians
    params, state = result.state.params, result.state.model_state
    copies = 64  # 64 x 4 = 256 events: the shape the sampling solve above compiled for
    x = jnp.tile(jnp.asarray(dataset.test[:4]), (copies, 1))
    exact = np.asarray(objective.log_prob(params, state, x)).reshape(copies, 4)[0]
    hutch = FlowMatchingObjective(objective.cnf.clone(trace_estimator=Hutchinson()))
    estimates = np.asarray(hutch.log_prob(params, state, x, key=jax.random.key(3))).reshape(
        copies, 4
    )
    mean, stderr = estimates.mean(0), estimates.std(0) / np.sqrt(copies)
    assert np.all(estimates.std(0) > 0)  # really stochastic
    np.testing.assert_array_less(np.abs(mean - exact), 4 * stderr + 1e-3)


def test_discrete_data_bits_per_dim_convention():
    # Discrete data (17 levels, image-shaped events as digits, smaller): dequantised, logit
    # space; bpd = (nll + D log K)/(D log 2) as for every jgen flow.
    levels = np.random.default_rng(0).integers(0, 17, (4, 2, 2, 1)).astype(np.uint8)
    batch = {"x": jnp.asarray(levels)}
    cnf = CNF(FlattenedField(MLPField((8,))), (2, 2, 1), stepsize_controller=_LOOSE)
    objective = FlowMatchingObjective(cnf, num_levels=17)
    params, state = objective.init(jax.random.key(0), batch)
    metrics = objective.evaluate(params, state, batch, jax.random.key(1))
    assert {k: metrics[k].shape for k in ("nll", "bpd", "fm_loss")} == {
        "nll": (4,),
        "bpd": (4,),
        "fm_loss": (4,),
    }
    np.testing.assert_allclose(metrics["bpd"], bits_per_dim(-metrics["nll"], 4, 17), rtol=1e-5)
    loss, (logged, _) = objective.loss(params, state, batch, jax.random.key(2))
    assert np.isfinite(float(loss)) and float(logged["fm_loss"]) == float(loss)
