"""Shared type aliases (jaxtyping), used in signatures across jgen."""

from typing import Any, TypeAlias

import jax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

PRNGKey: TypeAlias = PRNGKeyArray
Params: TypeAlias = PyTree
ModelState: TypeAlias = dict[str, Any]
Metrics: TypeAlias = dict[str, Any]
Batch: TypeAlias = Any

__all__ = [
    "Array",
    "Batch",
    "Float",
    "Int",
    "Metrics",
    "ModelState",
    "PRNGKey",
    "Params",
    "PyTree",
    "jax",
]
