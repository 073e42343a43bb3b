"""Fully observed autoregressive density models with exact likelihood: `MADE` on discrete data.

log p(x) = sum_d log p(x_d | x_<d) with categorical conditionals; bits/dim = -log2 p(x) / D.
"""

from jgen.autoregressive.made import MADE, MaskedDense, check_levels, made_masks
from jgen.autoregressive.objective import AutoregressiveObjective

__all__ = ["MADE", "AutoregressiveObjective", "MaskedDense", "check_levels", "made_masks"]
