"""The VAE as one Flax module: encoder, diagonal-Gaussian posterior, optional flows, decoder.

Generative model p(z) p(x|z) with p(z) = N(0, I) and p(x|z) a likelihood (`jgen.vae.likelihoods`)
whose parameters the decoder outputs. Recognition model (Kingma & Welling 2014):

    q_0(z_0|x) = N(μ(x), diag σ(x)²),   z_0 = μ + σ ⊙ ε,  ε ~ N(0, I)   (reparametrisation)

optionally refined by K planar or radial flows (Rezende & Mohamed 2015, notes section 2.2) or
K inverse autoregressive flow layers (IAF, Kingma et al. 2016; `jgen.bijectors.
InverseAutoregressive`, one MADE pass each, coordinates reversed on every other layer),
z_K = f_K ∘ … ∘ f_1(z_0), so that

    log q_K(z_K|x) = log q_0(z_0|x) − Σ_k log|det ∂f_k/∂z_{k−1}|.

The flows' parameters are either emitted by the encoder per example (``amortized=True``: the
encoder's head grows by K · num_context_params(latent_dim)) or shared by all examples. IAF
layers have their own MADE parameters and, when amortised, read a context of ``latent_dim``
encoder outputs each (Kingma et al.'s h).
The encoder's head is [μ (d), log σ (d), flow parameters]; log σ is used as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jgen.bijectors.autoregressive import InverseAutoregressive
from jgen.bijectors.base import Chain
from jgen.bijectors.permutations import Reverse
from jgen.bijectors.planar import flow_layer_class
from jgen.nets import resolve_activation
from jgen.typing import Array
from jgen.vae.bounds import HALF_LOG_2PI
from jgen.vae.networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from jgen.validation import check_int

__all__ = ["POSTERIOR_FLOWS", "VAE"]

POSTERIOR_FLOWS = ("planar", "radial", "iaf")
ARCHITECTURES = ("mlp", "conv")


def _flow_class(kind: str):
    """Planar or Radial by name; None for 'iaf' (built by `VAE.setup`)."""
    if kind == "iaf":
        return None
    try:
        return flow_layer_class(kind, "VAE: posterior_flow")
    except ValueError:
        raise ValueError(
            f"VAE: posterior_flow must be one of {POSTERIOR_FLOWS}, got {kind!r}"
        ) from None


class VAE(nn.Module):
    """Encoder, posterior (diagonal Gaussian, then optional flows) and decoder.

    event_shape:      shape of one data example, e.g. (8, 8, 1).
    latent_dim:       d, the size of z.
    num_params:       decoder outputs per data dimension (the likelihood's ``num_params``).
    architecture:     'mlp' (flattened data) or 'conv' (images (H, W, C)).
    hidden_dims:      MLP hidden widths (encoder; the decoder mirrors them), or, for 'conv', the
                      width of the dense layer(s) — only ``hidden_dims[0]`` is used.
    conv_channels:    channels of the stride-2 stages of the conv encoder/decoder.
    activation:       name in `jgen.nets.ACTIVATIONS`.
    posterior_flow:   None, 'planar', 'radial' or 'iaf' (MADE of one hidden layer of width
                      ``hidden_dims[0]``, affine transformer).
    num_flows:        K, the number of flow layers (0 with no flow).
    amortized:        flow parameters from the encoder (True) or shared (False).
    """

    event_shape: tuple[int, ...]
    latent_dim: int
    num_params: int
    architecture: str = "mlp"
    hidden_dims: Sequence[int] = (200, 200)
    conv_channels: Sequence[int] = (32, 64)
    activation: str = "gelu"
    posterior_flow: str | None = None
    num_flows: int = 0
    amortized: bool = True

    def __post_init__(self):
        object.__setattr__(self, "event_shape", tuple(int(d) for d in self.event_shape))
        check_int(self.latent_dim, "latent_dim", minimum=1, owner="VAE")
        check_int(self.num_params, "num_params", minimum=1, owner="VAE")
        check_int(self.num_flows, "num_flows", minimum=0, owner="VAE")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"VAE: architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.architecture == "conv" and len(self.event_shape) != 3:
            raise ValueError(
                f"VAE: architecture='conv' needs images (H, W, C), got event_shape "
                f"{self.event_shape}"
            )
        resolve_activation("VAE", self.activation)
        if self.posterior_flow is not None:
            _flow_class(self.posterior_flow)
            if self.num_flows == 0:
                raise ValueError(
                    f"VAE: posterior_flow={self.posterior_flow!r} needs num_flows >= 1, got 0"
                )
        elif self.num_flows:
            raise ValueError(f"VAE: num_flows={self.num_flows} needs a posterior_flow kind")
        super().__post_init__()

    @property
    def context_size(self) -> int:
        """Encoder outputs per flow layer (0 without flows or with shared flows)."""
        if self.posterior_flow is None or not self.amortized:
            return 0
        if self.posterior_flow == "iaf":
            return self.latent_dim
        return _flow_class(self.posterior_flow).num_context_params(self.latent_dim)

    def setup(self):
        act = resolve_activation("VAE", self.activation)
        head = 2 * self.latent_dim + self.num_flows * self.context_size
        hidden = tuple(self.hidden_dims)
        if self.architecture == "mlp":
            self.encoder = MLPEncoder(self.event_shape, hidden, head, activation=act)
            self.decoder = MLPDecoder(self.event_shape, hidden[::-1], self.num_params, act)
        else:
            channels = tuple(self.conv_channels)
            self.encoder = ConvEncoder(self.event_shape, channels, hidden[0], head, act)
            self.decoder = ConvDecoder(self.event_shape, channels, hidden[0], self.num_params, act)
        if self.posterior_flow == "iaf":
            self.flows = [self._iaf_layer(k, hidden) for k in range(self.num_flows)]
        elif self.posterior_flow is not None:
            cls = _flow_class(self.posterior_flow)
            self.flows = [
                cls(self.latent_dim, amortized=self.amortized, name=f"flow{k}")
                for k in range(self.num_flows)
            ]

    def _iaf_layer(self, k: int, hidden: tuple[int, ...]):
        layer = InverseAutoregressive(
            self.latent_dim,
            hidden_dims=hidden[:1],
            context_dim=self.context_size or None,
            activation=self.activation,
        )
        if k % 2 == 0 or self.latent_dim == 1:
            return Chain([layer], name=f"flow{k}")
        return Chain([Reverse(), layer, Reverse()], name=f"flow{k}")

    def encode(self, x: Array) -> tuple[Array, Array, Array]:
        """Encoder input (..., *event_shape) -> (μ, log σ, flow parameters (..., K·P))."""
        out = self.encoder(x)
        d = self.latent_dim
        return out[..., :d], out[..., d : 2 * d], out[..., 2 * d :]

    def flow(self, z0: Array, flow_params: Array) -> tuple[Array, Array]:
        """z_K and Σ_k log|det ∂f_k| for z_0 of shape (S, B, d), flow_params (B, K·P)."""
        total = jnp.zeros(z0.shape[:-1], z0.dtype)
        if self.posterior_flow is None:
            return z0, total
        z, size = z0, self.context_size
        for k, layer in enumerate(self.flows):
            context = flow_params[..., k * size : (k + 1) * size] if self.amortized else None
            z, log_det = layer.forward_and_log_det(z, context)
            total = total + log_det
        return z, total

    def posterior(self, x: Array, eps: Array) -> dict[str, Array]:
        """Posterior samples for the noise ``eps`` of shape (S, B, d) and their log-densities.

        Returns z (= z_K, (S, B, d)), log_q (log q_K(z_K|x), (S, B)), log_q0 (log q_0(z_0|x)),
        sum_log_det (Σ_k log|det|), and the Gaussian's mean and log_scale (B, d).
        """
        mean, log_scale, flow_params = self.encode(x)
        z0 = mean + jnp.exp(log_scale) * eps
        log_q0 = jnp.sum(-0.5 * eps**2 - HALF_LOG_2PI - log_scale, axis=-1)
        z, sum_log_det = self.flow(z0, flow_params)
        return dict(
            z=z, log_q=log_q0 - sum_log_det, log_q0=log_q0, sum_log_det=sum_log_det,
            mean=mean, log_scale=log_scale,
        )  # fmt: skip

    def decode(self, z: Array) -> Array:
        """Latents (..., d) -> the likelihood's parameters (..., *event_shape, num_params)."""
        return self.decoder(z)

    def __call__(self, x: Array, eps: Array) -> tuple[dict[str, Array], Array]:
        """Posterior samples for ``eps`` and their decoder outputs (used by ``init``)."""
        posterior = self.posterior(x, eps)
        return posterior, self.decode(posterior["z"])
