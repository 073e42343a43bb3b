"""Variational autoencoders, flow posteriors, IWAE-k and the Helmholtz machine (notes 1.1, 2.2).

`VAE` (model), `VAEObjective` (ELBO training, ELBO/IWAE-k evaluation), likelihoods
(`Bernoulli`, `Categorical`, `Gaussian`), bounds (`importance_weighted_bound`,
`diagonal_normal_kl`), and the wake-sleep `HelmholtzMachine` with its `HelmholtzObjective`.
"""

from jgen.vae.bounds import (
    diagonal_normal_entropy,
    diagonal_normal_kl,
    importance_weighted_bound,
    importance_weighted_bounds,
    standard_normal_log_prob,
)
from jgen.vae.helmholtz import HelmholtzMachine, HelmholtzObjective
from jgen.vae.likelihoods import (
    Bernoulli,
    Categorical,
    Gaussian,
    Likelihood,
    dynamic_binarize,
    fixed_binarize,
    make_likelihood,
)
from jgen.vae.model import VAE
from jgen.vae.objective import LatentVariableObjective, VAEObjective

__all__ = [
    "VAE",
    "Bernoulli",
    "Categorical",
    "Gaussian",
    "HelmholtzMachine",
    "HelmholtzObjective",
    "LatentVariableObjective",
    "Likelihood",
    "VAEObjective",
    "diagonal_normal_entropy",
    "diagonal_normal_kl",
    "dynamic_binarize",
    "fixed_binarize",
    "importance_weighted_bound",
    "importance_weighted_bounds",
    "make_likelihood",
    "standard_normal_log_prob",
]
