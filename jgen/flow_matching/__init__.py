"""Simulation-free training of continuous normalizing flows: conditional flow matching
(independent and mini-batch optimal-transport couplings) and Moser flow."""

from jgen.flow_matching.coupling import COUPLINGS, couple, ot_permutation, squared_distances
from jgen.flow_matching.moser import BoxField, MoserObjective, MoserVelocity, field_and_divergence
from jgen.flow_matching.objective import FlowMatchingObjective
from jgen.flow_matching.paths import InterpolantPath, LinearGaussianPath, ProbabilityPath

__all__ = [
    "COUPLINGS",
    "BoxField",
    "FlowMatchingObjective",
    "InterpolantPath",
    "LinearGaussianPath",
    "MoserObjective",
    "MoserVelocity",
    "ProbabilityPath",
    "couple",
    "field_and_divergence",
    "ot_permutation",
    "squared_distances",
]
