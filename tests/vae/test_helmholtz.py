"""The Helmholtz machine: wake and sleep gradients reach only their own parameters; it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jgen.data import load_dataset
from jgen.train import TrainState, make_train_step
from jgen.vae import Bernoulli, HelmholtzMachine, HelmholtzObjective

STEPS = 200


@pytest.fixture(scope="module")
def setup():
    model = HelmholtzMachine((8, 8, 1), latent_dims=(12, 6), num_params=1, hidden_dims=(32,))
    objective = HelmholtzObjective.create(model, Bernoulli(17), iwae_k=(1, 20), chunk_size=20)
    digits = load_dataset("digits")
    params, _ = jax.jit(objective.init)(jax.random.PRNGKey(0), {"x": digits.train[:16]})
    return objective, params, digits


def _split(tree, prefix):
    return {k: v for k, v in tree.items() if k.startswith(prefix)}


def test_each_phase_trains_only_its_own_model(setup):
    objective, params, digits = setup
    x_in, target = objective._prepare(digits.train[:16], jax.random.PRNGKey(1), train=True)
    key = jax.random.PRNGKey(2)

    @jax.jit
    def grads():
        def phase(name):
            return lambda p: jnp.mean(objective.phases(p, x_in, target, key)[name])

        return jax.grad(phase("wake"))(params), jax.grad(phase("sleep"))(params)

    wake, sleep = grads()
    assert set(params) == {"gen_prior", "gen_layers_0", "gen_decoder", "rec_encoder",
                           "rec_layers_0"}  # fmt: skip
    norm = optax.tree.norm
    # Wake moves only the generative model, sleep only the recognition model ...
    assert float(norm(_split(wake, "rec"))) == 0.0 and float(norm(_split(wake, "gen"))) > 0
    assert float(norm(_split(sleep, "gen"))) == 0.0 and float(norm(_split(sleep, "rec"))) > 0
    # ... so the gradient of their sum, the one loss, is the wake gradient for θ and the sleep
    # gradient for φ.


def test_wake_sleep_learns_and_iwae_bounds_the_elbo(setup):
    objective, params, digits = setup
    tx = optax.adam(3e-3)
    state = TrainState.create(params=params, model_state={}, tx=tx, rng=jax.random.PRNGKey(3))
    step = make_train_step(objective.loss, donate=False)
    batches = digits.train[np.random.default_rng(0).integers(0, len(digits.train), (STEPS, 64))]
    state, metrics = jax.jit(lambda s: jax.lax.scan(lambda s, b: step(s, {"x": b}), s, batches))(
        state
    )
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    evaluate = jax.jit(objective.evaluate)
    x, key = {"x": digits.test[:96]}, jax.random.PRNGKey(4)
    before = {k: float(v.mean()) for k, v in evaluate(params, {}, x, key).items()}
    after = {k: float(v.mean()) for k, v in evaluate(state.params, {}, x, key).items()}
    assert after["iwae_20"] > before["iwae_20"] + 10.0, (before, after)  # ~ -44 -> ~ -29
    assert after["iwae_20"] > after["elbo"]
    assert after["nll"] == -after["iwae_20"]
    dreams = objective.sample(state.params, {}, jax.random.PRNGKey(5), 4)
    assert dreams.shape == (4, 8, 8, 1) and set(np.unique(np.asarray(dreams))) <= {0.0, 16.0}
