"""The VAE: bounds on a trained model, KL estimators, chunked IWAE, flow posteriors, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.special import logsumexp

from jgen.data import load_dataset
from jgen.train import TrainState, make_train_step
from jgen.vae import VAE, Bernoulli, VAEObjective, diagonal_normal_kl, standard_normal_log_prob
from jgen.vae.bounds import sample_keys
from jgen.validation import ValidationError, ValidationTypeError

STEPS = 400


def _objective(**model_options) -> VAEObjective:
    model = VAE((8, 8, 1), latent_dim=4, num_params=1, hidden_dims=(32,), **model_options)
    return VAEObjective.create(model, Bernoulli(17), iwae_k=(1, 10), chunk_size=10)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """A small VAE trained for STEPS steps on dynamically binarised digits."""
    objective = _objective()
    x = digits.train
    params, state = jax.jit(objective.init)(jax.random.PRNGKey(0), {"x": x[:32]})
    tx = optax.adam(3e-3)
    train_state = TrainState.create(
        params=params, model_state=state, tx=tx, rng=jax.random.PRNGKey(1)
    )
    step = make_train_step(objective.loss, donate=False)
    batches = x[np.random.default_rng(0).integers(0, len(x), (STEPS, 64))]

    @jax.jit
    def train(train_state):  # one compiled scan over the steps
        return jax.lax.scan(lambda s, b: step(s, {"x": b}), train_state, batches)

    train_state, metrics = train(train_state)
    return objective, train_state.params, float(metrics["elbo"][-50:].mean())


@functools.cache
def _jitted(objective, method: str):
    """objective.elbo / objective.iwae compiled once per (objective, method); the numbers of
    samples and the KL estimator are static."""
    if method == "iwae":
        return jax.jit(objective.iwae, static_argnums=(3,), static_argnames=("chunk_size",))
    return jax.jit(objective.elbo, static_argnames=("num_samples", "kl"))


def test_training_improves_the_elbo(trained, digits):
    objective, params, last_elbo = trained
    fresh, _ = jax.jit(objective.init)(jax.random.PRNGKey(0), {"x": digits.train[:32]})
    x, key = digits.test[:96], jax.random.PRNGKey(3)
    elbo = _jitted(objective, "elbo")
    before = float(elbo(fresh, x, key, num_samples=200)["elbo"].mean())
    after = float(elbo(params, x, key, num_samples=200)["elbo"].mean())
    assert after > before + 10.0, (before, after)  # ~ -44 nats at init, ~ -27 after
    assert last_elbo > -35.0


def test_elbo_below_iwae_and_iwae_increasing_in_k(trained, digits):
    objective, params, _ = trained
    x, key = digits.test[:96], jax.random.PRNGKey(4)
    elbo = np.asarray(_jitted(objective, "elbo")(params, x, key, num_samples=200)["elbo"])
    # The log-weights of the 100 importance samples that objective.iwae(..., 100) draws:
    data_key, sample_key = jax.random.split(key)
    x_in, target = objective._prepare(x, data_key)
    keys = sample_keys(sample_key, 0, 100)
    log_w = np.asarray(jax.jit(objective._log_weights)(params, x_in, target, keys), np.float64)
    iwae = {k: logsumexp(log_w[:k], axis=0) - np.log(k) for k in (1, 10, 100)}
    iwae_100 = _jitted(objective, "iwae")(params, x, key, 100, chunk_size=7)
    np.testing.assert_allclose(iwae_100, iwae[100], rtol=1e-5, atol=1e-4)

    def paired(a, b):  # mean of a - b and its standard error
        d = a - b
        return d.mean(), d.std(ddof=1) / np.sqrt(len(d))

    gap, se = paired(iwae[1], elbo)
    assert abs(gap) < 4 * se + 1e-3, (gap, se)  # IWAE-1 is the ELBO in expectation
    for small, large in ((1, 10), (10, 100)):
        gain, se = paired(iwae[large], iwae[small])
        assert gain > -3 * se, (small, large, gain, se)
    assert (iwae[100] - elbo).mean() > 0.1  # a strict, measurable gain on a trained model
    assert np.all(iwae[100] < 0)  # a bound on the log-probability of binary data


@pytest.mark.parametrize("flow", [None, "planar"])
def test_analytic_and_monte_carlo_kl_agree_in_expectation(trained, digits, flow):
    objective = trained[0] if flow is None else _objective(posterior_flow=flow, num_flows=2)
    params = (
        trained[1]
        if flow is None
        else jax.jit(objective.init)(jax.random.PRNGKey(5), {"x": digits.train[:8]})[0]
    )
    x = digits.test[:8]

    @jax.jit
    def kls(key):
        def both(k):
            return tuple(objective.elbo(params, x, k, num_samples=5, kl=kl)["kl"]
                         for kl in ("analytic", "mc"))  # fmt: skip

        return jax.vmap(both)(jax.random.split(key, 100))

    # Without flows the analytic KL is exact (zero spread); with flows it is itself an
    # estimate (the entropy of q_0 in closed form, the cross term by MC).
    analytic, mc = map(np.asarray, kls(jax.random.PRNGKey(6)))
    diff = mc - analytic  # paired: the same posterior samples
    se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff))
    np.testing.assert_array_less(np.abs(diff.mean(axis=0)), 4.5 * se)
    assert np.all(se > 1e-3)  # the MC estimate does vary: the check is not vacuous
    if flow is None:
        assert np.all(np.ptp(analytic, axis=0) == 0) and np.all(analytic > 0)


def test_diagonal_kl_formula_against_sampling():
    mean, log_scale = jnp.asarray([[0.5, -1.0, 0.0]]), jnp.asarray([[0.1, -0.7, 0.4]])
    eps = jax.random.normal(jax.random.PRNGKey(0), (200_000, 1, 3))
    z = mean + jnp.exp(log_scale) * eps
    log_q = jnp.sum(jax.scipy.stats.norm.logpdf(z, mean, jnp.exp(log_scale)), -1)
    samples = np.asarray(log_q - standard_normal_log_prob(z))
    se = samples.std() / np.sqrt(len(samples))
    assert abs(samples.mean() - float(diagonal_normal_kl(mean, log_scale)[0])) < 4 * se


def test_chunked_iwae_equals_unchunked(trained, digits):
    objective, params, _ = trained
    x, key = digits.test[:8], jax.random.PRNGKey(7)
    iwae = _jitted(objective, "iwae")
    whole = iwae(params, x, key, 12, chunk_size=12)
    for chunk in (5,):  # 2 full chunks and a remainder
        np.testing.assert_allclose(iwae(params, x, key, 12, chunk_size=chunk), whole,
                                   rtol=1e-5, atol=1e-4)  # fmt: skip


def test_iwae_bounds_for_several_k_are_prefixes_of_one_pass():
    from jgen.vae import importance_weighted_bound, importance_weighted_bounds
    from jgen.vae.bounds import sample_keys

    def log_weights(keys):  # (len(keys), 3): sample j's weights depend only on its key
        return jax.vmap(lambda k: 2.0 * jax.random.normal(k, (3,)))(keys)

    key = jax.random.PRNGKey(3)
    every = np.asarray(log_weights(sample_keys(key, 0, 7)), np.float64)
    bounds = importance_weighted_bounds(log_weights, key, (7, 1, 4), chunk_size=3)
    assert sorted(bounds) == [1, 4, 7]
    for k, bound in bounds.items():
        exact = np.log(np.mean(np.exp(every[:k]), axis=0))
        np.testing.assert_allclose(bound, exact, rtol=1e-5, atol=1e-5)
        alone = importance_weighted_bound(log_weights, key, k, chunk_size=2)
        np.testing.assert_allclose(bound, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, amortized", [("planar", True), ("radial", False), ("iaf", True)])
def test_flow_posterior_density_is_the_change_of_variables(digits, kind, amortized):
    objective = _objective(posterior_flow=kind, num_flows=3, amortized=amortized)
    x = digits.test[:1]
    params, _ = jax.jit(objective.init)(jax.random.PRNGKey(8), {"x": x})

    # Shared flows start near the identity (init_scale 0.1): move them away from it. IAF's
    # MADE output layers start at zero (the identity): draw all its parameters at random.
    def away_from_identity(path, p):
        if kind == "iaf":
            return 0.3 * jax.random.normal(jax.random.PRNGKey(len(str(path))), p.shape, p.dtype)
        return 8 * p

    params = {k: jax.tree_util.tree_map_with_path(away_from_identity, v)
              if k.startswith("flow") else v for k, v in params.items()}  # fmt: skip
    x_in = objective.likelihood.encoder_input(objective.likelihood.target(None, x, train=False))
    eps = jax.random.normal(jax.random.PRNGKey(9), (1, 1, 4))
    model = objective.model

    def z_of_z0(z0):
        mean, _, flow_params = model.apply({"params": params}, x_in, method=VAE.encode)
        del mean
        return model.apply({"params": params}, z0[None, None], flow_params, method=VAE.flow)[0][
            0, 0
        ]

    @jax.jit
    def posterior_and_log_det():
        post = model.apply({"params": params}, x_in, eps, method=VAE.posterior)
        z0 = post["mean"] + jnp.exp(post["log_scale"]) * eps
        return post, jnp.linalg.slogdet(jax.jacfwd(z_of_z0)(z0[0, 0]))[1]

    post, log_det = posterior_and_log_det()
    np.testing.assert_allclose(post["sum_log_det"][0, 0], log_det, rtol=1e-4, atol=1e-5)
    assert abs(float(log_det)) > 1e-3  # the flows are not the identity
    np.testing.assert_allclose(post["log_q"], post["log_q0"] - log_det, rtol=1e-5)
    if amortized:  # (all of planar's, IAF's context of latent_dim = 4) from the encoder
        assert kind == "iaf" or not any("flow" in name for name in params)
        context = 4 if kind == "iaf" else 9
        assert params["encoder"]["mlp"]["out"]["kernel"].shape[-1] == 2 * 4 + 3 * context


def test_bad_inputs_get_clear_errors(trained):
    objective, params, _ = trained
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValidationError, match=r"ending in the event shape \(8, 8, 1\)"):
        objective.iwae(params, np.zeros((4, 7, 7, 1), np.uint8), key, 2)
    with pytest.raises(ValidationError, match="one batch axis"):
        objective.elbo(params, np.zeros((2, 4, 8, 8, 1), np.uint8), key)
    with pytest.raises(ValidationError, match=r"levels 0..16"):
        objective.init(key, {"x": np.full((4, 8, 8, 1), 17, np.uint8)})
    with pytest.raises(ValidationError, match="finite"):
        objective.elbo(params, np.full((4, 8, 8, 1), np.nan, np.float32), key)
    with pytest.raises(ValidationTypeError, match="complex"):
        objective.elbo(params, np.zeros((4, 8, 8, 1), np.complex64), key)
    with pytest.raises(ValidationError, match="entry 'x'"):
        objective.init(key, {"image": np.zeros((4, 8, 8, 1))})
    binary = VAEObjective.create(objective.model, Bernoulli())
    with pytest.raises(ValidationError, match="binary values 0 or 1"):
        binary.elbo(params, np.full((4, 8, 8, 1), 0.5, np.float32), key)


def test_bad_settings():
    with pytest.raises(ValueError, match="needs num_flows >= 1"):
        VAE((4,), latent_dim=2, num_params=1, posterior_flow="planar")
    with pytest.raises(ValueError, match="posterior_flow must be"):
        VAE((4,), latent_dim=2, num_params=1, posterior_flow="maf", num_flows=2)
    with pytest.raises(ValueError, match="'conv' needs images"):
        VAE((4,), latent_dim=2, num_params=1, architecture="conv")
    model = VAE((4,), latent_dim=2, num_params=2)
    with pytest.raises(ValueError, match="needs 1 decoder outputs"):
        VAEObjective.create(model, Bernoulli())
    with pytest.raises(ValueError, match="kl must be one of"):
        VAEObjective.create(VAE((4,), 2, 1), Bernoulli(), kl="exact")
