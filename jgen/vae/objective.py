"""The VAE's trainer `Objective`: the ELBO for training, ELBO and IWAE-k for evaluation.

With p(z) = N(0, I), q the recognition model (`jgen.vae.model.VAE`) and ε ~ N(0, I):

    ELBO(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z))                        (notes eq. 1.4)

``kl='analytic'`` uses the closed-form Gaussian KL (`diagonal_normal_kl`); ``kl='mc'`` the
single-sample estimate log q(z|x) − log p(z). With K flows in the posterior the KL has no closed
form; the free energy of eq. 2.17 is, for z_K = f_K ∘ … ∘ f_1(z_0), z_0 ~ q_0,

    −F(x) = E_{q_0}[log p(x, z_K) + Σ_k log|det ∂f_k|] − E_{q_0}[log q_0(z_0|x)]

and ``kl='analytic'`` then takes the last term, the entropy of the Gaussian q_0, in closed form
(the rest is Monte Carlo), ``kl='mc'`` estimates all of it. Both are unbiased for the same bound.
The training loss is −ELBO averaged over the batch (``train_samples`` posterior samples per
example). Evaluation returns, per example: ``elbo``, ``kl`` (KL(q_K ‖ p), analytic or MC as the
training), ``recon`` (E log p(x|z)), ``iwae_<k>`` for each k of ``iwae_k``, and
``nll`` = −IWAE at the largest k (nats; the test NLL estimate).

`LatentVariableObjective` holds what the VAE and the Helmholtz machine share: checking inputs
at the boundary, turning raw data into the likelihood's target, and IWAE-k.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jgen.typing import Array, PRNGKey
from jgen.vae.bounds import (
    diagonal_normal_entropy,
    diagonal_normal_kl,
    importance_weighted_bound,
    importance_weighted_bounds,
    standard_normal_log_prob,
)
from jgen.vae.likelihoods import Likelihood
from jgen.vae.model import VAE
from jgen.validation import (
    ValidationError,
    ValidationTypeError,
    check_array,
    check_finite,
    check_int,
)

__all__ = ["KL_ESTIMATORS", "LatentVariableObjective", "VAEObjective"]

KL_ESTIMATORS = ("analytic", "mc")


@dataclasses.dataclass(frozen=True)
class LatentVariableObjective:
    """Shared part of latent-variable objectives; subclasses define ``_log_weights``.

    event_shape: shape of one example; likelihood: p(x|z) (`jgen.vae.likelihoods`);
    iwae_k: the k of the IWAE-k metrics of `evaluate`; chunk_size: IWAE samples per chunk.
    """

    event_shape: tuple[int, ...]
    likelihood: Likelihood
    iwae_k: tuple[int, ...] = (1000,)
    chunk_size: int = 100

    def __post_init__(self):
        object.__setattr__(self, "event_shape", tuple(int(d) for d in self.event_shape))
        ks = tuple(self.iwae_k)
        if not ks:
            raise ValueError("iwae_k: expected at least one k (e.g. (1000,)), got ()")
        for k in ks:
            check_int(k, "every iwae_k", minimum=1, owner=type(self).__name__)
        object.__setattr__(self, "iwae_k", tuple(sorted(set(ks))))
        check_int(self.chunk_size, "chunk_size", minimum=1, owner=type(self).__name__)

    def _check_model(self, model, model_class) -> None:
        """``model`` is a ``model_class`` with as many outputs per dimension as the likelihood
        needs."""
        owner = type(self).__name__
        if not isinstance(model, model_class):
            raise TypeError(
                f"{owner}: model must be a {model_class.__name__}, got {type(model).__name__}"
            )
        if model.num_params != self.likelihood.num_params:
            raise ValueError(
                f"{owner}: the likelihood needs {self.likelihood.num_params} decoder outputs per "
                f"dimension, the model has num_params={model.num_params}"
            )

    # Inputs -------------------------------------------------------------------------------
    def check_input(self, x, name: str = "x") -> None:
        """Raw data: shape (B, *event_shape), real dtype, non-empty, and (when concrete)
        finite values in the likelihood's support. Static checks are free under jit."""
        x = x if hasattr(x, "shape") else np.asarray(x)
        check_array(x, name, event_shape=self.event_shape, floating=False)
        if x.ndim != len(self.event_shape) + 1:
            raise ValidationError(
                f"{name}: expected a batch of shape (B, {', '.join(map(str, self.event_shape))})"
                f" (one batch axis, event shape {self.event_shape}), got shape {tuple(x.shape)}"
            )
        check_finite(x, name)
        self.likelihood.check_support(x, name)

    def _check_batch(self, batch) -> None:
        if not isinstance(batch, Mapping):
            raise ValidationTypeError(
                f"batch: expected a dict with an 'x' entry, got {type(batch).__name__}"
            )
        if "x" not in batch:
            raise ValidationError(f"batch: expected an entry 'x' (the data), got {sorted(batch)}")
        self.check_input(batch["x"], "batch['x']")

    def _prepare(self, x: Array, key: PRNGKey, *, train: bool = False) -> tuple[Array, Array]:
        """(encoder input, likelihood target) of raw data ``x`` (binarisation / dequantisation
        of training or of evaluation, see `jgen.vae.likelihoods`)."""
        target = self.likelihood.target(key, jnp.asarray(x), train=train)
        return self.likelihood.encoder_input(target), target

    @property
    def event_ndims(self) -> int:
        return len(self.event_shape)

    # Bounds -------------------------------------------------------------------------------
    def _log_weights(self, params, x_in: Array, target: Array, keys: Array) -> Array:
        """log p(x, z_j) − log q(z_j|x) for one posterior sample per key: (len(keys), B)."""
        raise NotImplementedError

    def iwae(
        self, params, x: Array, key: PRNGKey, num_samples: int, *, chunk_size: int | None = None
    ) -> Array:
        """IWAE-k lower bound on log p(x) per example (nats), k = ``num_samples``.

        ``x`` is raw data of shape (B, *event_shape) (checked when concrete), prepared as in
        evaluation (a Bernoulli likelihood's fixed binarisation; a Gaussian's dequantisation
        draws from ``key``, which also gives the importance samples). Jit it with
        ``num_samples`` static: eagerly it runs op by op.
        """
        self.check_input(x)
        data_key, sample_key = jax.random.split(key)
        x_in, target = self._prepare(x, data_key)
        return importance_weighted_bound(
            lambda keys: self._log_weights(params, x_in, target, keys),
            sample_key,
            num_samples,
            chunk_size=chunk_size or self.chunk_size,
        )

    def _iwae_metrics(self, params, x_in, target, key) -> dict[str, Array]:
        """IWAE-k for every k of ``iwae_k``, from one pass over the largest k's samples."""
        bounds = importance_weighted_bounds(
            lambda keys: self._log_weights(params, x_in, target, keys),
            key,
            self.iwae_k,
            chunk_size=self.chunk_size,
        )
        metrics = {f"iwae_{k}": bound for k, bound in bounds.items()}
        metrics["nll"] = -metrics[f"iwae_{self.iwae_k[-1]}"]
        return metrics


