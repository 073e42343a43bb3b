"""A Helmholtz machine trained with wake-sleep on dynamically binarised MNIST.

Two layers of binary stochastic units (200 above the pixels, 50 on top), every conditional an MLP
with one hidden layer of 200 tanh units, Bernoulli pixels; binarisation, optimiser and
evaluation (IWAE-5000, q as proposal) as in vae_mnist. Needs the MNIST files under
$JGEN_DATA_DIR/mnist. Launch: ``jgen train helmholtz_mnist --workdir runs/helmholtz_mnist``.
Not run here (no MNIST files on the development machine): no numbers are reported from it.
"""

from jgen.vae.experiment import latent_variable_config


def get_config(arg: str | None = None, smoke: bool = False):
    model = dict(
        likelihood="bernoulli", binarization="dynamic", binarization_seed=0,
        latent_dims=(200, 50), hidden_dims=(200,), activation="tanh",
    )  # fmt: skip
    return latent_variable_config(
        "helmholtz_mnist", "helmholtz", dict(name="mnist", seed=0), model, smoke=smoke,
        smoke_model=dict(latent_dims=(4, 2), hidden_dims=(8,)), steps=300_000, eval_every=0,
        checkpoint_every=10_000, eval_batch_size=100, iwae_k=(1, 5000), chunk_size=250,
        log_every=1000, warmup_steps=1000,
    )  # fmt: skip
