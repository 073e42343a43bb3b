"""A Helmholtz machine trained with wake-sleep on binarised 8x8 digits (Dayan et al. 1995).

Two layers of binary stochastic units (32 above the pixels, 16 on top), every conditional an
MLP with one hidden layer of 128 GELU units, Bernoulli pixels; the same dynamic binarisation,
optimiser, 5000 steps and evaluation (IWAE-1000 with the recognition model as proposal) as
vae_digits, so the two are compared on the same footing in the README's digits NLL table.
Launch: ``jgen train helmholtz_digits --workdir runs/helmholtz_digits``.
"""

from jgen.vae.experiment import latent_variable_config


def get_config(arg: str | None = None, smoke: bool = False):
    model = dict(
        likelihood="bernoulli", binarization="dynamic", binarization_seed=0,
        latent_dims=(32, 16), hidden_dims=(128,), activation="gelu",
    )  # fmt: skip
    return latent_variable_config(
        "helmholtz_digits", "helmholtz", dict(name="digits", seed=0), model, smoke=smoke,
        smoke_model=dict(latent_dims=(4, 2), hidden_dims=(8,)), steps=5000, eval_every=2500,
        checkpoint_every=2500, eval_batch_size=300, iwae_k=(1, 10, 100, 1000), chunk_size=100,
    )  # fmt: skip