def _normal_noise(keys: Array, shape: tuple[int, ...], dtype) -> Array:
    """One standard normal draw of ``shape`` per key: (len(keys), *shape)."""
    return jax.vmap(lambda k: jax.random.normal(k, shape, dtype))(keys)


@dataclasses.dataclass(frozen=True)
class VAEObjective(LatentVariableObjective):
    """A `VAE` with a likelihood, trained on the ELBO; evaluated with ELBO and IWAE-k.

    model: the `VAE` module (its ``event_shape`` is the objective's).
    kl: 'analytic' or 'mc' (see the module docstring).
    train_samples: posterior samples per example in the training ELBO.
    """

    model: VAE | None = None
    kl: str = "analytic"
    train_samples: int = 1

    def __post_init__(self):
        super().__post_init__()
        self._check_model(self.model, VAE)
        if tuple(self.model.event_shape) != self.event_shape:
            raise ValueError(
                f"VAEObjective: model.event_shape {self.model.event_shape} differs from "
                f"event_shape {self.event_shape}"
            )
        if self.kl not in KL_ESTIMATORS:
            raise ValueError(f"kl must be one of {KL_ESTIMATORS}, got {self.kl!r}")
        check_int(self.train_samples, "train_samples", minimum=1, owner="VAEObjective")

    @classmethod
    def create(cls, model: VAE, likelihood: Likelihood, **options) -> VAEObjective:
        return cls(event_shape=model.event_shape, likelihood=likelihood, model=model, **options)

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    def _noise(self, keys: Array, batch_size: int) -> Array:
        return _normal_noise(keys, (batch_size, self.latent_dim), jnp.result_type(float))

    def _terms(self, params, x_in: Array, target: Array, keys: Array) -> dict[str, Array]:
        """Posterior samples (one per key) and log p(x|z), log p(z), log q(z|x): (S, B)."""
        eps = self._noise(keys, x_in.shape[0])
        posterior, decoded = self.model.apply({"params": params}, x_in, eps)
        posterior["log_px_z"] = self.likelihood.log_prob(decoded, target, self.event_ndims)
        posterior["log_pz"] = standard_normal_log_prob(posterior["z"])
        return posterior

    def _log_weights(self, params, x_in, target, keys):
        t = self._terms(params, x_in, target, keys)
        return t["log_px_z"] + t["log_pz"] - t["log_q"]

    def _elbo_terms(self, params, x_in, target, key, num_samples: int, kl: str):
        """Per-example (elbo, kl, recon), averaging ``num_samples`` posterior samples."""
        keys = jax.random.split(key, num_samples)
        t = self._terms(params, x_in, target, keys)
        recon = jnp.mean(t["log_px_z"], axis=0)
        if kl == "mc":
            kl_value = jnp.mean(t["log_q"] - t["log_pz"], axis=0)
        elif self.model.posterior_flow is None:
            kl_value = diagonal_normal_kl(t["mean"], t["log_scale"])
        else:  # eq. 2.17 with the entropy of q_0 in closed form
            cross = jnp.mean(t["log_pz"] + t["sum_log_det"], axis=0)
            kl_value = -diagonal_normal_entropy(t["log_scale"]) - cross
        return recon - kl_value, kl_value, recon

    def elbo(
        self, params, x: Array, key: PRNGKey, *, num_samples: int = 1, kl: str | None = None
    ) -> dict[str, Array]:
        """Per-example ``elbo``, ``kl`` and ``recon`` (nats) of raw data ``x`` (B, *event_shape)
        with ``num_samples`` posterior samples and the KL estimator ``kl`` (default: the
        objective's)."""
        kl = kl or self.kl
        if kl not in KL_ESTIMATORS:
            raise ValueError(f"kl must be one of {KL_ESTIMATORS}, got {kl!r}")
        self.check_input(x)
        data_key, sample_key = jax.random.split(key)
        x_in, target = self._prepare(x, data_key)
        elbo, kl_value, recon = self._elbo_terms(params, x_in, target, sample_key, num_samples, kl)
        return dict(elbo=elbo, kl=kl_value, recon=recon)

    # The trainer's Objective -------------------------------------------------------------
    def init(self, key: PRNGKey, batch):
        self._check_batch(batch)
        data_key, noise_key, param_key = jax.random.split(key, 3)
        x_in, _ = self._prepare(batch["x"], data_key)
        eps = self._noise(noise_key[None], x_in.shape[0])
        variables = self.model.init(param_key, x_in, eps)
        return variables["params"], {}

    def loss(self, params, model_state, batch, key):
        data_key, sample_key = jax.random.split(key)
        x_in, target = self._prepare(batch["x"], data_key, train=True)
        elbo, kl, recon = self._elbo_terms(
            params, x_in, target, sample_key, self.train_samples, self.kl
        )
        metrics = dict(elbo=jnp.mean(elbo), kl=jnp.mean(kl), recon=jnp.mean(recon))
        return -metrics["elbo"], (metrics, model_state)

    def evaluate(self, params, model_state, batch, key):
        data_key, elbo_key, iwae_key = jax.random.split(key, 3)
        x_in, target = self._prepare(batch["x"], data_key)
        elbo, kl, recon = self._elbo_terms(params, x_in, target, elbo_key, 1, self.kl)
        return dict(elbo=elbo, kl=kl, recon=recon, **self._iwae_metrics(
            params, x_in, target, iwae_key
        ))  # fmt: skip

    # Generation and figures --------------------------------------------------------------
    def decode(self, params, z: Array) -> Array:
        return self.model.apply({"params": params}, z, method=VAE.decode)

    def encode(self, params, x: Array, key: PRNGKey | None = None) -> Array:
        """The posterior mean μ(x) of q_0 (before any flow) of raw data ``x``."""
        key = jax.random.PRNGKey(0) if key is None else key
        x_in, _ = self._prepare(x, key)
        return self.model.apply({"params": params}, x_in, method=VAE.encode)[0]

    def reconstruct(self, params, x: Array, key: PRNGKey) -> tuple[Array, Array]:
        """(target, E[x|z] in [0, 1]) with z the flow image of the posterior mean (ε = 0)."""
        x_in, target = self._prepare(x, key)
        eps = jnp.zeros((1, x_in.shape[0], self.latent_dim), x_in.dtype)
        _, decoded = self.model.apply({"params": params}, x_in, eps)
        return target, self.likelihood.mean(decoded[0])

    def sample(self, params, model_state, key: PRNGKey, num: int, *, means: bool = False) -> Array:
        """``num`` draws x ~ p(x|z), z ~ p(z), in the data's units (or E[x|z] with ``means``);
        ``model_state`` is ``{}`` (the one sampling signature of every family)."""
        del model_state
        z_key, x_key = jax.random.split(key)
        z = jax.random.normal(z_key, (num, self.latent_dim), jnp.result_type(float))
        decoded = self.decode(params, z)
        if means:
            return self.likelihood.mean(decoded)
        return self.likelihood.to_data(self.likelihood.sample(x_key, decoded))
