"""A conditional GAN on the 8x8 digits: label embedding in the generator, a projection
discriminator (Miyato & Koyama 2018) with spectral normalisation.

Same networks and optimiser as ``gan_digits``; samples are drawn by class. Launch:
``jgen train cgan_digits``. The test metrics include ``intended_class_accuracy`` (one sample
per test example, of that example's class, classified by the digit classifier of
`jgen.gan.metrics`); ``gan_metrics.json`` adds it on 2500 samples with the Fréchet distance and
the classes covered. The README gives the number after the default 3000 steps.
"""

from ml_collections import ConfigDict

from jgen.config import shared_config_module

_base = shared_config_module("gan_digits")


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    return _base.get_config(arg, smoke, conditional=True)
