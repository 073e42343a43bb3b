"""Composable bijectors with log-determinants (see `jgen.bijectors.base` for the contract)."""

from jgen.bijectors.base import (
    Bijector,
    Chain,
    FromDistrax,
    Identity,
    Inverse,
    is_training,
    mode,
    sum_rightmost,
    to_distrax,
)

# Elementwise, permutation, linear and normalisation bijectors are exported below this line.
from jgen.bijectors.elementwise import Affine, Logit, ScalarAffine, Sigmoid, Tanh
from jgen.bijectors.linear import Conv1x1, LULinear
from jgen.bijectors.normalization import ActNorm, BatchNorm
from jgen.bijectors.permutations import Permute, Reverse, random_permutation

# Planar and radial flows (Rezende & Mohamed 2015) are exported below this line.
# isort: split
from jgen.bijectors.planar import Planar, Radial

# Coupling, multi-scale and ready-made RealNVP flows are exported below this line.
# isort: split
from jgen.bijectors.coupling import AffineCoupling, SplineCoupling
from jgen.bijectors.glow import glow, glow_vector
from jgen.bijectors.multiscale import FactorOut, Reshape, Squeeze, multiscale
from jgen.bijectors.realnvp import multiscale_realnvp, neural_spline_flow, realnvp
from jgen.bijectors.scan import Repeat
from jgen.bijectors.spline import RationalQuadraticSpline

# Masked autoregressive flows (MAF / IAF) are exported below this line.
# isort: split
from jgen.bijectors.autoregressive import (
    InverseAutoregressive,
    MaskedAutoregressive,
    masked_autoregressive_flow,
)
from jgen.bijectors.block_naf import BlockNeuralAutoregressive, block_neural_autoregressive_flow

# Residual flows (i-ResNet / Residual Flows) and spectral normalisation are exported below.
# isort: split
from jgen.bijectors.residual import (
    ExactLogDet,
    FixedPointInfo,
    LogDetEstimator,
    PowerSeriesLogDet,
    ResidualBlock,
    RussianRouletteLogDet,
    residual_flow,
    summarize_fixed_point,
)
from jgen.bijectors.spectral import SpectralConv, SpectralDense

__all__ = [
    "ActNorm",
    "Affine",
    "AffineCoupling",
    "BatchNorm",
    "Bijector",
    "BlockNeuralAutoregressive",
    "Chain",
    "Conv1x1",
    "ExactLogDet",
    "FactorOut",
    "FixedPointInfo",
    "FromDistrax",
    "Identity",
    "Inverse",
    "InverseAutoregressive",
    "LULinear",
    "LogDetEstimator",
    "Logit",
    "MaskedAutoregressive",
    "Permute",
    "Planar",
    "PowerSeriesLogDet",
    "Radial",
    "RationalQuadraticSpline",
    "Repeat",
    "Reshape",
    "ResidualBlock",
    "Reverse",
    "RussianRouletteLogDet",
    "ScalarAffine",
    "Sigmoid",
    "SpectralConv",
    "SpectralDense",
    "SplineCoupling",
    "Squeeze",
    "Tanh",
    "block_neural_autoregressive_flow",
    "glow",
    "glow_vector",
    "is_training",
    "masked_autoregressive_flow",
    "mode",
    "multiscale",
    "multiscale_realnvp",
    "neural_spline_flow",
    "random_permutation",
    "realnvp",
    "residual_flow",
    "sum_rightmost",
    "summarize_fixed_point",
    "to_distrax",
]
