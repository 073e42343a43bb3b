"""Likelihoods, binarisation and the support checks of jgen.vae.likelihoods."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.vae import Bernoulli, Categorical, Gaussian, dynamic_binarize, fixed_binarize
from jgen.vae.likelihoods import check_levels, make_likelihood
from jgen.validation import ValidationError


def test_dynamic_binarisation_is_bernoulli_in_expectation():
    levels = jnp.arange(17, dtype=jnp.uint8)
    draws = jax.jit(jax.vmap(lambda k: dynamic_binarize(k, levels, 17)))(
        jax.random.split(jax.random.PRNGKey(0), 20_000)
    )
    p = np.arange(17) / 16
    mean = np.asarray(draws.mean(axis=0))
    se = np.sqrt(p * (1 - p) / len(draws))
    assert set(np.unique(np.asarray(draws))) <= {0.0, 1.0}
    np.testing.assert_array_less(np.abs(mean - p), 4 * se + 1e-12)  # levels 0 and 16 exact
    assert mean[0] == 0.0 and mean[-1] == 1.0


def test_fixed_binarisation_depends_only_on_the_image():
    binarize = jax.jit(fixed_binarize, static_argnums=1)  # one compile: the seed is traced
    # Grey images (level 8, p = 1/2) made distinct by one dark pixel each.
    grey = np.full((12, 64), 8, np.uint8)
    grey[np.arange(12), np.arange(12)] = 0
    grey = np.concatenate([np.roll(grey, i, axis=1) for i in range(34)])
    t = np.asarray(binarize(grey, 17, 0))
    perm = np.random.default_rng(0).permutation(len(grey))
    np.testing.assert_array_equal(np.asarray(binarize(grey[perm], 17, 0)), t[perm])
    assert not np.array_equal(np.asarray(binarize(grey, 17, 1)), t)
    # Unbiased over images: pixels 34.. are grey in every image.
    mean = float(t[:, 34:].mean())
    assert abs(mean - 0.5) < 4 * math.sqrt(0.25 / t[:, 34:].size)


def test_bernoulli_threshold_and_binary_data():
    x = jnp.asarray([[0, 7, 8, 16]], jnp.uint8)
    t = Bernoulli(17, binarization="threshold").target(None, x, train=True)
    np.testing.assert_array_equal(np.asarray(t), [[0, 0, 1, 1]])
    binary = jnp.asarray([[0.0, 1.0]])
    assert Bernoulli().target(None, binary, train=True) is not None


@jax.jit
def _log_probs_and_references():
    key = jax.random.PRNGKey(1)
    params = jax.random.normal(key, (3, 4, 17))
    x = jax.random.randint(key, (3, 4), 0, 17)
    cat = Categorical(17).log_prob(params, x, 1)
    cat_ref = jnp.sum(jax.nn.log_softmax(params)[jnp.arange(3)[:, None], jnp.arange(4), x], -1)
    t = (x > 8).astype(jnp.float32)
    p = jax.nn.sigmoid(params[..., 0])
    bern = Bernoulli().log_prob(params[..., :1], t, 1)
    bern_ref = jnp.sum(jnp.log(jnp.where(t == 1, p, 1 - p)), -1)
    y = jnp.full((3, 4), 0.3)
    gauss = Gaussian(num_levels=17).log_prob(params[..., :2], y, 1)
    loc, scale = params[..., 0], jax.nn.softplus(params[..., 1]) + 1e-3
    gauss_ref = jnp.sum(jax.scipy.stats.norm.logpdf(y, loc, scale), -1) - 4 * math.log(17)
    return (cat, cat_ref), (bern, bern_ref), (gauss, gauss_ref)


def test_log_probs_match_their_formulas():
    for value, reference in _log_probs_and_references():
        np.testing.assert_allclose(value, reference, rtol=1e-5)


@pytest.mark.parametrize(
    "likelihood, x, match",
    [
        (Bernoulli(), np.array([[0.0, 0.5]]), "binary values 0 or 1"),
        (Bernoulli(17), np.array([[0, 17]]), r"levels 0..16"),
        (Categorical(17), np.array([[-1, 3]]), r"levels 0..16"),
        (Categorical(17), np.array([[2.5, 3.0]]), "non-integer"),
        (Gaussian(num_levels=4), np.array([[5.0]]), r"levels 0..3"),
    ],
)
def test_values_outside_the_support_are_rejected(likelihood, x, match):
    with pytest.raises(ValidationError, match=match):
        likelihood.check_support(x, "x")


def test_support_checks_are_skipped_under_jit():
    jax.jit(lambda x: check_levels(x, "x", 2) or x)(jnp.asarray([5.0]))


def test_bad_likelihood_settings():
    with pytest.raises(ValueError, match="unknown likelihood"):
        make_likelihood("poisson", 17)
    with pytest.raises(ValueError, match="needs discrete data"):
        make_likelihood("categorical", None)
    with pytest.raises(ValueError, match="binarization must be one of"):
        Bernoulli(17, binarization="stochastic")
