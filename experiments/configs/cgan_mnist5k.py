"""A conditional DCGAN on MNIST-5k: label embedding in the generator, projection discriminator
with spectral normalisation (Miyato & Koyama 2018); the networks of ``gan_mnist5k``.
Launch: ``jgen train cgan_mnist5k``; ``gan_metrics.json`` adds the intended-class accuracy.
"""

from jgen.config import shared_config_module

gan = shared_config_module("gan_mnist5k")


def get_config(arg: str | None = None, smoke: bool = False):
    return gan.get_config(arg, smoke, conditional=True)
