"""Class-conditional flow matching with classifier-free guidance: on two classes at x = ±2, the
conditional samples (w = 1) fall on their class's side, the unconditional ones (w = 0) on both,
a larger scale sharpens the classes, and log p(x | y) prefers the true label."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jgen.cnf import CNF, MLPField
from jgen.flow_matching import FlowMatchingObjective
from jgen.train import TrainState, make_train_step
from jgen.validation import ValidationError


def _data(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int32)
    x = rng.normal(0.0, 0.5, (n, 2)).astype(np.float32)
    x[:, 0] += np.where(labels == 1, 2.0, -2.0)
    return x, labels


@pytest.fixture(scope="module")
def trained():
    objective = FlowMatchingObjective(
        CNF(MLPField((32, 32), activation="tanh"), (2,)), num_classes=2, label_dropout=0.2
    )
    x, labels = _data(4096, 0)
    key = jax.random.key(0)
    params, state = objective.init(key, {"x": jnp.asarray(x[:8]), "label": labels[:8]})
    train = TrainState.create(params=params, model_state=state, tx=optax.adam(3e-3), rng=key)
    step = make_train_step(objective.loss, donate=False)
    rng = np.random.default_rng(1)
    for _ in range(300):
        rows = rng.integers(0, len(x), 256)
        train, _ = step(train, {"x": jnp.asarray(x[rows]), "label": jnp.asarray(labels[rows])})
    return objective, train.params, train.model_state


def test_guidance_scale_controls_the_class(trained):
    objective, params, state = trained
    labels = jnp.asarray(np.repeat([0, 1], 128))
    sample = jax.jit(objective.sample_guided, static_argnames=("rtol", "atol"))
    sign = np.where(np.asarray(labels) == 1, 1.0, -1.0)
    on_side = {}
    for w in (0.0, 1.0, 3.0):
        x = np.asarray(sample(params, state, jax.random.key(2), labels, w, rtol=1e-4, atol=1e-4))
        on_side[w] = np.mean(np.sign(x[:, 0]) == sign)
    assert on_side[1.0] > 0.9, on_side
    assert 0.3 < on_side[0.0] < 0.7, on_side  # the unconditional model: both classes
    assert on_side[3.0] >= on_side[1.0], on_side


def test_conditional_likelihood_prefers_the_true_label(trained):
    objective, params, state = trained
    x, labels = _data(16, 5)
    metrics = jax.jit(objective.evaluate)(
        params, state, {"x": jnp.asarray(x), "label": jnp.asarray(labels)}, jax.random.key(0)
    )
    wrong = jax.jit(objective.evaluate)(
        params, state, {"x": jnp.asarray(x), "label": jnp.asarray(1 - labels)}, jax.random.key(0)
    )
    assert float(jnp.mean(wrong["nll"] - metrics["nll"])) > 2.0


def test_guidance_bad_arguments():
    cnf = CNF(MLPField((4,)), (2,))
    with pytest.raises(ValidationError, match="label_dropout"):
        FlowMatchingObjective(cnf, num_classes=2, label_dropout=1.0)
    with pytest.raises(ValidationError, match="num_classes"):
        FlowMatchingObjective(cnf).label_context(jnp.zeros(3, jnp.int32))
