"""Invertible linear maps of the last axis, LU-parameterised (Glow, Kingma & Dhariwal 2018).

    W = P L (U + diag(s)),    y = W x + b,

with P a fixed permutation matrix, L unit lower-triangular, U strictly upper-triangular and
s = exp(log_s) > 0, so that log|det W| = Σ_i log_s_i costs O(d) and the inverse
x = (U + diag s)⁻¹ L⁻¹ Pᵀ (y - b) is two triangular solves (never a dense inverse).

Choices (documented differences from Glow):

* s is parameterised as exp(log_s), so there is no separate sign to store. W's determinant then
  has the fixed sign det(P), just as in Glow, where sign(s) is a constant.
* P is a module field (``permutation``, default identity) rather than a non-trainable variable
  drawn at init, so every variable is an ordinary trainable parameter. Nothing is lost at init:
  the initial matrix W0 (random orthogonal by default) is LU-factorised with partial pivoting,
  W0 = P0 L0 U0, and the module starts from P · S P0ᵀ W0 = P (S L0 S)(S U0) with
  S = diag(sign(diag U0)): a row permutation and sign flip of W0, hence still orthogonal when W0
  is, with |det| = |det W0|, |L| entries ≤ 1 and a positive diagonal s = |diag U0|.

`LULinear(dim)` mixes vector events (``event_ndims=1``); `Conv1x1(channels)` is the invertible
1×1 convolution of NHWC images (``event_ndims=3``): the same matrix at every pixel, so its
log-det is H·W·Σ log_s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from jgen.bijectors.base import Bijector
from jgen.bijectors.permutations import check_permutation
from jgen.typing import Array
from jgen.validation import check_int

__all__ = ["Conv1x1", "LULinear", "random_orthogonal"]

Initializer = Callable[..., Array]


def random_orthogonal(key: Array, shape: tuple[int, int], dtype=None) -> Array:
    """A random orthogonal matrix: Q of the QR decomposition of a standard Gaussian matrix.

    The columns of Q are sign-corrected by sign(diag R), which makes Q Haar-distributed.
    """
    dtype = jax.dtypes.canonicalize_dtype(float) if dtype is None else dtype
    q, r = jnp.linalg.qr(jax.random.normal(key, shape, dtype))
    return q * jnp.sign(jnp.diagonal(r))[None, :]


def lu_parameters(w0: Array) -> dict[str, Array]:
    """The LU parameters (``lower``, ``upper``, ``log_diag``) of the row-permuted, sign-flipped
    version S P0ᵀ W0 of an invertible matrix W0 (see the module docstring)."""
    _, lower, upper = jax.scipy.linalg.lu(w0)
    sign = jnp.sign(jnp.diagonal(upper))
    lower = sign[:, None] * lower * sign[None, :]
    upper = sign[:, None] * upper
    return {
        "lower": jnp.tril(lower, -1),
        "upper": jnp.triu(upper, 1),
        "log_diag": jnp.log(jnp.abs(jnp.diagonal(upper))),
    }


class _LUMixing(Bijector):
    """Shared implementation: an LU-parameterised matrix applied to the last axis at every
    position of the event; log-det = (number of positions) · Σ log_s."""

    def _size(self) -> int:
        raise NotImplementedError

    def _validate(self, owner: str, size, event_ndims) -> None:
        check_int(size, "the size", minimum=1, owner=owner)
        check_int(event_ndims, "event_ndims", minimum=1, owner=owner)
        perm = (
            None if self.permutation is None else check_permutation(self.permutation, owner, size)
        )
        object.__setattr__(self, "permutation", perm)

    def setup(self):
        d = self._size()
        dtype = jax.dtypes.canonicalize_dtype(float)
        self.lu = self.param("lu", lambda key: lu_parameters(self.weight_init(key, (d, d), dtype)))
        self.bias = (
            self.param("bias", lambda key: jnp.zeros((d,), dtype)) if self.use_bias else None
        )

    # The three factors ------------------------------------------------------------------------
    def _lower(self) -> Array:
        d = self._size()
        return jnp.tril(self.lu["lower"], -1) + jnp.eye(d, dtype=self.lu["lower"].dtype)

    def _upper(self) -> Array:
        return jnp.triu(self.lu["upper"], 1) + jnp.diag(jnp.exp(self.lu["log_diag"]))

    def weight(self) -> Array:
        """The assembled matrix W = P L (U + diag s) (for inspection and tests)."""
        w = self._lower() @ self._upper()
        if self.permutation is not None:
            w = w[np.asarray(self.permutation)]
        return w

    def _check_input(self, x: Array) -> None:
        if x.ndim < self.event_ndims or x.shape[-1] != self._size():
            raise ValueError(
                f"{type(self).__name__}: expected inputs with {self.event_ndims} event axes and "
                f"a last axis of size {self._size()}, got shape {x.shape}"
            )

    def _log_det(self, x: Array) -> Array:
        event_shape = x.shape[x.ndim - self.event_ndims :]
        positions = math.prod(event_shape[:-1])
        per_event = positions * jnp.sum(self.lu["log_diag"])
        return jnp.broadcast_to(per_event, x.shape[: x.ndim - self.event_ndims]).astype(x.dtype)

    def forward_and_log_det(self, x, context=None):
        self._check_input(x)
        y = x @ self.weight().T
        if self.bias is not None:
            y = y + self.bias
        return y, self._log_det(x)

    def inverse_and_log_det(self, y, context=None):
        self._check_input(y)
        d = self._size()
        v = y - self.bias if self.bias is not None else y
        if self.permutation is not None:  # Pᵀ v: undo the row gather of W = P (...)
            v = v[..., np.argsort(np.asarray(self.permutation))]
        columns = v.reshape(-1, d).T
        z = solve_triangular(self._lower(), columns, lower=True, unit_diagonal=True)
        x = solve_triangular(self._upper(), z, lower=False)
        return x.T.reshape(y.shape), -self._log_det(y)


class LULinear(_LUMixing):
    """Invertible dense map of vector events, y = W x + b with W = P L (U + diag s).

    log|det ∂y/∂x| = Σ_i log s_i (see the module docstring for the parameterisation).

    dim:         size of the last axis.
    use_bias:    learn b (zeros at init); otherwise b = 0.
    permutation: the fixed P as a gather, (P v)_i = v[permutation[i]]; None is the identity.
    weight_init: initialiser of the starting matrix W0 (random orthogonal by default); the
                 module starts from a row permutation and sign flip of W0.
    event_ndims: 1 for vectors; larger values mix the last axis at every position of the event
                 and multiply the log-det by the number of positions.
    """

    dim: int
    use_bias: bool = True
    permutation: Sequence[int] | None = None
    weight_init: Initializer = random_orthogonal
    event_ndims: int = 1

    def __post_init__(self):
        self._validate("LULinear", self.dim, self.event_ndims)
        super().__post_init__()

    def _size(self) -> int:
        return self.dim


class Conv1x1(_LUMixing):
    """Invertible 1×1 convolution of NHWC images (Glow): y[h, w] = W x[h, w] + b at each pixel.

    The event is (H, W, C) (``event_ndims=3``); W = P L (U + diag s) is C×C, so
    log|det ∂y/∂x| = H · W · Σ_c log s_c. Fields as in `LULinear`, with ``channels`` = C.
    """

    channels: int
    use_bias: bool = True
    permutation: Sequence[int] | None = None
    weight_init: Initializer = random_orthogonal
    event_ndims: int = 3

    def __post_init__(self):
        self._validate("Conv1x1", self.channels, self.event_ndims)
        super().__post_init__()

    def _size(self) -> int:
        return self.channels
