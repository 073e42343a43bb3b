"""Bounds on log p(x): Gaussian KL and entropy, and the importance-weighted bound IWAE-k.

For a proposal q(z|x) and importance weights w = p(x, z)/q(z|x), z ~ q (Burda et al. 2016):

    IWAE_k(x) = E[ log (1/k) Σ_{j=1..k} w_j ] ,   ELBO = IWAE_1 ≤ IWAE_k ≤ IWAE_{k+1} ≤ log p(x)

and IWAE_k → log p(x) as k → ∞; IWAE-k with large k is the usual estimate of a VAE's test
log-likelihood. `importance_weighted_bound` computes it in chunks of ``chunk_size`` samples with a
running log-sum-exp, so memory is O(chunk_size × batch) whatever k is (k = 5000 on MNIST). The
noise of sample j is drawn from fold_in(key, j), so the value does not depend on the chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.typing import Array, PRNGKey
from jgen.validation import check_int

__all__ = [
    "diagonal_normal_entropy",
    "diagonal_normal_kl",
    "importance_weighted_bound",
    "importance_weighted_bounds",
    "sample_keys",
    "standard_normal_log_prob",
]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def standard_normal_log_prob(z: Array) -> Array:
    """log N(z; 0, I), summed over the last axis."""
    return jnp.sum(-0.5 * z**2 - HALF_LOG_2PI, axis=-1)


def diagonal_normal_kl(mean: Array, log_scale: Array) -> Array:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_i (μ_i² + σ_i² − 1 − 2 log σ_i), over the last axis."""
    return 0.5 * jnp.sum(mean**2 + jnp.exp(2 * log_scale) - 1.0 - 2 * log_scale, axis=-1)


def diagonal_normal_entropy(log_scale: Array) -> Array:
    """H[N(μ, diag σ²)] = Σ_i (log σ_i + ½ log 2πe), over the last axis."""
    return jnp.sum(log_scale + HALF_LOG_2PI + 0.5, axis=-1)


def sample_keys(key: PRNGKey, start: int, count: int) -> Array:
    """The keys fold_in(key, j) of samples j = start, ..., start + count − 1."""
    return jax.vmap(lambda j: jax.random.fold_in(key, j))(start + jnp.arange(count))


def importance_weighted_bound(
    log_weights: Callable[[Array], Array],
    key: PRNGKey,
    num_samples: int,
    *,
    chunk_size: int = 100,
) -> Array:
    """IWAE_k = log (1/k) Σ_j w_j, per example, from ``log_weights(keys) -> (len(keys), B)``.

    ``log_weights`` maps a batch of per-sample keys to the log-weights log p(x, z_j) −
    log q(z_j|x) of those samples (one row per key). The k samples are taken ``chunk_size`` at a
    time (a `lax.scan`, so the chunk is compiled once); the log-sum-exp is accumulated, so no
    (k, B) array is ever formed. Sample j always uses fold_in(key, j): any chunk size gives the
    same value up to rounding.
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1, owner="IWAE")
    return importance_weighted_bounds(log_weights, key, (num_samples,), chunk_size=chunk_size)[
        num_samples
    ]


def importance_weighted_bounds(
    log_weights: Callable[[Array], Array],
    key: PRNGKey,
    ks,
    *,
    chunk_size: int = 100,
) -> dict[int, Array]:
    """IWAE_k for every k of ``ks`` from one pass over max(ks) samples: IWAE_k uses samples
    0..k−1 (fold_in(key, j)), so each bound is a prefix of the same running log-sum-exp (the
    values equal separate `importance_weighted_bound` calls up to rounding)."""
    ks = sorted({check_int(k, "every k", minimum=1, owner="IWAE") for k in ks})
    if not ks:
        raise ValueError("IWAE: expected at least one k, got none")
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1, owner="IWAE")
    bounds, total, done = {}, None, 0
    for k in ks:
        part = _logsumexp_of_samples(log_weights, key, done, k - done, chunk_size)
        total = part if total is None else jnp.logaddexp(total, part)
        bounds[k], done = total - math.log(k), k
    return bounds


def _logsumexp_of_samples(log_weights, key, start: int, count: int, chunk_size: int) -> Array:
    """log Σ_{j=start}^{start+count−1} w_j, ``chunk_size`` samples at a time (a scan)."""
    chunk = min(chunk_size, count)
    num_full, rest = divmod(count, chunk)

    def chunk_logsumexp(first, size: int) -> Array:
        return jax.nn.logsumexp(log_weights(sample_keys(key, first, size)), axis=0)

    total = chunk_logsumexp(start, chunk)
    if num_full > 1:

        def body(acc, i):
            return jnp.logaddexp(acc, chunk_logsumexp(start + i * chunk, chunk)), None

        total, _ = jax.lax.scan(body, total, jnp.arange(1, num_full))
    if rest:
        total = jnp.logaddexp(total, chunk_logsumexp(start + num_full * chunk, rest))
    return total
