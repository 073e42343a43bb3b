"""Central finite differences against autodiff, for the float64 gradient checks.

`gradient_error(fn, tree)` compares ``jax.grad(fn)`` at ``tree`` (any pytree of float64
arrays: parameters, inputs, context) with central differences of ``fn`` itself. Both are
compiled once: the gradient is one jitted ``value_and_grad``, the 2P perturbed values are one
jitted ``vmap`` of ``fn`` over the perturbations (``fn`` is a pure function of ``tree``, so
vmapping it over perturbed copies gives exactly the values of P separate calls).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def gradient_error(fn, tree, *, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(autodiff gradient, central-difference gradient) of the scalar ``fn(tree)``, flattened."""
    flat, unravel = ravel_pytree(tree)
    assert flat.dtype == jnp.float64, "finite-difference checks run in float64"
    flat_fn = lambda v: fn(unravel(v))
    grad = jax.jit(jax.grad(flat_fn))(flat)
    steps = eps * jnp.eye(flat.size, dtype=flat.dtype)
    values = jax.jit(jax.vmap(flat_fn))(jnp.concatenate([flat + steps, flat - steps]))
    plus, minus = values[: flat.size], values[flat.size :]
    return np.asarray(grad), np.asarray((plus - minus) / (2 * eps))


def random_projection(key, outputs) -> jax.Array:
    """Σ w · leaf over the leaves of ``outputs`` with fixed N(0, 1) weights: one scalar whose
    gradient checks the gradients of every output element (a wrong one cannot cancel out)."""
    leaves = jax.tree_util.tree_leaves(outputs)
    keys = jax.random.split(key, len(leaves))
    return sum(
        jnp.sum(jax.random.normal(k, leaf.shape, leaf.dtype) * leaf)
        for k, leaf in zip(keys, leaves, strict=True)
    )
