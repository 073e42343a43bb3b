"""Density-ratio estimation by classification recovers a known log-ratio."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from jgen.gan import DensityRatioEstimator, ratio_dataset
from jgen.nets import MLP
from jgen.train import TrainConfig, fit, make_optimizer

Q_LOC, Q_SCALE = 1.0, 1.5
NUM_P, NUM_Q = 2000, 6000  # unequal: the class-prior correction log(n_q/n_p) = log 3 matters


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    x_p = rng.standard_normal((NUM_P, 1))
    x_q = Q_LOC + Q_SCALE * rng.standard_normal((NUM_Q, 1))
    dataset = ratio_dataset(x_p, x_q, test_fraction=0.1)
    n_p = int(np.sum(dataset.train_labels == 1))
    estimator = DensityRatioEstimator(MLP((32, 32), 1), num_p=n_p, num_q=len(dataset.train) - n_p)
    tx = make_optimizer(learning_rate=1e-2, total_steps=800)
    config = TrainConfig(
        steps=800, batch_size=256, log_every=0, progress=False, data_parallel=False
    )
    return estimator, fit(estimator, dataset, tx, config)


def test_estimator_recovers_the_analytic_log_ratio(trained):
    estimator, result = trained
    x = np.linspace(-2.0, 2.5, 91)[:, None].astype(np.float32)
    exact = norm.logpdf(x[:, 0]) - norm.logpdf(x[:, 0], Q_LOC, Q_SCALE)
    estimate = np.asarray(estimator.log_ratio(result.state.params, jnp.asarray(x)))
    error = np.abs(estimate - exact)
    assert np.mean(error) < 0.1 and np.max(error) < 0.3, (np.mean(error), np.max(error))
    # Without the class-prior correction the logit is off by log(n_p/n_q) ≈ −log 3.
    logit = np.asarray(estimator.logit(result.state.params, jnp.asarray(x)))
    assert np.mean(np.abs(logit - exact)) > 0.8
    assert estimator.prior_correction == pytest.approx(np.log(estimator.num_q / estimator.num_p))
    assert 0.6 < result.eval_metrics["accuracy"] < 0.9  # overlapping classes: far from 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_q must be"):
        DensityRatioEstimator(MLP((4,), 1), num_p=3, num_q=0)
    with pytest.raises(ValueError, match="same event shape"):
        ratio_dataset(np.zeros((5, 2)), np.zeros((5, 3)))
