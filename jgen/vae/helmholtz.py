"""The Helmholtz machine (Dayan, Hinton, Neal & Zemel 1995) trained with wake-sleep.

Generative model: layers of binary stochastic units h_L → … → h_1 → x,

    p(h_L) = Π Bernoulli(σ(b)),   p(h_{l−1}|h_l) = Π Bernoulli(σ(g_l(h_l))),   p(x|h_1)

with p(x|h_1) a likelihood of `jgen.vae.likelihoods` (Bernoulli pixels for binarised digits).
Recognition model: q(h_1|x) = Π Bernoulli(σ(r_1(x))), q(h_{l+1}|h_l) = Π Bernoulli(σ(r_{l+1}(h_l))).
The networks g, r are MLPs (``hidden_dims=()``: logistic units, as in the original paper).

Latents are discrete, so there is no reparametrisation trick and no single objective whose
gradient trains both models: wake-sleep optimises two (notes section 1.1.1).

* Wake: h ~ q(h|x) for data x; the generative parameters θ ascend log p_θ(x, h).
* Sleep: a dream (h, x) ~ p_θ; the recognition parameters φ ascend log q_φ(h|x).

`HelmholtzObjective.loss` realises both phases as one loss,

    L(θ, φ) = −log p_θ(x, sg[h_q]) − log q_φ(sg[h_p] | sg[x_p]),

where sg is ``stop_gradient`` and every sample is drawn with the current parameters. The wake
term depends on θ only (its h is a constant) and the sleep term on φ only (the dream is a
constant), so ∂L/∂θ is exactly the wake gradient and ∂L/∂φ exactly the sleep gradient: one
optimiser step is a simultaneous wake step for θ and sleep step for φ
(tests/vae/test_helmholtz.py checks the separation). Unlike the ELBO, L is not a bound on log
p(x) and the two phases minimise KL divergences in opposite directions (the sleep phase fits q to
p's posterior in KL(p‖q) on dreams, not on data). The model is evaluated like the VAE, with
IWAE-k using q as the proposal, which is a valid lower bound for any q.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.nets import MLP, resolve_activation
from jgen.typing import Array, PRNGKey
from jgen.vae.networks import MLPDecoder, MLPEncoder
from jgen.vae.objective import LatentVariableObjective
from jgen.validation import check_int

__all__ = ["HelmholtzMachine", "HelmholtzObjective"]


def _bernoulli_log_prob(logits: Array, h: Array) -> Array:
    return jnp.sum(h * logits - jax.nn.softplus(logits), axis=-1)


def _bernoulli_sample(key: PRNGKey, logits: Array) -> Array:
    p = jax.nn.sigmoid(logits)
    return (jax.random.uniform(key, p.shape, p.dtype) < p).astype(p.dtype)


class HelmholtzMachine(nn.Module):
    """Binary stochastic layers ``latent_dims`` (h_1 next to the data first) with generative
    (``gen_*``) and recognition (``rec_*``) conditionals; see the module docstring.

    event_shape: shape of one example; num_params: the likelihood's outputs per dimension;
    hidden_dims: deterministic hidden widths inside every conditional; activation: a name of
    `jgen.nets.ACTIVATIONS`.
    """

    event_shape: tuple[int, ...]
    latent_dims: Sequence[int]
    num_params: int
    hidden_dims: Sequence[int] = ()
    activation: str = "gelu"

    def __post_init__(self):
        object.__setattr__(self, "event_shape", tuple(int(d) for d in self.event_shape))
        object.__setattr__(self, "latent_dims", tuple(self.latent_dims))
        if not self.latent_dims:
            raise ValueError("HelmholtzMachine: latent_dims needs at least one layer, got ()")
        for width in self.latent_dims:
            check_int(width, "every latent width", minimum=1, owner="HelmholtzMachine")
        check_int(self.num_params, "num_params", minimum=1, owner="HelmholtzMachine")
        resolve_activation("HelmholtzMachine", self.activation)
        super().__post_init__()

    def setup(self):
        act = resolve_activation("HelmholtzMachine", self.activation)
        hidden, dims = tuple(self.hidden_dims), self.latent_dims
        self.gen_prior_logits = self.param("gen_prior", nn.initializers.zeros_init(), (dims[-1],))
        # With 1-based h: gen_layers[i] is p(h_{i+1} | h_{i+2}), rec_layers[i] q(h_{i+2} | h_{i+1}).
        self.gen_layers = [MLP(hidden, dims[i], activation=act) for i in range(len(dims) - 1)]
        self.gen_decoder = MLPDecoder(self.event_shape, hidden, self.num_params, act)
        self.rec_encoder = MLPEncoder(self.event_shape, hidden, dims[0], act)
        self.rec_layers = [MLP(hidden, dims[i + 1], activation=act) for i in range(len(dims) - 1)]

    def recognize(self, x: Array, key: PRNGKey) -> tuple[list[Array], Array]:
        """h ~ q(h|x), bottom-up, and log q(h|x): ([h_1, …, h_L], (B,))."""
        keys = jax.random.split(key, len(self.latent_dims))
        logits = self.rec_encoder(x)
        hs, log_q = [], 0.0
        for i, layer_key in enumerate(keys):
            if i:
                logits = self.rec_layers[i - 1](hs[-1])
            h = _bernoulli_sample(layer_key, logits)
            hs.append(h)
            log_q = log_q + _bernoulli_log_prob(logits, h)
        return hs, log_q

    def recognition_log_prob(self, x: Array, hs: Sequence[Array]) -> Array:
        """log q(h|x) of given binary layers ``hs`` = [h_1, …, h_L]."""
        log_q = _bernoulli_log_prob(self.rec_encoder(x), hs[0])
        for i in range(1, len(hs)):
            log_q = log_q + _bernoulli_log_prob(self.rec_layers[i - 1](hs[i - 1]), hs[i])
        return log_q

    def generative(self, hs: Sequence[Array]) -> tuple[Array, Array]:
        """(log p(h), the likelihood's parameters of p(x|h_1)) for layers ``hs``."""
        prior = jnp.broadcast_to(self.gen_prior_logits.astype(hs[-1].dtype), hs[-1].shape)
        log_p = _bernoulli_log_prob(prior, hs[-1])
        for i in range(len(hs) - 1):
            log_p = log_p + _bernoulli_log_prob(self.gen_layers[i](hs[i + 1]), hs[i])
        return log_p, self.gen_decoder(hs[0])

    def dream(self, key: PRNGKey, num: int) -> tuple[list[Array], Array]:
        """Top-down ancestral samples h ~ p(h): ([h_1, …, h_L], p(x|h_1)'s parameters)."""
        keys = jax.random.split(key, len(self.latent_dims))
        dtype = jnp.result_type(float)
        logits = jnp.broadcast_to(self.gen_prior_logits.astype(dtype), (num, self.latent_dims[-1]))
        hs = [_bernoulli_sample(keys[-1], logits)]
        for i in range(len(self.latent_dims) - 2, -1, -1):
            hs.insert(0, _bernoulli_sample(keys[i], self.gen_layers[i](hs[0])))
        return hs, self.gen_decoder(hs[0])

    def __call__(self, x: Array, key: PRNGKey):
        """Touches every conditional (used by ``init``)."""
        hs, log_q = self.recognize(x, key)
        log_p, decoded = self.generative(hs)
        return log_p - log_q, decoded, self.dream(key, 1)


@dataclasses.dataclass(frozen=True)
class HelmholtzObjective(LatentVariableObjective):
    """Wake-sleep training of a `HelmholtzMachine` (one loss, see the module docstring);
    evaluation with an ELBO estimate (one sample of q) and IWAE-k, like `VAEObjective`."""

    model: HelmholtzMachine | None = None

    def __post_init__(self):
        super().__post_init__()
        self._check_model(self.model, HelmholtzMachine)

    @classmethod
    def create(cls, model: HelmholtzMachine, likelihood, **options) -> HelmholtzObjective:
        return cls(event_shape=model.event_shape, likelihood=likelihood, model=model, **options)

    def _apply(self, params, *args, method):
        return self.model.apply({"params": params}, *args, method=method)

    def _log_weight(self, params, x_in, target, key) -> Array:
        hs, log_q = self._apply(params, x_in, key, method=HelmholtzMachine.recognize)
        log_p, decoded = self._apply(params, hs, method=HelmholtzMachine.generative)
        return self.likelihood.log_prob(decoded, target, self.event_ndims) + log_p - log_q

    def _log_weights(self, params, x_in, target, keys):
        return jax.vmap(lambda k: self._log_weight(params, x_in, target, k))(keys)

    def init(self, key: PRNGKey, batch):
        self._check_batch(batch)
        data_key, sample_key, param_key = jax.random.split(key, 3)
        x_in, _ = self._prepare(batch["x"], data_key)
        return self.model.init(param_key, x_in, sample_key)["params"], {}

    def phases(self, params, x_in, target, key) -> dict[str, Array]:
        """Per-example wake and sleep losses (see the module docstring) and an ELBO sample."""
        wake_key, dream_key, x_key = jax.random.split(key, 3)
        hs, log_q = self._apply(params, x_in, wake_key, method=HelmholtzMachine.recognize)
        hs = jax.lax.stop_gradient(hs)
        log_p, decoded = self._apply(params, hs, method=HelmholtzMachine.generative)
        log_joint = self.likelihood.log_prob(decoded, target, self.event_ndims) + log_p
        dream_hs, dream_decoded = self._apply(
            params, dream_key, x_in.shape[0], method=HelmholtzMachine.dream
        )
        dream_x = self.likelihood.encoder_input(self.likelihood.sample(x_key, dream_decoded))
        dream_hs, dream_x = jax.lax.stop_gradient((dream_hs, dream_x))
        sleep_log_q = self._apply(
            params, dream_x, dream_hs, method=HelmholtzMachine.recognition_log_prob
        )
        elbo = jax.lax.stop_gradient(log_joint - log_q)
        return dict(wake=-log_joint, sleep=-sleep_log_q, elbo=elbo)

    def loss(self, params, model_state, batch, key):
        data_key, phase_key = jax.random.split(key)
        x_in, target = self._prepare(batch["x"], data_key, train=True)
        metrics = {k: jnp.mean(v) for k, v in self.phases(params, x_in, target, phase_key).items()}
        return metrics["wake"] + metrics["sleep"], (metrics, model_state)

    def evaluate(self, params, model_state, batch, key):
        data_key, elbo_key, iwae_key = jax.random.split(key, 3)
        x_in, target = self._prepare(batch["x"], data_key)
        elbo = self._log_weight(params, x_in, target, elbo_key)
        return dict(elbo=elbo, **self._iwae_metrics(params, x_in, target, iwae_key))

    def reconstruct(self, params, x: Array, key: PRNGKey) -> tuple[Array, Array]:
        """(target, E[x|h_1]) with h ~ q(h|x)."""
        data_key, h_key = jax.random.split(key)
        x_in, target = self._prepare(x, data_key)
        hs, _ = self._apply(params, x_in, h_key, method=HelmholtzMachine.recognize)
        _, decoded = self._apply(params, hs, method=HelmholtzMachine.generative)
        return target, self.likelihood.mean(decoded)

    def sample(self, params, model_state, key: PRNGKey, num: int, *, means: bool = False) -> Array:
        """``num`` dreams x ~ p(x|h_1), h ~ p(h), in the data's units (or E[x|h_1]);
        ``model_state`` is ``{}`` (the one sampling signature of every family)."""
        del model_state
        h_key, x_key = jax.random.split(key)
        _, decoded = self._apply(params, h_key, num, method=HelmholtzMachine.dream)
        if means:
            return self.likelihood.mean(decoded)
        return self.likelihood.to_data(self.likelihood.sample(x_key, decoded))
