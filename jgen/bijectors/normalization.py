"""Normalisation bijectors: `ActNorm` (Glow) and `BatchNorm` (RealNVP).

Both act per feature on the last axis (the channel axis of NHWC images), so their Jacobian is
diagonal and the log-det of one event is (number of non-feature event positions, e.g. H·W) times
the sum over features of the per-feature log-scale.

Their variables have data-dependent shapes or values, so both use the compact ``__call__``
pattern of `jgen.bijectors.base`: ``forward_and_log_det``/``inverse_and_log_det`` call
``self(x, context, inverse=...)``, which creates the variables on first use.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.base import Bijector, is_training
from jgen.typing import Array
from jgen.validation import ValidationError, check_int, check_number, is_concrete

__all__ = ["ActNorm", "BatchNorm"]


def _check_input(owner: str, x: Array, event_ndims: int) -> None:
    if x.ndim < event_ndims:
        raise ValueError(
            f"{owner}: expected inputs with at least event_ndims={event_ndims} axes, "
            f"got shape {x.shape}"
        )


def _feature_moments(x: Array) -> tuple[Array, Array]:
    """Mean and (biased) variance per feature over every axis but the last."""
    axes = tuple(range(x.ndim - 1))
    return jnp.mean(x, axis=axes), jnp.var(x, axis=axes)


def _event_log_det(per_feature: Array, x: Array, event_ndims: int) -> Array:
    """(number of non-feature event positions) · Σ_features per_feature, with the batch shape."""
    event_shape = x.shape[x.ndim - event_ndims :]
    per_event = math.prod(event_shape[:-1]) * jnp.sum(per_feature)
    return jnp.broadcast_to(per_event, x.shape[: x.ndim - event_ndims]).astype(x.dtype)


class ActNorm(Bijector):
    """Per-feature affine map with data-dependent initialisation (Glow, Kingma & Dhariwal 2018).

        forward:  y = x · exp(log_scale) + shift,      inverse:  x = (y - shift) · exp(-log_scale)
        log|det ∂y/∂x| = n · Σ_c log_scale_c,   n = number of non-feature event positions (H·W).

    ``shift`` and ``log_scale`` have shape (C,) for a last axis of size C. They are initialised
    from the first batch seen (at ``init``) so that the output of the direction used for init has
    zero mean and unit variance per feature over all other axes (batch and spatial):

    * init through ``inverse_and_log_det(data)`` (data → noise, the usual way): shift = mean(y),
      log_scale = log sqrt(var(y) + eps), so x = (y - mean) / sqrt(var + eps);
    * init through ``forward_and_log_det(x)``: log_scale = -log sqrt(var(x) + eps),
      shift = -mean(x) · exp(log_scale), so y = (x - mean) / sqrt(var + eps).

    The init batch must be informative: at least 2 examples, and no feature that is constant
    over it (an all-zeros placeholder batch would give log_scale = log sqrt(eps) ≈ -6.9 and a
    useless initial model); either raises a ``ValidationError`` (the constancy check runs on
    concrete arrays only, not under jit). Initialise on real data (`jgen.init`). ``eps`` guards
    the division for tiny variances. After init the parameters are ordinary trainable
    parameters; later calls never re-estimate them.
    """

    event_ndims: int = 1
    eps: float = 1e-6

    def __post_init__(self):
        check_int(self.event_ndims, "event_ndims", minimum=1, owner="ActNorm")
        check_number(self.eps, "eps", owner="ActNorm")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, context=None, *, inverse=False):
        _check_input("ActNorm", x, self.event_ndims)

        if not self.has_variable("params", "log_scale"):  # creating them now: check the data
            _check_init_batch(x, self.event_ndims)

        def data_std(data: Array) -> tuple[Array, Array]:
            mean, var = _feature_moments(jax.lax.stop_gradient(data))
            return mean, jnp.sqrt(var + self.eps)

        def init_log_scale(_key):
            _, std = data_std(x)
            return jnp.log(std) if inverse else -jnp.log(std)

        def init_shift(_key):
            mean, std = data_std(x)
            # -mean · exp(log_scale), with the same rounded exp as the forward, so that
            # x = mean maps to exactly 0 even when the scale is large.
            return mean if inverse else -mean * jnp.exp(-jnp.log(std))

        log_scale = self.param("log_scale", init_log_scale)
        shift = self.param("shift", init_shift)
        log_det = _event_log_det(log_scale, x, self.event_ndims)
        if inverse:
            return (x - shift) * jnp.exp(-log_scale), -log_det
        return x * jnp.exp(log_scale) + shift, log_det

    def forward_and_log_det(self, x, context=None):
        return self(x, context, inverse=False)

    def inverse_and_log_det(self, y, context=None):
        return self(y, context, inverse=True)


def _check_init_batch(x: Array, event_ndims: int) -> None:
    """ActNorm's data-dependent init needs >= 2 examples and no constant feature."""
    num_examples = math.prod(x.shape[: x.ndim - event_ndims])
    if num_examples < 2:
        raise ValidationError(
            f"ActNorm: data-dependent initialisation needs a batch of at least 2 examples, got "
            f"input of shape {x.shape} ({num_examples} example(s)); initialise on real data"
        )
    if not is_concrete(x):
        return
    # On the host: Flax also calls initialisers under eval_shape, where jnp ops would trace.
    flat = np.asarray(x).reshape(-1, x.shape[-1])
    constant = [int(i) for i in np.flatnonzero(np.ptp(flat, axis=0) == 0)]
    if constant:
        shown = constant[:8] + (["..."] if len(constant) > 8 else [])
        raise ValidationError(
            f"ActNorm: data-dependent initialisation got a batch in which feature(s) "
            f"{', '.join(map(str, shown))} (of {x.shape[-1]}) are constant over all "
            f"{flat.shape[0]} rows (e.g. a jnp.zeros placeholder), which would set log_scale to "
            "about log sqrt(eps); initialise on real data, e.g. jgen.init(flow, key, data)"
        )


