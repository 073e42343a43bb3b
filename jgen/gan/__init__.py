"""GANs, conditional GANs and classifier-based density-ratio estimation (notes section 1.2).

`DensityRatioEstimator` (log r = logit D + log(n_q/n_p)), the `GAN` two-player objective of
the shared trainer (minimax / non-saturating / Wasserstein losses, R1 and WGAN-GP penalties,
k discriminator steps per generator step, conditional GANs with a projection discriminator),
MLP and DCGAN-style networks with optional spectral normalisation, and sample-quality metrics
(mode coverage on the 2-D mixtures, a digit classifier's Fréchet distance and class accuracy).
"""

from jgen.gan.losses import (
    GAN_LOSSES,
    PENALTIES,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    minimax_value,
    r1_penalty,
)
from jgen.gan.metrics import (
    DigitsClassifier,
    digits_classifier,
    digits_sample_metrics,
    frechet_distance,
    high_quality,
    mode_statistics,
)
from jgen.gan.nets import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator
from jgen.gan.objective import GAN, to_levels
from jgen.gan.ratio import DensityRatioEstimator, ratio_dataset

__all__ = [
    "GAN",
    "GAN_LOSSES",
    "PENALTIES",
    "ConvDiscriminator",
    "ConvGenerator",
    "DensityRatioEstimator",
    "DigitsClassifier",
    "MLPDiscriminator",
    "MLPGenerator",
    "digits_classifier",
    "digits_sample_metrics",
    "discriminator_loss",
    "frechet_distance",
    "generator_loss",
    "gradient_penalty",
    "high_quality",
    "minimax_value",
    "mode_statistics",
    "r1_penalty",
    "ratio_dataset",
    "to_levels",
]
