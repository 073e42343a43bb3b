"""Continuous normalizing flows: `CNF` (a jgen bijector solving an ODE with diffrax), vector
fields h(z, t[, context]) and trace estimators for the instantaneous change of variables."""

from jgen.cnf.cnf import (
    CNF,
    REGULARIZERS,
    collect_nfe,
    collect_regularizers,
    collect_stat,
    summarize_stats,
)
from jgen.cnf.multiscale import multiscale_cnf
from jgen.cnf.strategies import (
    ADJOINTS,
    FIELDS,
    SOLVERS,
    make_cnf,
    make_field,
)
from jgen.cnf.trace import ExactTrace, Hutchinson, HutchPlusPlus, TraceEstimator, sample_probes
from jgen.cnf.unet import UNetField, sinusoidal_embedding
from jgen.cnf.vector_fields import ConcatSquashDense, ConcatSquashField, FlattenedField, MLPField

__all__ = [
    "ADJOINTS",
    "CNF",
    "FIELDS",
    "REGULARIZERS",
    "SOLVERS",
    "ConcatSquashDense",
    "ConcatSquashField",
    "ExactTrace",
    "FlattenedField",
    "HutchPlusPlus",
    "Hutchinson",
    "MLPField",
    "TraceEstimator",
    "UNetField",
    "collect_nfe",
    "collect_regularizers",
    "collect_stat",
    "make_cnf",
    "make_field",
    "multiscale_cnf",
    "sample_probes",
    "sinusoidal_embedding",
    "summarize_stats",
]
