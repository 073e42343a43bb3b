"""Block neural autoregressive flow (B-NAF, De Cao et al. 2019).

One network g: R^D → R^D is the whole transformation, monotone in x_d and autoregressive
(g_d depends on x_≤d only). Every coordinate owns a block of ``block_dim`` hidden units in each of
``depth`` hidden layers; a layer is h' = W h + b with W block lower-triangular:

    W = diag(exp(log_g)) · W̃ / ‖W̃_row‖,   W̃[block d, block e] = exp(V_de)  if e = d,
                                                                 V_de       if e < d,
                                                                 0          if e > d,

(row-wise weight normalisation; the diagonal blocks are positive, so each h'_d increases in
x_d). Between layers the activation is f(h) = tanh(h) + α·h (α = ``slope`` > 0): increasing and,
unlike a plain tanh, onto R, so that g is a bijection of R^D. The Jacobian of g is lower
triangular and its diagonal entries ∂g_d/∂x_d are products of the diagonal blocks and of the
activation slopes, accumulated in log space (a log-sum-exp matrix product per coordinate):

    log ∂g_d/∂x_d = LSE-chain(log W_L[d,d], log f'(h_{L−1,d}), ..., log W_1[d,d]),
    log|det ∂g/∂x| = Σ_d log ∂g_d/∂x_d,    log f'(h) = log(1 − tanh²h + α).

A context (optional) shifts the first layer's bias through a Dense layer (it leaves the
Jacobian in x unchanged).

Direction: g is the density direction (data → noise), as in MAF, so jgen's inverse is one pass
of g and the forward (sampling) solves g(v) = x. It is solved coordinate by coordinate: for
d = 1..D, with v_<d already exact, v_d is bracketed (the bracket [−1, 1] doubled until it holds
the root, g_d being increasing and onto) and bisected. The result then takes one Newton step
v ← v − J⁻¹ (g(v) − x) with the exact triangular Jacobian J (held constant): at the solution
this changes v by rounding only, and it makes v differentiable in x (∂v/∂x = J⁻¹) and in the
parameters (−J⁻¹ ∂g/∂θ) by the implicit function theorem, while the loops themselves see no
derivatives (reverse-mode friendly).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.autoregressive import autoregressive_stack
from jgen.bijectors.base import Bijector, Chain
from jgen.typing import Array
from jgen.validation import check_int, check_number, check_trailing_shape

__all__ = [
    "BlockNeuralAutoregressive",
    "block_autoregressive_network",
    "block_neural_autoregressive_flow",
    "solve_block_autoregressive_network",
]

# Bracket doublings (2^80 covers any finite float32 root from [-1, 1]) and bisection steps.
_MAX_DOUBLINGS = 80
_BISECTIONS = {4: 40, 8: 64}  # by itemsize: float32, float64

# One layer: the weight matrix (D·out, D·in), the log of its diagonal blocks (D, out, in), the
# bias (D·out,).
Layer = tuple[Array, Array, Array]


def _block_masks(dim: int, out: int, inp: int) -> tuple[np.ndarray, np.ndarray]:
    """(diagonal-block mask, strictly-lower-block mask) of a (dim·out, dim·inp) matrix whose
    row d·out + k and column e·inp + j belong to coordinates d and e."""
    rows = np.repeat(np.arange(dim), out)[:, None]
    cols = np.repeat(np.arange(dim), inp)[None, :]
    return rows == cols, rows > cols


def block_autoregressive_network(
    layers: Sequence[Layer], x: Array, shift: Array | None, slope: float
) -> tuple[Array, Array]:
    """g(x) and log|det ∂g/∂x| (summed over the last axis) of the block network (module
    docstring) with the given layers; ``shift`` (…, D·block_dim) is added to the first layer's
    pre-activations (the context's contribution) or None."""
    h, log_grad = x, None  # log_grad[..., d, k] = log ∂h_{d,k}/∂x_d
    for index, (weight, log_diag, bias) in enumerate(layers):
        h = h @ weight.T.astype(h.dtype) + bias.astype(h.dtype)
        if index == 0 and shift is not None:
            h = h + shift
        log_diag = log_diag.astype(h.dtype)
        if log_grad is None:
            log_grad = jnp.broadcast_to(log_diag[..., 0], (*h.shape[:-1], *log_diag.shape[:2]))
        else:
            log_grad = jax.nn.logsumexp(log_diag + log_grad[..., None, :], axis=-1)
        if index < len(layers) - 1:
            t = jnp.tanh(h)
            log_grad = log_grad + jnp.log1p(slope - t * t).reshape(log_grad.shape)
            h = t + slope * h
    return h, jnp.sum(log_grad[..., 0], axis=-1)


def _bisect_roots(g, x: Array) -> Array:
    """The v with g(v) = x for an autoregressive g increasing and onto in each coordinate,
    coordinate by coordinate (module docstring); no derivatives flow through it."""
    iterations = _BISECTIONS.get(jnp.dtype(x.dtype).itemsize, 64)

    def solve_coordinate(d, v):
        target = x[..., d]

        def g_d(t):
            return g(v.at[..., d].set(t))[..., d]

        def outside(lo, hi):
            return (g_d(lo) > target) | (g_d(hi) < target)

        def widen(state):
            lo, hi, k = state
            lo = jnp.where(g_d(lo) > target, 2 * lo, lo)
            hi = jnp.where(g_d(hi) < target, 2 * hi, hi)
            return lo, hi, k + 1

        ones = jnp.ones_like(target)
        lo, hi, _ = jax.lax.while_loop(
            lambda s: (s[2] < _MAX_DOUBLINGS) & jnp.any(outside(s[0], s[1])),
            widen,
            (-ones, ones, 0),
        )

        def halve(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            above = g_d(mid) > target
            return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

        lo, hi = jax.lax.fori_loop(0, iterations, halve, (lo, hi))
        return v.at[..., d].set(0.5 * (lo + hi))

    return jax.lax.fori_loop(0, x.shape[-1], solve_coordinate, jnp.zeros_like(x))


@functools.partial(jax.jit, static_argnames="slope")
def solve_block_autoregressive_network(
    layers: Sequence[Layer], x: Array, shift: Array | None, slope: float
) -> tuple[Array, Array]:
    """The v with g(v) = x for the block network g of ``layers`` (`block_autoregressive_network`),
    and −log|det ∂g/∂v|(v) = log|det ∂v/∂x|: bisection, then one Newton step with the exact
    (constant) triangular Jacobian, which refines the root and carries the implicit derivatives
    (module docstring). Jitted, so that eager calls reuse one compiled program."""
    if shift is not None:
        shift = jnp.broadcast_to(shift.astype(x.dtype), (*x.shape[:-1], shift.shape[-1]))

    def g(v, layers, shift):
        return block_autoregressive_network(layers, v, shift, slope)[0]

    frozen_layers, frozen_shift, frozen_x = jax.lax.stop_gradient((layers, shift, x))
    root = jax.lax.stop_gradient(
        _bisect_roots(lambda v: g(v, frozen_layers, frozen_shift), frozen_x)
    )
    dim = x.shape[-1]
    flat_shift = None if shift is None else frozen_shift.reshape(-1, shift.shape[-1])
    jacobian = jax.vmap(
        jax.jacfwd(lambda v, s: g(v, frozen_layers, s)), in_axes=(0, None if shift is None else 0)
    )(root.reshape(-1, dim), flat_shift).reshape(*x.shape, dim)
    step = jax.lax.linalg.triangular_solve(
        jacobian, (g(root, layers, shift) - x)[..., None], left_side=True, lower=True
    )[..., 0]
    v = root - step
    return v, -block_autoregressive_network(layers, v, shift, slope)[1]


class BlockNeuralAutoregressive(Bijector):
    """B-NAF layer on vectors of size ``event_dim`` (module docstring): the inverse (density)
    is one pass of the block network, the forward (sampling) a bisection per coordinate.

    block_dim:   hidden units per coordinate in each hidden layer.
    depth:       hidden layers (≥ 1); the network has depth + 1 linear maps.
    slope:       α of the activation tanh(h) + α·h (> 0: the map is onto R^D).
    context_dim: if set, a context of that size is required; None uses a context whenever one
                 is given.
    param_dtype: parameter dtype; None is JAX's default float type.
    """

    event_dim: int
    block_dim: int = 8
    depth: int = 1
    slope: float = 0.01
    context_dim: int | None = None
    param_dtype: Any = None

    event_ndims = 1

    def __post_init__(self):
        owner = type(self).__name__
        check_int(self.event_dim, "event_dim", minimum=1, owner=owner)
        check_int(self.block_dim, "block_dim", minimum=1, owner=owner)
        check_int(self.depth, "depth", minimum=1, owner=owner)
        check_number(self.slope, "slope", owner=owner)
        if self.context_dim is not None:
            check_int(self.context_dim, "context_dim", minimum=1, owner=owner)
        super().__post_init__()

    def _widths(self) -> list[int]:
        return [1, *([self.block_dim] * self.depth), 1]

    def setup(self):
        dtype = self.param_dtype or jax.dtypes.canonicalize_dtype(float)
        dim, widths = self.event_dim, self._widths()
        raw = []
        for i, (inp, out) in enumerate(itertools.pairwise(widths)):
            # Glorot-like: std 1/√(fan-in of the allowed blocks); log_g = 0 (unit rows).
            std = 1.0 / np.sqrt(inp * (dim + 1) / 2)
            raw.append((
                self.param(f"v{i}", nn.initializers.normal(std), (dim * out, dim * inp), dtype),
                self.param(f"log_g{i}", nn.initializers.zeros_init(), (dim * out,), dtype),
                self.param(f"b{i}", nn.initializers.zeros_init(), (dim * out,), dtype),
            ))  # fmt: skip
        self.raw = raw
        self.context_net = nn.Dense(dim * widths[1], param_dtype=dtype)  # used with a context

    def _network(self, context: Array | None) -> tuple[list[Layer], Array | None]:
        """The layers' (weight, log diagonal blocks, bias) and the context's first-layer
        shift (None without a context)."""
        dim, widths = self.event_dim, self._widths()
        layers = []
        for (v, log_g, bias), (inp, out) in zip(self.raw, itertools.pairwise(widths), strict=True):
            diag, lower = _block_masks(dim, out, inp)
            unnormalised = jnp.where(diag, jnp.exp(jnp.where(diag, v, 0)), jnp.where(lower, v, 0))
            log_scale = log_g - 0.5 * jnp.log(jnp.sum(unnormalised**2, axis=1))
            weight = unnormalised * jnp.exp(log_scale)[:, None]
            log_w = (v + log_scale[:, None]).reshape(dim, out, dim, inp)
            log_diag = log_w[np.arange(dim), :, np.arange(dim), :]  # (D, out, in)
            layers.append((weight, log_diag, bias))
        return layers, None if context is None else self.context_net(context)

    def _check(self, v: Array, context: Array | None) -> None:
        owner = type(self).__name__
        check_trailing_shape(v, f"{owner} input", (self.event_dim,))
        if context is None and self.context_dim is not None:
            raise ValueError(f"{owner}: context_dim={self.context_dim} but no context was given")
        if context is not None and self.context_dim is not None:
            check_trailing_shape(context, f"{owner} context", (self.context_dim,))

    def inverse_and_log_det(self, y, context=None):
        self._check(y, context)
        layers, shift = self._network(context)
        if shift is not None:
            shift = shift.astype(y.dtype)
        return block_autoregressive_network(layers, y, shift, self.slope)

    def forward_and_log_det(self, x, context=None):
        self._check(x, context)
        layers, shift = self._network(context)
        return solve_block_autoregressive_network(layers, x, shift, self.slope)


def block_neural_autoregressive_flow(
    event_dim: int, *, num_layers: int = 1, reverse_between: bool = True, **layer_options: Any
) -> Chain:
    """``num_layers`` B-NAF layers on vectors of size ``event_dim`` with `Reverse` between
    consecutive layers; ``layer_options`` go to every layer (block_dim, depth, slope,
    context_dim, param_dtype)."""
    return autoregressive_stack(
        "block_neural_autoregressive_flow",
        lambda: BlockNeuralAutoregressive(event_dim, **layer_options),
        num_layers,
        reverse_between,
    )
