"""Flow distributions: a base density pushed through a bijector.

For a bijector f (base → data) and base density p_Z, the change of variables (eq. 2.10) gives

    log p_X(x) = log p_Z(f⁻¹(x)) + log|det ∂f⁻¹/∂x (x)|,

and sampling draws z ~ p_Z and returns x = f(z) with log p_X(x) = log p_Z(z) − log|det ∂f/∂z|.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.base import Bijector, mode
from jgen.typing import Array, PRNGKey
from jgen.validation import (
    ValidationError,
    ValidationTypeError,
    check_array,
    check_finite,
    check_float_dtype,
    check_number,
    check_positive_int,
)

__all__ = ["Flow", "StandardNormal"]


class StandardNormal:
    """The standard normal N(0, I) over ``event_shape``; log-probs summed over the event axes."""

    def __init__(self, event_shape: tuple[int, ...]):
        self.event_shape = tuple(int(d) for d in event_shape)

    def log_prob(self, z: Array) -> Array:
        axes = tuple(range(z.ndim - len(self.event_shape), z.ndim))
        d = math.prod(self.event_shape)
        return -0.5 * jnp.sum(jnp.square(z), axis=axes) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, key: PRNGKey, sample_shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        return jax.random.normal(key, (*sample_shape, *self.event_shape), dtype)

    def __repr__(self) -> str:
        return f"StandardNormal(event_shape={self.event_shape})"


class Flow(nn.Module):
    """``Flow(bijector, event_shape)``: the distribution of f(z), z ~ base.

    ``base`` defaults to ``StandardNormal(event_shape)``; any object with ``log_prob(z)`` and
    ``sample(key, sample_shape, dtype)`` works (a distrax distribution with the same event shape
    is adapted automatically). All methods are pure: call them through
    ``jgen.bind(flow, variables).log_prob(x)`` or ``flow.apply(variables, ..., method=...)``;
    parameters of the bijector live in the flow's variables (``variables['params']['bijector']``).

    ``train`` (log_prob, sampling): the mode of layers that differ between training and
    evaluation (BatchNorm statistics, residual log-det estimators); None keeps the enclosing
    mode, which is evaluation unless a caller set one (see `jgen.bijectors.mode`).
    """

    bijector: Bijector
    event_shape: tuple[int, ...]
    base: Any = None

    def _base(self):
        if self.base is None:
            return StandardNormal(self.event_shape)
        if hasattr(self.base, "sample_n") or hasattr(self.base, "sample_and_log_prob"):
            return _DistraxBase(self.base)
        return self.base

    def _check_events(self, x: Array, name: str) -> None:
        """Rank, event shape, real floating dtype, non-empty batch (static: free under jit);
        NaN/inf values only where ``x`` is concrete (eager calls; nothing under jit)."""
        check_array(x, name, event_shape=self.event_shape)
        check_finite(x, name)

    def _check_context(self, context: Array | None, batch_shape: tuple[int, ...]) -> None:
        if context is None:
            return
        check_array(context, "context", floating=False, allow_empty=True)
        if context.ndim < 1 or tuple(context.shape[:-1]) != tuple(batch_shape):
            raise ValidationError(
                f"context must have shape (*batch_shape, K) = ({', '.join(map(str, batch_shape))}"
                f"{', ' if batch_shape else ''}K), got {tuple(context.shape)}"
            )
        check_finite(context, "context")

    def _check_log_det(self, log_det: Array, batch_shape: tuple[int, ...]) -> Array:
        if tuple(jnp.shape(log_det)) != tuple(batch_shape):
            raise ValueError(
                f"the bijector returned a log-det of shape {tuple(jnp.shape(log_det))}, expected "
                f"the batch shape {tuple(batch_shape)}: is its event_ndims {len(self.event_shape)}?"
            )
        return log_det

    def log_prob(
        self, x: Array, context: Array | None = None, *, train: bool | None = None
    ) -> Array:
        """log p(x), with the batch shape of ``x``.

        ``x`` must have shape ``(*batch, *event_shape)`` with a non-empty batch and a real
        floating dtype (integer data is dequantised first, see `DensityObjective`); errors name
        what was expected and what was given. Called eagerly (``flow.apply`` outside jit),
        NaN or infinite values in ``x`` or ``context`` raise a ``ValueError``; under
        ``jax.jit`` values are not checked (only shapes and dtypes, at trace time).
        """
        self._check_events(x, "x")
        batch_shape = x.shape[: x.ndim - len(self.event_shape)]
        self._check_context(context, batch_shape)
        with mode(train=train), _context_matches_parameters(context):
            z, log_det = self.bijector.inverse_and_log_det(x, context)
        return self._base().log_prob(z) + self._check_log_det(log_det, batch_shape)

    def sample_and_log_prob(
        self,
        key: PRNGKey,
        num_samples: int,
        context: Array | None = None,
        dtype=None,
        temperature: float = 1.0,
        *,
        train: bool | None = None,
    ) -> tuple[Array, Array]:
        """``num_samples`` draws and their log-densities (one forward pass, no inversion).

        With a ``context`` of shape (B, C), ``num_samples`` must equal B (one sample per row).
        ``temperature`` T (Glow's reduced-temperature sampling) draws the base noise from
        N(0, T² I); it needs the default standard-normal base. The returned log-densities are
        the model's, log p(x), at the draws.
        ``num_samples`` must be a positive Python int: it sets the samples' shape, so under
        ``jax.jit`` it must be static (``static_argnames='num_samples'``); a traced value raises
        a ``TypeError`` saying so. ``dtype`` must be a real floating dtype (default: JAX's
        default float, float64 under x64): the base noise is drawn in it and the draws and
        log-densities are returned in it, while the bijector computes in the promoted dtype of
        the noise and its parameters (float16 noise through float32 parameters: float32
        arithmetic, float16 results); a concrete ``context`` must be finite (not checked under
        jit).
        """
        if isinstance(num_samples, jax.core.Tracer):
            raise ValidationTypeError(
                "num_samples must be a static Python int (it sets the shape of the samples), "
                "got a traced value: under jax.jit, mark it static, e.g. "
                "jax.jit(f, static_argnames='num_samples')"
            )
        num_samples = check_positive_int(num_samples, "num_samples")
        dtype = jnp.result_type(float) if dtype is None else dtype
        check_float_dtype(dtype, "dtype")
        self._check_context(context, (num_samples,))
        base = self._base()
        z = base.sample(key, (num_samples,), dtype)
        if temperature != 1.0:
            check_number(temperature, "temperature", owner="Flow.sample")
            if not isinstance(base, StandardNormal):
                raise ValidationError(
                    f"Flow.sample: temperature={temperature} needs the standard normal base, "
                    f"got {type(self.base).__name__}"
                )
            z = temperature * z
        with mode(train=train), _context_matches_parameters(context):
            x, log_det = self.bijector.forward_and_log_det(z, context)
        log_prob = base.log_prob(z) - self._check_log_det(log_det, (num_samples,))
        return x.astype(dtype), log_prob.astype(dtype)

    def sample(
        self,
        key: PRNGKey,
        num_samples: int,
        context: Array | None = None,
        dtype=None,
        temperature: float = 1.0,
        *,
        train: bool | None = None,
    ) -> Array:
        """``num_samples`` draws (see `sample_and_log_prob`)."""
        x, _ = self.sample_and_log_prob(key, num_samples, context, dtype, temperature, train=train)
        return x

    def __call__(
        self, x: Array, context: Array | None = None, *, train: bool | None = None
    ) -> Array:
        return self.log_prob(x, context, train=train)


@contextlib.contextmanager
def _context_matches_parameters(context: Array | None):
    """A context (or its absence) that does not fit the parameters' shapes, e.g. a context
    passed to a flow initialised without one: an error that names the context, not Flax's."""
    try:
        yield
    except flax.errors.ScopeParamShapeError as e:
        given = "no context" if context is None else f"a context of shape {tuple(context.shape)}"
        raise ValidationError(
            "context: expected the context the flow's parameters were initialised with (none, "
            f"or one of the same size), got {given}; the parameters do not fit it ({e})"
        ) from e


class _DistraxBase:
    """Adapts a distrax distribution to the base interface used by `Flow`."""

    def __init__(self, dist):
        self.dist = dist

    def log_prob(self, z):
        return self.dist.log_prob(z)

    def sample(self, key, sample_shape, dtype=jnp.float32):
        return self.dist.sample(seed=key, sample_shape=sample_shape).astype(dtype)
