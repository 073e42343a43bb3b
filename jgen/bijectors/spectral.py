"""Spectral normalisation with a coefficient c < 1 (i-ResNet, Behrmann et al. 2019).

A linear map W (a dense kernel or a convolution, as an operator) is rescaled to

    Ŵ = W / max(1, σ̂/c),

so that its largest singular value is at most c (about: σ̂ is estimated). σ̂ comes from power
iteration on the operator: with a persistent unit vector u of the output space,

    v ← normalise(Wᵀ u),   u ← normalise(W v)      (repeated n_power_iterations times)
    σ̂ = ‖W v‖,  v = normalise(Wᵀ u)                 (u and v treated as constants by autodiff)

σ̂ ≤ σ_max(W) always (a Rayleigh quotient), and it converges to σ_max as u does. Unlike Miyato et
al.'s normalisation to exactly 1 (flax's ``nn.SpectralNorm``), a matrix already below c is left
unchanged, which is the i-ResNet rule.

The vector u lives in the Flax collection ``'spectral'`` (variable ``'u'``). Every call runs
``n_power_iterations`` steps from the stored u, but the result is stored only when that
collection is mutable (``init``, and training steps: ``apply(..., mutable=['spectral'])``), as
``batch_stats`` of `jgen.bijectors.BatchNorm` are written; the mode (`jgen.bijectors.mode`) plays
no part here. An immutable apply (evaluation) therefore starts
from the same stored u every time: the map is a fixed function (the inverse and forward of a
residual block use the same weights). Iterating in evaluation too removes the one-step lag of u
behind the optimiser's last update: with σ₁ ≈ σ₂ the top singular vector can turn far in one
Adam step, and a test measured SVD norms up to 1.07·c from the stale u alone. At ``init`` u
starts from a random normal vector and is iterated ``init_power_iterations`` more times, so that
the first σ̂ is already accurate.

For convolutions the iteration runs on the convolution operator itself (u has the output's
(H, W, C) shape; Wᵀ is the transposed convolution), as in i-ResNet, so the bound is on the
operator norm, not on a reshaped kernel.

``SpectralDense`` and ``SpectralConv`` are weight providers: calling one returns the normalised
``(kernel, bias)`` and the estimate min(σ̂, c) of Ŵ's norm; `dense` and `conv` apply them. This
keeps the residual function g a pure function of explicit weights, which the log-det estimators
and the fixed-point inverse need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.typing import Array
from jgen.validation import check_int, check_number

__all__ = ["SpectralConv", "SpectralDense", "conv", "dense", "spectral_normalize"]

SPECTRAL = "spectral"


def _normalise(v: Array, eps: float = 1e-12) -> Array:
    return v / jnp.maximum(jnp.linalg.norm(v.reshape(-1)), eps)


def spectral_normalize(
    matvec: Callable[[Array], Array],
    rmatvec: Callable[[Array], Array],
    u: Array,
    *,
    num_iterations: int,
) -> tuple[Array, Array]:
    """Power iteration from ``u`` on the operator A (``matvec``: v ↦ A v, ``rmatvec``: u ↦ Aᵀ u).

    Returns ``(u_new, sigma)``: u after ``num_iterations`` steps (no gradient) and the estimate
    σ̂ = ‖A v‖ with v = normalise(Aᵀ u_new), differentiable with respect to A's parameters
    (through ``matvec``) but not through u, v.
    """
    u = jax.lax.stop_gradient(u)
    for _ in range(num_iterations):
        v = _normalise(jax.lax.stop_gradient(rmatvec(u)))
        u = _normalise(jax.lax.stop_gradient(matvec(v)))
    v = _normalise(jax.lax.stop_gradient(rmatvec(u)))
    sigma = jnp.linalg.norm(matvec(v).reshape(-1))
    return u, sigma


class _PowerIterationMixin:
    """Shared logic of the spectrally normalised layers: checks of the common fields (coeff,
    n_power_iterations, init_power_iterations) and the normalisation with a persistent u."""

    def _check_common(self) -> None:
        owner = type(self).__name__
        check_number(self.coeff, "coeff", interval="open_unit", owner=owner)
        check_int(self.n_power_iterations, "n_power_iterations", minimum=0, owner=owner)
        check_int(self.init_power_iterations, "init_power_iterations", minimum=0, owner=owner)

    def _operator(self, kernel: Array) -> tuple[Callable, Callable]:
        raise NotImplementedError

    def _u_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _normalised(self, kernel: Array, bias: Array, dtype) -> tuple[Array, Array, Array]:
        u_var = self.variable(
            SPECTRAL,
            "u",
            lambda: _normalise(
                jax.random.normal(self.make_rng("params"), self._u_shape(), self.param_dtype)
            ),
        )
        # Normalise in the computation's dtype (float32 parameters of a float64 computation are
        # promoted first), so that jitted and eager calls give the same weights to its precision.
        dtype = jnp.promote_types(kernel.dtype, dtype or kernel.dtype)
        kernel, bias = kernel.astype(dtype), bias.astype(dtype)
        matvec, rmatvec = self._operator(kernel)
        u = u_var.value.astype(dtype)
        steps = self.n_power_iterations
        if self.is_initializing():
            steps += self.init_power_iterations
        u, sigma = spectral_normalize(matvec, rmatvec, u, num_iterations=steps)
        if self.is_mutable_collection(SPECTRAL):
            u_var.value = u.astype(u_var.value.dtype)
        scale = jnp.maximum(1.0, sigma / self.coeff)
        return kernel / scale, bias, sigma / scale


class SpectralDense(_PowerIterationMixin, nn.Module):
    """A dense layer x ↦ x Ŵ + b whose kernel (in_features, out_features) is spectrally
    normalised to a norm of at most ``coeff`` (see the module docstring).

    Calling it (optionally with the computation's dtype) returns ``(kernel, bias, norm)``, where
    ``norm`` = min(σ̂, coeff) estimates the normalised kernel's largest singular value. Apply
    with `dense`.
    """

    in_features: int
    out_features: int
    coeff: float = 0.97
    n_power_iterations: int = 1
    init_power_iterations: int = 50
    kernel_init: Callable = nn.initializers.lecun_normal()
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        check_int(self.in_features, "in_features", minimum=1, owner="SpectralDense")
        check_int(self.out_features, "out_features", minimum=1, owner="SpectralDense")
        self._check_common()
        super().__post_init__()

    def _u_shape(self):
        return (self.out_features,)

    def _operator(self, kernel):
        return (lambda v: v @ kernel), (lambda u: kernel @ u)

    @nn.compact
    def __call__(self, dtype=None) -> tuple[Array, Array, Array]:
        shape = (self.in_features, self.out_features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = self.param(
            "bias", nn.initializers.zeros_init(), (self.out_features,), self.param_dtype
        )
        return self._normalised(kernel, bias, dtype)


class SpectralConv(_PowerIterationMixin, nn.Module):
    """A 'SAME'-padded, stride-1 convolution on NHWC images of spatial size ``spatial_shape``,
    spectrally normalised as an operator on (H, W, in_channels) images (see the module
    docstring). Calling it returns ``(kernel, bias, norm)``; apply with `conv`.
    """

    in_channels: int
    out_channels: int
    spatial_shape: Sequence[int]
    kernel_size: int = 3
    coeff: float = 0.97
    n_power_iterations: int = 1
    init_power_iterations: int = 50
    kernel_init: Callable = nn.initializers.lecun_normal()
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        for name in ("in_channels", "out_channels", "kernel_size"):
            check_int(getattr(self, name), name, minimum=1, owner="SpectralConv")
        if len(tuple(self.spatial_shape)) != 2:
            raise ValueError(
                f"SpectralConv: spatial_shape must be (H, W), got {self.spatial_shape!r}"
            )
        object.__setattr__(self, "spatial_shape", tuple(int(d) for d in self.spatial_shape))
        self._check_common()
        super().__post_init__()

    def _u_shape(self):
        return (*self.spatial_shape, self.out_channels)

    def _operator(self, kernel):
        def matvec(v):
            return conv(v[None], kernel, None)[0]

        example = jnp.zeros((*self.spatial_shape, self.in_channels), kernel.dtype)
        transpose = jax.linear_transpose(matvec, example)
        return matvec, lambda u: transpose(u)[0]

    @nn.compact
    def __call__(self, dtype=None) -> tuple[Array, Array, Array]:
        k = self.kernel_size
        shape = (k, k, self.in_channels, self.out_channels)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = self.param(
            "bias", nn.initializers.zeros_init(), (self.out_channels,), self.param_dtype
        )
        return self._normalised(kernel, bias, dtype)


def dense(x: Array, kernel: Array, bias: Array | None) -> Array:
    """x Ŵ + b on the last axis (any leading axes)."""
    y = x @ kernel.astype(x.dtype)
    return y if bias is None else y + bias.astype(x.dtype)


def conv(x: Array, kernel: Array, bias: Array | None) -> Array:
    """'SAME' stride-1 convolution of NHWC images ``x`` (any number of leading axes)."""
    batch = x.shape[:-3]
    flat = x.reshape((-1, *x.shape[-3:]))
    y = jax.lax.conv_general_dilated(
        flat,
        kernel.astype(x.dtype),
        window_strides=(1, 1),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    if bias is not None:
        y = y + bias.astype(x.dtype)
    return y.reshape((*batch, *y.shape[-3:]))
