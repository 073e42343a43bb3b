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

# Coupling, multi-scale and ready-made RealNVP flows are exported below this line.

__all__ = [
    "Bijector",
    "Chain",
    "FromDistrax",
    "Identity",
    "Inverse",
    "sum_rightmost",
    "to_distrax",
]
