"""Composable bijectors with log-determinants (see `jgen.bijectors.base` for the contract)."""

from jgen.bijectors.base import (
    Bijector,
    Chain,
    FromDistrax,
    Identity,
    Inverse,
    sum_rightmost,
    to_distrax,
)

# Elementwise, permutation, linear and normalisation bijectors are exported below this line.
from jgen.bijectors.elementwise import Affine, Logit, ScalarAffine, Sigmoid, Tanh
from jgen.bijectors.linear import Conv1x1, LULinear, random_orthogonal
from jgen.bijectors.normalization import ActNorm, BatchNorm
from jgen.bijectors.permutations import Permute, Reverse, random_permutation

# Coupling, multi-scale and ready-made RealNVP flows are exported below this line.
# isort: split
from jgen.bijectors.coupling import AffineCoupling
from jgen.bijectors.multiscale import FactorOut, Squeeze
from jgen.bijectors.realnvp import multiscale_realnvp, realnvp

__all__ = [
    "ActNorm",
    "Affine",
    "AffineCoupling",
    "BatchNorm",
    "Bijector",
    "Chain",
    "Conv1x1",
    "FactorOut",
    "FromDistrax",
    "Identity",
    "Inverse",
    "LULinear",
    "Logit",
    "Permute",
    "Reverse",
    "ScalarAffine",
    "Sigmoid",
    "Squeeze",
    "Tanh",
    "multiscale_realnvp",
    "random_orthogonal",
    "random_permutation",
    "realnvp",
    "sum_rightmost",
    "to_distrax",
]
