"""VAEs on binarised 8x8 digits (dynamic binarisation of the 17 grey levels), with flow posteriors.

Variants (after the colon): ``diagonal`` (a diagonal-Gaussian posterior), ``planar4`` and
``planar16`` (K = 4 or 16 amortised planar flows, Rezende & Mohamed 2015), ``radial16`` (K = 16
amortised radial flows), ``latent2`` (2-D latents, for the latent-space figure), ``categorical``
(the 17 levels modelled exactly by a categorical likelihood and a conv encoder/decoder).
Encoder and decoder are 2-layer MLPs (128 units, GELU), 8 latents, Adam with cosine decay,
5000 steps of batch 100. Training binarises every batch afresh; evaluation scores a binarisation
fixed per test image, the same for every model, with IWAE-1000 (``nll``).
Launch: ``jgen train vae_digits:planar16 --workdir runs/vae_digits_planar16``; the README's
digits NLL table lists the numbers these reach (3 seeds: ``train.seed=0,1,2``).
"""

from jgen.vae.experiment import latent_variable_config

ARGS = ("diagonal", "planar4", "planar16", "radial16", "latent2", "categorical")


def get_config(arg: str | None = None, smoke: bool = False):
    variant = arg or "diagonal"
    model = dict(
        likelihood="bernoulli", binarization="dynamic", binarization_seed=0, latent_dim=8,
        architecture="mlp", hidden_dims=(128, 128), conv_channels=(32, 64), activation="gelu",
        posterior_flow="none", num_flows=0, amortized=True, kl="analytic", train_samples=1,
    )  # fmt: skip
    if variant.startswith(("planar", "radial")):
        model.update(posterior_flow=variant[:6], num_flows=int(variant[6:]))
    elif variant == "latent2":
        model.update(latent_dim=2)
    elif variant == "categorical":
        model.update(likelihood="categorical", architecture="conv", hidden_dims=(256,))
    smoke_model = dict(hidden_dims=(16,), conv_channels=(4, 8))
    if model["num_flows"]:
        smoke_model["num_flows"] = 2
    return latent_variable_config(
        f"vae_digits:{variant}", "vae", dict(name="digits", seed=0), model, smoke=smoke,
        smoke_model=smoke_model, steps=5000, eval_every=2500, checkpoint_every=2500,
        eval_batch_size=300, iwae_k=(1, 10, 100, 1000), chunk_size=100,
    )  # fmt: skip
