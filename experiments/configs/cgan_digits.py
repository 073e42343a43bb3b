"""A conditional GAN on the 8x8 digits: label embedding in the generator, a projection
discriminator (Miyato & Koyama 2018) with spectral normalisation.

Same networks and optimiser as ``gan_digits``; samples are drawn by class. Launch:
``jgen train cgan_digits``. The test metrics include ``intended_class_accuracy`` (one sample
per test example, of that example's class, classified by the digit classifier of
`jgen.gan.metrics`); ``gan_metrics.json`` adds it on 2500 samples with the Fréchet distance and
the classes covered. The README gives the number after the default 3000 steps.
"""

import importlib.util
from pathlib import Path

from ml_collections import ConfigDict

_spec = importlib.util.spec_from_file_location(
    "jgen_config_gan_digits_base", Path(__file__).with_name("gan_digits.py")
)
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config(arg: str | None = None, smoke: bool = False) -> ConfigDict:
    return _base.get_config(arg, smoke, conditional=True)
