"""Flow distributions (`Flow`: a base distribution pushed through a bijector), dequantisation
and bits/dim. A flow's maximum-likelihood trainer objective is `jgen.flows.DensityObjective`."""

from jgen.distributions.dequantization import LogitPreprocess, bits_per_dim, uniform_dequantize
from jgen.distributions.flow import Flow, StandardNormal

__all__ = [
    "Flow",
    "LogitPreprocess",
    "StandardNormal",
    "bits_per_dim",
    "uniform_dequantize",
]
