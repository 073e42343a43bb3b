"""Variational inference with flows (section 2.2 of the notes): Rezende & Mohamed's 2-D
energies fitted by reverse KL, and estimators of ∇_φ E_{q_φ}[f(z)] (reparametrisation and
REINFORCE, with and without a baseline)."""

from jgen.vi.gradients import (
    reinforce_gradient,
    reinforce_leave_one_out_gradient,
    reparam_gradient,
)
from jgen.vi.objective import ReverseKL
from jgen.vi.potentials import POTENTIALS, log_normalizer, target_energy

__all__ = [
    "POTENTIALS",
    "ReverseKL",
    "log_normalizer",
    "reinforce_gradient",
    "reinforce_leave_one_out_gradient",
    "reparam_gradient",
    "target_energy",
]
