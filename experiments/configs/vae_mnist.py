"""The standard MNIST VAE (Kingma & Welling 2014; Burda et al. 2016), with flow posteriors.

Dynamically binarised MNIST (a new Bernoulli(x/255) draw per step; each test image binarised
once), Bernoulli pixels, 50 latents, encoder and decoder 2-layer MLPs of 200 tanh units, Adam,
batch 100. Test NLL is IWAE-5000 (Burda et al.'s estimate). Variants: ``diagonal``,
``planar16`` and ``planar80`` (K amortised planar flows, Rezende & Mohamed 2015).
Published: VAE 86.76 nats (Burda et al., same architecture, 3280 epochs), DLGM + 80 planar flows
85.1 nats (Rezende & Mohamed; another network, and a bound rather than IWAE). The default 300k
steps are 500 epochs. Needs the four MNIST files under $JGEN_DATA_DIR/mnist (jgen.data.mnist);
nothing is downloaded. Launch: ``jgen train vae_mnist:diagonal --workdir runs/vae_mnist``.
Not run here (no MNIST files on the development machine): no numbers are reported from it.
"""

from jgen.vae.experiment import latent_variable_config

ARGS = ("diagonal", "planar16", "planar80")


def get_config(arg: str | None = None, smoke: bool = False):
    variant = arg or "diagonal"
    model = dict(
        likelihood="bernoulli", binarization="dynamic", binarization_seed=0, latent_dim=50,
        architecture="mlp", hidden_dims=(200, 200), conv_channels=(32, 64), activation="tanh",
        posterior_flow="none", num_flows=0, amortized=True, kl="analytic", train_samples=1,
    )  # fmt: skip
    smoke_model = dict(hidden_dims=(16,), latent_dim=4)
    if variant != "diagonal":
        model.update(posterior_flow="planar", num_flows=int(variant.removeprefix("planar")))
        smoke_model["num_flows"] = 2
    return latent_variable_config(
        f"vae_mnist:{variant}", "vae", dict(name="mnist", seed=0), model, smoke=smoke,
        smoke_model=smoke_model, steps=300_000, eval_every=0, checkpoint_every=10_000,
        eval_batch_size=100, iwae_k=(1, 5000), chunk_size=250, log_every=1000, warmup_steps=1000,
    )  # fmt: skip
