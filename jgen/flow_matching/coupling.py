"""Couplings of noise and data in a flow-matching batch.

``'independent'``: the pairs (x0_i, x1_i) as drawn, i.e. q(x0, x1) = q0(x0) q1(x1) (I-CFM).

``'ot'``: mini-batch optimal transport (Tong et al. 2023, OT-CFM; Pooladian et al. 2023). For a
batch of n noise and n data points with uniform weights, the exact optimal plan for the squared
Euclidean cost is a permutation (Birkhoff–von Neumann: the assignment polytope's vertices are
permutation matrices), found by the Hungarian / Jonker–Volgenant algorithm:

    σ* = argmin_σ Σ_j ||x0_σ(j) − x1_j||²,

and x0 is re-ordered so that x0_σ*(j) is paired with x1_j. The assignment runs on the host in
``scipy.optimize.linear_sum_assignment`` (O(n³)), called from jitted code through
``jax.pure_callback``; it is a constant for autodiff (a permutation has no useful gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from jgen.typing import Array

__all__ = ["COUPLINGS", "couple", "ot_permutation", "squared_distances"]

COUPLINGS = ("independent", "ot")


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C_ij = ||a_i − b_j||² for flat rows a (n, D), b (m, D), in float64."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return np.sum(np.square(a[:, None, :] - b[None, :, :]), axis=-1)


def _host_permutation(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    cost = squared_distances(x0, x1)
    rows, cols = linear_sum_assignment(cost)
    # x0[rows[k]] is matched with x1[cols[k]]; permutation[j] is the x0 index matched with x1[j].
    permutation = np.empty(len(cols), np.int32)
    permutation[cols] = rows
    return permutation


def ot_permutation(x0: Array, x1: Array) -> Array:
    """The permutation σ (int32, shape (n,)) minimising Σ_j ||x0[σ(j)] − x1[j]||².

    x0, x1: (n, *event) each. Works eagerly and under jit (a host callback).
    """
    if x0.shape != x1.shape or x0.ndim < 1:
        raise ValueError(
            f"ot_permutation: x0 and x1 must have the same shape (n, *event), got "
            f"{tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    result = jax.ShapeDtypeStruct((x0.shape[0],), jnp.int32)
    x0, x1 = jax.lax.stop_gradient(x0), jax.lax.stop_gradient(x1)
    return jax.pure_callback(_host_permutation, result, x0, x1, vmap_method="sequential")


@jax.jit
def _ot_couple(x0: Array, x1: Array) -> Array:
    # Jitted even when called eagerly: the callback's result lives on one device, which eager
    # indexing of a sharded x0 cannot combine with.
    return x0[ot_permutation(x0, x1)]


def couple(kind: str, x0: Array, x1: Array) -> Array:
    """x0 re-ordered by the coupling ``kind`` ('independent' or 'ot') to pair with x1."""
    if kind == "independent":
        return x0
    if kind == "ot":
        return _ot_couple(x0, x1)
    raise ValueError(f"coupling must be one of {COUPLINGS}, got {kind!r}")
