"""Random probe vectors for stochastic trace and log-det estimators.

Hutchinson's estimator tr(A) ≈ vᵀ A v needs probes with E[v] = 0 and E[v vᵀ] = I. The CNF's
trace estimators (`jgen.cnf.trace`) and the residual blocks' log-det estimators
(`jgen.bijectors.residual`) draw them here, so that neither imports the other.
"""

from __future__ import annotations

import jax

from jgen.typing import Array, PRNGKey

__all__ = ["PROBE_DISTRIBUTIONS", "sample_probes"]

PROBE_DISTRIBUTIONS = ("rademacher", "gaussian")


def sample_probes(key: PRNGKey, shape: tuple[int, ...], dtype, distribution: str) -> Array:
    """Random vectors with E[ε] = 0 and E[ε ε^T] = I: Rademacher (±1) or standard Gaussian."""
    if distribution == "rademacher":
        return jax.random.rademacher(key, shape, dtype)
    if distribution == "gaussian":
        return jax.random.normal(key, shape, dtype)
    raise ValueError(f"distribution must be one of {PROBE_DISTRIBUTIONS}, got {distribution!r}")
