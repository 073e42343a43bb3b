"""Straightness against closed forms (a constant field: 0; a rotation: the integral by
quadrature), and reflow: pairs are the flow's own map and the reflowed flow is straighter."""

from __future__ import annotations

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jgen.cnf import CNF, ConcatSquashField
from jgen.data import load_dataset
from jgen.flow_matching import FlowMatchingObjective, InterpolantPath
from jgen.flow_matching.diagnostics import straightness, trajectories
from jgen.flow_matching.reflow import generate_pairs, train_on_pairs
from jgen.train import TrainState, make_train_step


class LinearField(nn.Module):
    """v(z, t) = A z + b with fixed A, b (and a scale parameter, 1)."""

    matrix: tuple
    offset: tuple

    @nn.compact
    def __call__(self, z, t, context=None):
        scale = self.param("scale", nn.initializers.ones, ())
        return scale * (jnp.asarray(self.matrix, z.dtype) @ z + jnp.asarray(self.offset, z.dtype))


def _objective(field):
    return FlowMatchingObjective(CNF(field, (2,)), path=InterpolantPath(0.0))


def _straightness(matrix, offset, x0):
    objective = _objective(LinearField(matrix, offset))
    params, state = objective.init(jax.random.key(0), {"x": x0})
    return straightness(objective, params, state, x0, num_times=65, rtol=1e-7, atol=1e-7)


def test_straightness_closed_forms():
    x0 = jax.random.normal(jax.random.key(1), (4, 2))
    constant = _straightness(((0.0, 0.0), (0.0, 0.0)), (1.0, -2.0), x0)
    assert float(constant["straightness"]) < 1e-8
    # Rotation: z_t = R(t) z0, so S = ∫ mean ||(R(1) − I) z0 − A R(t) z0||² dt (quadrature).
    rotation = _straightness(((0.0, -1.0), (1.0, 0.0)), (0.0, 0.0), x0)
    times = np.linspace(0.0, 1.0, 2001)
    rot = lambda a: np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    generator = np.array([[0.0, -1.0], [1.0, 0.0]])
    z0 = np.asarray(x0, np.float64)
    chord = z0 @ (rot(1.0) - np.eye(2)).T
    deviation = [np.sum((chord - z0 @ (generator @ rot(t)).T) ** 2, -1).mean() for t in times]
    exact = np.trapezoid(deviation, times)
    assert float(rotation["straightness"]) == pytest.approx(exact, rel=1e-3)
    assert float(rotation["relative_straightness"]) == pytest.approx(
        exact / np.mean(np.sum(chord**2, -1)), rel=1e-3
    )


@pytest.fixture(scope="module")
def rectified():
    """A 1-rectified flow on 8gaussians (short) and its reflow."""
    objective = FlowMatchingObjective(
        CNF(ConcatSquashField((32, 32), activation="tanh"), (2,),
            stepsize_controller=diffrax.PIDController(rtol=1e-4, atol=1e-4)),
        path=InterpolantPath(0.0),
    )  # fmt: skip
    data = load_dataset("8gaussians", n_train=4096, n_test=16, seed=0).train
    key = jax.random.key(0)
    params, state = objective.init(key, {"x": jnp.asarray(data[:8])})
    train = TrainState.create(params=params, model_state=state, tx=optax.adam(3e-3), rng=key)
    step = make_train_step(objective.loss, donate=False)
    rng = np.random.default_rng(0)
    for _ in range(200):
        train, _ = step(train, {"x": jnp.asarray(data[rng.integers(0, len(data), 256)])})
    first = (train.params, train.model_state)
    pairs = generate_pairs(objective, *first, jax.random.key(1), 1024, rtol=1e-4, atol=1e-4)
    second = train_on_pairs(objective, *first, pairs, jax.random.key(2), steps=200,
                            learning_rate=1e-3)  # fmt: skip
    return objective, first, pairs, second


def test_pairs_are_the_flows_map(rectified):
    objective, (params, state), (x0, x1), _ = rectified
    again = trajectories(objective, params, state, x0[:8], jnp.ones(1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(again[:, -1], x1[:8], atol=5e-3)  # x1 solved at tolerance 1e-4
    radius = np.linalg.norm(np.asarray(x1), axis=-1)
    assert abs(np.median(radius) - 4 / np.sqrt(2)) < 0.5  # near 8gaussians' ring


def test_reflow_straightens_the_flow(rectified):
    objective, first, _, (params, state, losses) = rectified
    x0 = jax.random.normal(jax.random.key(5), (128, 2))
    before = straightness(objective, *first, x0, rtol=1e-4, atol=1e-4)
    after = straightness(objective, params, state, x0, rtol=1e-4, atol=1e-4)
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    ratio = float(after["relative_straightness"] / before["relative_straightness"])
    assert ratio < 0.6, (before, after)
