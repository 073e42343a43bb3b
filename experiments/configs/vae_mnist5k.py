"""A convolutional VAE on dynamically binarised MNIST-5k (28x28), with flow posteriors.

Bernoulli pixels (a new binarisation of x/255 every step; each test image binarised once),
32 latents, conv encoder (stride-2 3x3 convolutions 32, 64 → 256 units) and the mirrored
transposed-conv decoder, Adam. Variants: ``diagonal`` and ``planar16`` (16 amortised planar
flows, Rezende & Mohamed 2015). Test NLL is IWAE-1000 in nats (``nll``; bits/dim = nll /
(784 ln 2)). Launch: ``jgen train vae_mnist5k:planar16``. Published full-MNIST context: IWAE
86.76 nats (Burda et al., MLP networks).
"""

from jgen.config import shared_config_module
from jgen.vae.experiment import latent_variable_config

shared = shared_config_module("_mnist5k")
ARGS = ("diagonal", "planar16")


def get_config(arg: str | None = None, smoke: bool = False):
    variant = arg or "diagonal"
    model = dict(
        likelihood="bernoulli", binarization="dynamic", binarization_seed=0, latent_dim=32,
        architecture="conv", hidden_dims=(256,), conv_channels=(32, 64), activation="gelu",
        posterior_flow="none", num_flows=0, amortized=True, kl="analytic", train_samples=1,
    )  # fmt: skip
    smoke_model = dict(hidden_dims=(8,), conv_channels=(4, 8), latent_dim=4)
    if variant.startswith("planar"):
        model.update(posterior_flow="planar", num_flows=int(variant.removeprefix("planar")))
        smoke_model["num_flows"] = 2
    c = latent_variable_config(
        f"vae_mnist5k:{variant}", "vae", shared.data(smoke).to_dict(), model, smoke=smoke,
        smoke_model=smoke_model, steps=20_000, eval_every=5000, checkpoint_every=5000,
        eval_batch_size=100, iwae_k=(1, 1000), chunk_size=100,
    )  # fmt: skip
    if smoke:
        c.train.eval_batch_size = shared.SMOKE_TEST_IMAGES
    return c
