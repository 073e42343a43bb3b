"""Gradients against central finite differences, for the float64 gradient checks.

`gradient_error(fn, tree)` compares every component of ``jax.grad(fn)`` with central
differences (small trees).

`directional_errors(fn, tree, groups, key)` compares the autodiff derivative of the scalar
``fn(tree)`` along random unit directions with central differences of ``fn`` itself, for each
group of the dict ``tree`` (e.g. the parameters, and the inputs): a directional check catches
any wrong gradient entry (the error's inner product with a random direction is non-zero almost
surely), and its cost does not grow with the number of parameters. One function is compiled
per check: ``jax.value_and_grad`` of ``fn`` (reverse mode: what training uses), or ``jax.jvp``
for code that only supports forward mode (diffrax's ``ForwardMode`` adjoint); the perturbed
values for the differences come from calling that same compiled function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def gradient_error(fn, tree, *, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(autodiff gradient, central-difference gradient) of the scalar ``fn(tree)``, flattened,
    every component (for small trees). The gradient is one jitted ``grad``; the 2P perturbed
    values are one jitted ``vmap`` of ``fn`` over the perturbations."""
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


def _directions(tree: dict, groups: Sequence[Sequence[str]], key, per_group: int):
    """Unit directions in the flattened ``tree``, ``per_group`` of them inside each group."""
    rows = []
    for g, names in enumerate(groups):
        mask, _ = ravel_pytree(
            {k: jax.tree_util.tree_map(lambda v, on=k in names: jnp.full_like(v, on), v)
             for k, v in tree.items()}
        )  # fmt: skip
        if not np.any(mask):
            continue
        noise = jax.random.normal(jax.random.fold_in(key, g), (per_group, mask.size), mask.dtype)
        noise = noise * mask
        rows.append(noise / jnp.linalg.norm(noise, axis=1, keepdims=True))
    return jnp.concatenate(rows)


def directional_errors(
    fn: Callable[[dict], jax.Array],
    tree: dict,
    groups: Sequence[Sequence[str]],
    key,
    *,
    per_group: int = 3,
    eps: float = 1e-6,
    reverse: bool = True,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(autodiff, central-difference) derivatives of ``fn`` along random unit directions, and
    the gradient's scale (for tolerances). ``groups`` lists key sets of ``tree``; each gets
    ``per_group`` directions. Runs in float64 only."""
    flat, unravel = ravel_pytree(tree)
    assert flat.dtype == jnp.float64, "finite-difference checks run in float64"
    flat_fn = lambda v: fn(unravel(v))
    directions = _directions(tree, groups, key, per_group)
    if reverse:
        value_and_grad = jax.jit(jax.value_and_grad(flat_fn))
        _, grad = value_and_grad(flat)
        autodiff = directions @ grad
        value = lambda v: value_and_grad(v)[0]
        scale = float(jnp.linalg.norm(grad))
    else:
        jvp = jax.jit(lambda v, d: jax.jvp(flat_fn, (v,), (d,)))
        autodiff = jnp.stack([jvp(flat, d)[1] for d in directions])
        value = lambda v: jvp(v, directions[0])[0]
        scale = float(jnp.max(jnp.abs(autodiff)))
    differences = jnp.stack(
        [(value(flat + eps * d) - value(flat - eps * d)) / (2 * eps) for d in directions]
    )
    return np.asarray(autodiff), np.asarray(differences), scale
