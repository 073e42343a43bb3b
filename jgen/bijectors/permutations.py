"""Fixed permutations of the last axis: `Reverse`, `Permute` and `random_permutation`.

A permutation matrix has |det| = 1, so these bijectors are volume preserving: their log-det is
exactly 0 (an array of zeros with the batch shape ``x.shape[:-event_ndims]``). For image events
(NHWC, ``event_ndims=3``) the last axis is the channel axis, so they permute channels.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.base import Bijector
from jgen.typing import Array
from jgen.validation import check_int

__all__ = ["Permute", "Reverse", "check_permutation", "random_permutation"]


def _zero_log_det(x: Array, event_ndims: int) -> Array:
    return jnp.zeros(x.shape[: x.ndim - event_ndims], x.dtype)


def check_permutation(permutation, owner: str, size: int | None = None) -> tuple[int, ...]:
    """``permutation`` as a tuple, if it is a permutation of range(d) (d = ``size`` if given)."""
    if isinstance(permutation, (str, bytes)) or not hasattr(permutation, "__iter__"):
        raise TypeError(
            f"{owner}: permutation must be a sequence of ints, got {type(permutation).__name__}"
        )
    try:
        perm = tuple(operator.index(i) for i in np.asarray(permutation).reshape(-1).tolist())
    except TypeError:
        raise TypeError(
            f"{owner}: permutation must contain ints, got {list(permutation)!r}"
        ) from None
    d = len(perm) if size is None else size
    if np.ndim(permutation) != 1 or sorted(perm) != list(range(d)) or d == 0:
        raise ValueError(
            f"{owner}: permutation must be a 1-d sequence containing each of 0, ..., "
            f"{'d-1' if size is None else d - 1} exactly once, got {perm!r}"
        )
    return perm


class Reverse(Bijector):
    """Reverse the order of the last axis: y[..., i] = x[..., d - 1 - i]. log-det 0."""

    parameter_free: ClassVar[bool] = True

    event_ndims: int = 1

    def __post_init__(self):
        check_int(self.event_ndims, "event_ndims", minimum=1, owner="Reverse")
        super().__post_init__()

    def forward_and_log_det(self, x, context=None):
        return jnp.flip(x, axis=-1), _zero_log_det(x, self.event_ndims)

    def inverse_and_log_det(self, y, context=None):
        return self.forward_and_log_det(y, context)


class Permute(Bijector):
    """A fixed permutation of the last axis: y[..., i] = x[..., permutation[i]]. log-det 0.

    ``permutation`` must contain each of 0, ..., d-1 exactly once; the inverse gathers with the
    inverse permutation (argsort).
    """

    parameter_free: ClassVar[bool] = True

    permutation: Sequence[int]
    event_ndims: int = 1

    def __post_init__(self):
        perm = check_permutation(self.permutation, "Permute")
        object.__setattr__(self, "permutation", perm)
        check_int(self.event_ndims, "event_ndims", minimum=1, owner="Permute")
        super().__post_init__()

    def _gather(self, x: Array, indices: np.ndarray) -> Array:
        if x.shape[-1] != len(indices):
            raise ValueError(
                f"Permute: permutation has {len(indices)} entries but the last axis of the "
                f"input has size {x.shape[-1]} (input shape {x.shape})"
            )
        return jnp.take(x, indices, axis=-1)

    def forward_and_log_det(self, x, context=None):
        return self._gather(x, np.asarray(self.permutation)), _zero_log_det(x, self.event_ndims)

    def inverse_and_log_det(self, y, context=None):
        inverse = np.argsort(np.asarray(self.permutation))
        return self._gather(y, inverse), _zero_log_det(y, self.event_ndims)


def random_permutation(seed_or_key: int | Array, dim: int, *, event_ndims: int = 1) -> Permute:
    """A `Permute` of ``dim`` features drawn uniformly at random.

    ``seed_or_key`` is an int seed or a JAX PRNG key (new-style or raw uint32); the same seed
    gives the same permutation. It must be concrete (call this outside jit: the permutation
    becomes a constant of the module).
    """
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"random_permutation: dim must be a positive int, got {dim!r}")
    if isinstance(seed_or_key, (int, np.integer)) and not isinstance(seed_or_key, bool):
        key = jax.random.key(int(seed_or_key))
    else:
        key = seed_or_key
    if isinstance(key, jax.core.Tracer):
        raise TypeError(
            "random_permutation: seed_or_key must be concrete (an int seed or a PRNG key outside "
            "jax.jit/vmap: the permutation is a constant of the module), got a traced value; "
            "draw the permutation before tracing"
        )
    perm = np.asarray(jax.random.permutation(key, dim))
    return Permute(tuple(int(i) for i in perm), event_ndims=event_ndims)
