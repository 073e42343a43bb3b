"""UNetField: the CNF field contract on images, argument errors, and flow matching with it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.cnf import CNF, UNetField, make_field, sinusoidal_embedding
from jgen.data import load_dataset
from jgen.flow_matching import FlowMatchingObjective
from jgen.validation import ValidationError
from tests.cnf.training import adam_steps


@pytest.fixture(scope="module")
def field_and_params():
    field = UNetField((4, 8), groups=2)
    z = jnp.zeros((1, 8, 8, 2))
    # Jitted: one compilation each for init and apply instead of op-by-op dispatch.
    params = jax.jit(field.init)(jax.random.key(0), z, 0.0, jnp.zeros((1, 3)))
    # Random values everywhere: the zero-initialised output layers would make the field 0.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    noisy = [0.3 * jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves, strict=True)]
    return field, params, jax.tree.unflatten(tree, noisy)


def test_zero_at_initialisation_and_one_event_equals_its_row_of_a_batch(field_and_params):
    field, params, noisy = field_and_params
    apply = jax.jit(field.apply)  # one compilation for the four batched calls
    z = jax.random.normal(jax.random.key(2), (3, 8, 8, 2))
    t = jnp.array([0.1, 0.5, 0.9])
    c = jax.random.normal(jax.random.key(3), (3, 3))
    assert float(jnp.abs(apply(params, z, t, c)).max()) == 0.0
    batch = apply(noisy, z, t, c)
    assert batch.shape == z.shape and batch.dtype == z.dtype
    one = jax.jit(jax.vmap(lambda zi, ti, ci: field.apply(noisy, zi, ti, ci)))(z, t, c)
    np.testing.assert_allclose(one, batch, atol=1e-4)  # group norm never mixes events
    # The output depends on the time and on the context.
    assert float(jnp.abs(apply(noisy, z, t + 0.3, c) - batch).max()) > 1e-3
    assert float(jnp.abs(apply(noisy, z, t, c + 1.0) - batch).max()) > 1e-3


def test_sinusoidal_embedding():
    e = sinusoidal_embedding(jnp.array([0.0, 2.0]), 6)
    np.testing.assert_allclose(e[0], [1, 1, 1, 0, 0, 0], atol=1e-7)
    frequencies = 10_000.0 ** (-np.arange(3) / 3)
    np.testing.assert_allclose(e[1, :3], np.cos(2 * frequencies), rtol=1e-5)


def test_arguments_are_checked():
    z = jnp.zeros((1, 6, 6, 1))
    with pytest.raises(ValueError, match="divisible by 4"):
        UNetField((4, 4, 4)).init(jax.random.key(0), z, 0.0)
    with pytest.raises(ValueError, match=r"images \(\.\.\., H, W, C\)"):
        UNetField((4,)).init(jax.random.key(0), jnp.zeros((4, 4)), 0.0)
    with pytest.raises(TypeError, match="widths must be a non-empty sequence"):
        UNetField(())
    with pytest.raises(ValidationError, match="every width"):
        UNetField((4, 0))
    with pytest.raises(ValueError, match="activation must be one of"):
        UNetField((4,), activation="relu")  # not smooth: the CNF needs a smooth field
    with pytest.raises(ValueError, match="needs image events"):
        make_field("unet", (4,), (16,))
    assert isinstance(make_field("unet", (4, 8), (8, 8, 1), attention=False), UNetField)


def test_flow_matching_with_a_unet_field_learns_digits():
    """100 steps of flow matching on the 8x8 digits (17 levels, logit space) with a one-level
    U-Net (residual blocks and attention at 8x8: the suite's time budget).

    Reference: the best field that ignores z and depends on t only, E[u | t] = E[x1], has loss
    E||x1 − E x1||² + (1 − σ_min)² D (σ_min = 1e-4 here); a field that uses the image must beat it.
    """
    data = load_dataset("digits")
    objective = FlowMatchingObjective(CNF(UNetField((8,), groups=4), (8, 8, 1)), num_levels=17)
    x, test = jnp.asarray(data.train), jnp.asarray(data.test[:200])
    params, state = jax.jit(objective.init)(jax.random.key(0), {"x": x[:32]})

    trained = adam_steps(
        lambda p, batch, key: objective.loss(p, state, batch, key)[0], params, x,
        steps=100, batch_size=32, learning_rate=3e-3,
    )  # fmt: skip
    key = jax.random.key(2)
    test_loss = float(jnp.mean(jax.jit(objective.per_example_loss)(trained, state, test, key)))
    x1 = jax.jit(objective.data_in_cnf_space)(test, jax.random.split(key, 4)[0])
    t_only = float(jnp.sum(jnp.var(x1, axis=0)) + 64)
    assert test_loss < 0.8 * t_only, (test_loss, t_only)  # measured: 120 vs 170
