"""Flow distributions, dequantisation, bits/dim and the maximum-likelihood objective."""

from jgen.distributions.dequantization import LogitPreprocess, bits_per_dim, uniform_dequantize
from jgen.distributions.flow import Flow, StandardNormal
from jgen.distributions.objective import DensityObjective

__all__ = [
    "DensityObjective",
    "Flow",
    "LogitPreprocess",
    "StandardNormal",
    "bits_per_dim",
    "uniform_dequantize",
]
