"""Trace estimators for the instantaneous change of variables of a CNF.

A CNF needs tr(∂f/∂z) for f: R^D -> R^D (the vector field of one event at a fixed time). Every
estimator is a frozen dataclass with the same interface:

    probes = estimator.init_probes(key, shape, dtype)   # random vectors, fixed for one ODE solve
    f_z, trace = estimator(f, z, probes)                  # f(z) and an estimate of tr(∂f/∂z (z))

``shape`` is the shape of one event (D,). ``estimator.estimate(f, z, probes, frobenius=True)``
also returns an estimate of the squared Frobenius norm ||∂f/∂z||_F^2 from the same products (the
Jacobian regulariser of RNODE, Finlay et al. 2020): exact for ``ExactTrace`` (Σ_i ||A e_i||^2),
unbiased (mean of ||A ε||^2, E[ε ε^T] = I) for the stochastic ones. ``estimator.stochastic`` says
whether the estimate is random; deterministic estimators (``ExactTrace``) return ``None``
probes and ignore the key.
Matrix-vector products with the Jacobian A = ∂f/∂z(z) are Jacobian-vector products (forward
mode, from one ``jax.linearize``) or vector-Jacobian products (reverse mode, from one
``jax.vjp``); either costs about one extra evaluation of f per product and never forms A.

``ExactTrace``    tr A from all D products A e_i (forward mode): exact, D products.
``Hutchinson``    ε^T A ε averaged over probes ε with E[ε ε^T] = I: unbiased.
``HutchPlusPlus`` Hutch++ (Meyer et al. 2021): exact trace on a sketched top subspace plus
                  Hutchinson on the rest: unbiased, far lower variance when A's spectrum is
                  concentrated in a few directions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jgen.probes import PROBE_DISTRIBUTIONS as _DISTRIBUTIONS
from jgen.probes import sample_probes
from jgen.typing import Array, PRNGKey
from jgen.validation import check_choice, check_int

__all__ = ["ExactTrace", "HutchPlusPlus", "Hutchinson", "TraceEstimator", "sample_probes"]

_MODES = ("jvp", "vjp")
# Up to this D, ExactTrace pushes the D basis vectors through D plain JVPs instead of one vmapped
# JVP: vmap makes the network's matrix products batched ones, and differentiating the solve
# then cost ~1.4x more on a CPU (2-D FFJORD step, benchmarks/cnf_step.py). Measured at D = 2.
UNROLL_MAX_DIM = 2


def _matvec_fn(f: Callable[[Array], Array], z: Array, mode: str):
    """(f(z), v -> A v) with A = ∂f/∂z(z), or (f(z), v -> A^T v) in 'vjp' mode.

    Quadratic forms v^T A v are the same for A and A^T, so Hutchinson gives the same estimate
    in both modes; Hutch++ sketches A or A^T (unbiased either way).
    """
    if mode == "jvp":
        return jax.linearize(f, z)
    f_z, vjp = jax.vjp(f, z)
    return f_z, lambda v: vjp(v)[0]


def _check_event(owner: str, z: Array) -> None:
    if z.ndim != 1:
        raise ValueError(f"{owner} expects one flat event z of shape (D,), got {z.shape}")


class TraceEstimator:
    """Base class (interface) of the trace estimators; see the module docstring."""

    stochastic: ClassVar[bool] = True

    def init_probes(self, key: PRNGKey, shape: tuple[int, ...], dtype) -> Any:
        raise NotImplementedError

    def estimate(
        self, f: Callable[[Array], Array], z: Array, probes: Any, frobenius: bool = False
    ) -> tuple[Array, Array, Array | None]:
        """(f(z), trace estimate, squared-Frobenius estimate or None)."""
        raise NotImplementedError

    def __call__(self, f: Callable[[Array], Array], z: Array, probes: Any) -> tuple[Array, Array]:
        f_z, trace, _ = self.estimate(f, z, probes)
        return f_z, trace


@dataclasses.dataclass(frozen=True)
class ExactTrace(TraceEstimator):
    """tr A = Σ_i e_i^T A e_i from the D forward-mode products A e_i (no randomness).

    max_batch: how many basis vectors are pushed through one batched JVP. For D <= max_batch
    (the usual case for tabular data) this is the full forward-mode Jacobian in one pass (as
    ``jax.jacfwd``); larger D loops over chunks of ``max_batch`` basis vectors, so memory stays
    O(max_batch · activations) instead of O(D · activations). Either way it costs D products.
    For D <= ``UNROLL_MAX_DIM`` the D products are separate (unbatched) JVPs: the same
    arithmetic, faster to differentiate.
    """

    max_batch: int = 256
    stochastic: ClassVar[bool] = False

    def __post_init__(self):
        check_int(self.max_batch, "max_batch", minimum=1, owner="ExactTrace")

    def init_probes(self, key: PRNGKey, shape: tuple[int, ...], dtype) -> None:
        return None

    def estimate(self, f, z, probes=None, frobenius=False):
        _check_event("ExactTrace", z)
        f_z, matvec = _matvec_fn(f, z, "jvp")
        dim = z.shape[0]

        def column_stats(i):  # (A_ii, ||A e_i||^2) from the column A e_i
            column = matvec(jnp.zeros_like(z).at[i].set(1))
            return column[i], jnp.sum(column**2) if frobenius else jnp.zeros((), z.dtype)

        if dim <= UNROLL_MAX_DIM:
            stats = [column_stats(i) for i in range(dim)]
            diagonal, squares = jnp.stack([d for d, _ in stats]), jnp.stack([q for _, q in stats])
        elif dim <= self.max_batch:
            diagonal, squares = jax.vmap(column_stats)(jnp.arange(dim))
        else:
            diagonal, squares = jax.lax.map(
                column_stats, jnp.arange(dim), batch_size=self.max_batch
            )
        return f_z, jnp.sum(diagonal), jnp.sum(squares) if frobenius else None


@dataclasses.dataclass(frozen=True)
class Hutchinson(TraceEstimator):
    """Hutchinson's estimator: tr A ≈ (1/K) Σ_k ε_k^T A ε_k, with K = num_probes i.i.d. probes.

    Unbiased for any E[ε ε^T] = I. For symmetric S = (A + A^T)/2 (ε^T A ε = ε^T S ε) one probe
    has variance 2 ||S||_F^2 (Gaussian) or 2 Σ_{i≠j} S_ij^2 (Rademacher): Rademacher is never
    worse and is much better when the diagonal dominates, hence the default (FFJORD's default
    is Gaussian).

    distribution: 'rademacher' (default) or 'gaussian'.
    num_probes:   K, the number of Jacobian-vector products per evaluation.
    mode:         'jvp' (forward mode, default: no stored residuals) or 'vjp' (reverse mode,
                  ε^T A as in FFJORD); both give the same estimate for the same probes.
    """

    distribution: str = "rademacher"
    num_probes: int = 1
    mode: str = "jvp"

    def __post_init__(self):
        check_choice(self.distribution, "distribution", _DISTRIBUTIONS, owner="Hutchinson")
        check_int(self.num_probes, "num_probes", minimum=1, owner="Hutchinson")
        check_choice(self.mode, "mode", _MODES, owner="Hutchinson")

    def init_probes(self, key, shape, dtype) -> Array:
        return sample_probes(key, (self.num_probes, *shape), dtype, self.distribution)

    def estimate(self, f, z, probes, frobenius=False):
        _check_event("Hutchinson", z)
        f_z, matvec = _matvec_fn(f, z, self.mode)
        # One probe: a plain product. vmap over a probe axis of size 1 would turn the network's
        # matrix products into batched ones, ~1.5x slower to differentiate on a CPU.
        products = matvec(probes[0])[None] if len(probes) == 1 else jax.vmap(matvec)(probes)
        trace = jnp.mean(jnp.sum(probes * products, axis=-1))
        # E||A ε||^2 = E||A^T ε||^2 = ||A||_F^2, so either mode's products serve.
        frob = jnp.mean(jnp.sum(products**2, axis=-1)) if frobenius else None
        return f_z, trace, frob


@dataclasses.dataclass(frozen=True)
class HutchPlusPlus(TraceEstimator):
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021) with a budget of m = num_matvecs products.

    With k = m // 3 sketch vectors S (D×k) and m − 2k test vectors G (D×(m−2k)):

        Q = orth(A S)                                           k products
        tr A ≈ tr(Q^T A Q) + mean_j g_j'^T A g_j',  g' = (I − Q Q^T) g    k + (m − 2k) products

    Since tr A = tr(Q^T A Q) + tr((I − QQ^T) A (I − QQ^T)) for any orthonormal Q, and G is
    independent of S, the estimate is unbiased. The first term is exact on the range of A S,
    so only the remainder's (small, for a fast-decaying spectrum) Frobenius norm enters the
    variance. If k ≥ D the estimate is exact.

    Q is treated as a constant by autodiff (``stop_gradient``): the estimate is unbiased for
    every fixed Q, so its gradient stays an unbiased estimate of ∇ tr A, and no derivative of
    the QR decomposition (ill-conditioned when A S is nearly rank deficient) is needed.

    num_matvecs:  m >= 3, the number of Jacobian-vector products per evaluation.
    distribution: 'rademacher' (default) or 'gaussian', for S and G.
    mode:         'jvp' (default) or 'vjp'. In 'vjp' mode the sketch is of A^T (the products
                  are v^T A): the same estimate when A is symmetric, unbiased in either case.
    """

    num_matvecs: int = 6
    distribution: str = "rademacher"
    mode: str = "jvp"

    def __post_init__(self):
        check_int(self.num_matvecs, "num_matvecs", minimum=3, owner="HutchPlusPlus")
        check_choice(self.distribution, "distribution", _DISTRIBUTIONS, owner="HutchPlusPlus")
        check_choice(self.mode, "mode", _MODES, owner="HutchPlusPlus")

    @property
    def sketch_size(self) -> int:
        return self.num_matvecs // 3

    def init_probes(self, key, shape, dtype) -> dict[str, Array]:
        k = self.sketch_size
        key_s, key_g = jax.random.split(key)
        num_test = self.num_matvecs - 2 * k
        return {
            "sketch": sample_probes(key_s, (k, *shape), dtype, self.distribution),
            "test": sample_probes(key_g, (num_test, *shape), dtype, self.distribution),
        }

    def estimate(self, f, z, probes, frobenius=False):
        _check_event("HutchPlusPlus", z)
        f_z, matvec = _matvec_fn(f, z, self.mode)
        batched = jax.vmap(matvec)
        sketch, test = probes["sketch"], probes["test"]
        # Rows of a_sketch are A s_i; Q spans them (reduced QR: at most D columns).
        a_sketch = batched(sketch)
        q, _ = jnp.linalg.qr(jax.lax.stop_gradient(a_sketch).T)
        q = q.T  # (k', D), orthonormal rows
        deflated = test - (test @ q.T) @ q  # rows g' = (I - QQ^T) g
        # One batched call for A Q and A G': k' + (m - 2k) products.
        products = batched(jnp.concatenate([q, deflated], axis=0))
        a_q, a_deflated = products[: q.shape[0]], products[q.shape[0] :]
        top = jnp.sum(q * a_q)
        rest = jnp.mean(jnp.sum(deflated * a_deflated, axis=-1))
        # The sketch products A s use raw probes: an unbiased estimate of ||A||_F^2.
        frob = jnp.mean(jnp.sum(a_sketch**2, axis=-1)) if frobenius else None
        return f_z, top + rest, frob
