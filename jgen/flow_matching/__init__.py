"""Simulation-free training of continuous normalizing flows: conditional flow matching
(independent, exact and entropic optimal-transport and Schrödinger-bridge couplings, on the
device) and Moser flow."""

from jgen.flow_matching.coupling import (
    COUPLINGS,
    Coupling,
    ExactOT,
    HostExactOT,
    Independent,
    SchrodingerBridge,
    Sinkhorn,
    couple,
    hungarian_permutation,
    make_coupling,
    ot_permutation,
    pairwise_sq_distances,
    sinkhorn_log_plan,
    squared_distances,
)
from jgen.flow_matching.moser import BoxField, MoserObjective, MoserVelocity, field_and_divergence
from jgen.flow_matching.objective import FlowMatchingObjective
from jgen.flow_matching.paths import (
    AffinePath,
    BrownianBridgePath,
    CosinePath,
    InterpolantPath,
    LinearGaussianPath,
    ProbabilityPath,
    VariancePreservingPath,
)

__all__ = [
    "COUPLINGS",
    "AffinePath",
    "BoxField",
    "BrownianBridgePath",
    "CosinePath",
    "Coupling",
    "ExactOT",
    "FlowMatchingObjective",
    "HostExactOT",
    "Independent",
    "InterpolantPath",
    "LinearGaussianPath",
    "MoserObjective",
    "MoserVelocity",
    "ProbabilityPath",
    "SchrodingerBridge",
    "Sinkhorn",
    "VariancePreservingPath",
    "couple",
    "field_and_divergence",
    "hungarian_permutation",
    "make_coupling",
    "ot_permutation",
    "pairwise_sq_distances",
    "sinkhorn_log_plan",
    "squared_distances",
]