class BatchNorm(Bijector):
    """Batch normalisation as a bijector (RealNVP, Dinh et al. 2017, appendix E).

    Its inverse is the data → noise direction (per feature c of the last axis):

        x = (y - μ_c) / sqrt(σ²_c + eps) · exp(log_gamma_c) + beta_c,
        log|det ∂x/∂y| = n · Σ_c [log_gamma_c - ½ log(σ²_c + eps)],

    with n the number of non-feature event positions (H·W for images); the forward is its exact
    inverse, y = (x - beta) · exp(-log_gamma) · sqrt(σ² + eps) + μ, with minus that log-det.
    ``log_gamma`` and ``beta`` are parameters (zeros at init); running estimates of μ and σ² live
    in the ``batch_stats`` collection (``mean`` zeros, ``var`` ones at first).

    Modes, set explicitly (``train=True`` here, in ``Flow.log_prob`` or `jgen.bind`'s methods,
    or `jgen.bijectors.mode`; evaluation when none is set):

    * train mode, inverse: μ, σ² are the statistics of the batch (mean and biased variance over
      every axis but the last), the log-det uses them (treating them as constants, as RealNVP
      does), and, where ``batch_stats`` is mutable (``init``,
      ``apply(..., mutable=['batch_stats'])``), the running estimates are updated as
      ``running ← momentum · running + (1 - momentum) · batch``. Initialising in train mode
      through the inverse on data therefore already moves the running estimates towards the
      data. Mutability only decides whether the estimates are written.
    * the forward (noise → data, i.e. sampling) always uses the running estimates and never
      updates them, in both modes: a sample has no batch of data to normalise by.
    * eval mode: both directions use the running estimates (nothing is written, mutable or
      not); the map is then a fixed bijection and forward/inverse round-trip exactly.

    momentum: weight of the old running value in each update. The default 0.9 averages over
    roughly the last 1 / (1 - momentum) = 10 batches, so the estimates track the slowly changing
    activations of a flow in training quickly; use e.g. 0.99 for smoother estimates.
    eps: added to the variance for numerical safety.
    """

    event_ndims: int = 1
    momentum: float = 0.9
    eps: float = 1e-5

    def __post_init__(self):
        check_int(self.event_ndims, "event_ndims", minimum=1, owner="BatchNorm")
        if (
            not isinstance(self.momentum, (int, float))
            or isinstance(self.momentum, bool)
            or not 0.0 <= self.momentum < 1.0
        ):
            raise ValueError(f"BatchNorm: momentum must be in [0, 1), got {self.momentum!r}")
        check_number(self.eps, "eps", owner="BatchNorm")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, context=None, *, inverse=False, train: bool | None = None):
        _check_input("BatchNorm", x, self.event_ndims)
        train = is_training() if train is None else train
        shape, dtype = (x.shape[-1],), x.dtype
        log_gamma = self.param("log_gamma", nn.initializers.zeros, shape, dtype)
        beta = self.param("beta", nn.initializers.zeros, shape, dtype)
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, shape, dtype)
        running_var = self.variable("batch_stats", "var", jnp.ones, shape, dtype)

        if inverse and train:
            mean, var = _feature_moments(x)
            if self.is_mutable_collection("batch_stats"):
                m = self.momentum
                running_mean.value = m * running_mean.value + (1 - m) * jax.lax.stop_gradient(mean)
                running_var.value = m * running_var.value + (1 - m) * jax.lax.stop_gradient(var)
        else:
            mean, var = running_mean.value, running_var.value

        log_std = 0.5 * jnp.log(var + self.eps)
        inverse_log_det = _event_log_det(log_gamma - log_std, x, self.event_ndims)
        if inverse:
            return (x - mean) * jnp.exp(log_gamma - log_std) + beta, inverse_log_det
        return (x - beta) * jnp.exp(log_std - log_gamma) + mean, -inverse_log_det

    def forward_and_log_det(self, x, context=None):
        return self(x, context, inverse=False)

    def inverse_and_log_det(self, y, context=None):
        return self(y, context, inverse=True)
