"""Continuous normalizing flows: `CNF` (a jgen bijector solving an ODE with diffrax), vector
fields h(z, t[, context]) and trace estimators for the instantaneous change of variables."""

from jgen.cnf.cnf import (
    CNF,
    REGULARIZERS,
    REGULARIZERS_NAME,
    STATS_NAME,
    collect_nfe,
    collect_regularizers,
    summarize_stats,
)
from jgen.cnf.trace import ExactTrace, Hutchinson, HutchPlusPlus, TraceEstimator, sample_probes
from jgen.cnf.vector_fields import ConcatSquashDense, ConcatSquashField, MLPField

__all__ = [
    "CNF",
    "REGULARIZERS",
    "REGULARIZERS_NAME",
    "STATS_NAME",
    "ConcatSquashDense",
    "ConcatSquashField",
    "ExactTrace",
    "HutchPlusPlus",
    "Hutchinson",
    "MLPField",
    "TraceEstimator",
    "collect_nfe",
    "collect_regularizers",
    "sample_probes",
    "summarize_stats",
]
