"""Masked autoregressive flows: MAF (Papamakarios et al. 2017) and IAF (Kingma et al. 2016).

Both are an elementwise transformer T (affine or rational-quadratic spline) whose parameters
for coordinate d come from a MADE network (`jgen.masked.MaskedMLP`) of the coordinates before d
(and of an optional context):

    MAF  x_d = T(z_d; θ_d(x_<d))        density direction (x → z) in one pass:
                                         z = T⁻¹(x; θ(x)); sampling (z → x) in D passes
    IAF  x_d = T⁻¹(z_d; θ_d(z_<d))      sampling direction (z → x) in one pass:
                                         x = T⁻¹(z; θ(z)); density (x → z) in D passes

with log|det| the sum of the per-coordinate log-derivatives. Here "forward" is jgen's
base → data direction, so MAF's fast direction is its inverse and IAF's its forward;
`InverseAutoregressive` is exactly the inverse of the `MaskedAutoregressive` with the same
parameters (same parameter tree). For the affine transformer IAF's x = (z − t(z))·exp(−s(z)) is
Kingma et al.'s x = z·σ(z) + μ(z) reparametrised (σ = exp(−s), μ = −t·exp(−s)).

The slow direction solves v = T^{±1}(u; θ(v)) by D passes v ← T^{±1}(u; θ(v)) from v = 0: after
pass d, v_1..v_d are exact (v_d depends on v_<d only), so D passes give the solution and its
log-det (a `flax.linen.while_loop`, i.e. one `lax.while_loop`, jitted with the rest).

Transformers: 'affine' is the coupling's affine with a bounded log-scale,
s = scale · tanh(raw_s) (`jgen.bijectors.coupling.affine_transform`); 'spline' is the
rational-quadratic spline on [−bound, bound] (`jgen.bijectors.spline.apply_spline`). With
``zero_init_last`` the MADE's output layer is zero and every layer starts as the identity.
Layers of a flow alternate the order of the coordinates (`masked_autoregressive_flow`
interleaves `Reverse`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.base import Bijector, Chain
from jgen.bijectors.coupling import affine_transform
from jgen.bijectors.permutations import Reverse
from jgen.bijectors.spline import apply_spline, check_spline_options, num_spline_params
from jgen.masked import MaskedMLP
from jgen.typing import Array
from jgen.validation import check_choice, check_int, check_number

__all__ = [
    "TRANSFORMERS",
    "InverseAutoregressive",
    "MaskedAutoregressive",
    "masked_autoregressive_flow",
]

TRANSFORMERS = ("affine", "spline")


class MaskedAutoregressive(Bijector):
    """MAF layer on vectors of size ``event_dim`` (module docstring): the inverse (density)
    is one MADE pass, the forward (sampling) D passes.

    hidden_dims:    the MADE's hidden widths.
    transformer:    'affine' or 'spline'.
    num_bins, bound, min_bin_size, min_derivative: the spline's options ('spline' only).
    context_dim:    if set, a context of that size is required; None uses a context whenever
                    one is given.
    activation:     the MADE's activation (a name of `jgen.nets.ACTIVATIONS` or a callable).
    zero_init_last: start as the identity.
    param_dtype:    parameter dtype; None is JAX's default float type.
    """

    event_dim: int
    hidden_dims: Sequence[int] = (128, 128)
    transformer: str = "affine"
    num_bins: int = 8
    bound: float = 3.0
    min_bin_size: float = 1e-3
    min_derivative: float = 1e-3
    context_dim: int | None = None
    activation: Any = "gelu"
    zero_init_last: bool = True
    param_dtype: Any = None

    event_ndims = 1

    def __post_init__(self):
        owner = type(self).__name__
        check_int(self.event_dim, "event_dim", minimum=1, owner=owner)
        check_choice(self.transformer, "transformer", TRANSFORMERS, owner=owner)
        if self.transformer == "spline":
            check_number(self.bound, "bound", owner=owner)
            check_spline_options(
                owner, self.num_bins, -self.bound, self.bound, self.min_bin_size,
                self.min_derivative,
            )  # fmt: skip
        if self.context_dim is not None:
            check_int(self.context_dim, "context_dim", minimum=1, owner=owner)
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        super().__post_init__()

    def _num_params(self) -> int:
        return 2 if self.transformer == "affine" else num_spline_params(self.num_bins)

    def setup(self):
        dtype = self.param_dtype or jax.dtypes.canonicalize_dtype(float)
        self.made = MaskedMLP(
            self.event_dim,
            self._num_params(),
            self.hidden_dims,
            activation=self.activation,
            zero_init_last=self.zero_init_last,
            param_dtype=dtype,
        )
        if self.transformer == "affine":
            self.scale = self.param("scale", nn.initializers.ones_init(), (self.event_dim,), dtype)

    # Maths -----------------------------------------------------------------------------------
    def _check(self, v: Array, context: Array | None) -> None:
        owner = type(self).__name__
        if v.ndim < 1 or v.shape[-1] != self.event_dim:
            raise ValueError(
                f"{owner}: expected inputs of shape (batch..., {self.event_dim}), got {v.shape}"
            )
        if context is None and self.context_dim is not None:
            raise ValueError(f"{owner}: context_dim={self.context_dim} but no context was given")
        if context is not None and (
            context.ndim < 1
            or (self.context_dim is not None and context.shape[-1] != self.context_dim)
        ):
            raise ValueError(
                f"{owner}: expected a context of shape (..., {self.context_dim or 'K'}), got "
                f"{context.shape}"
            )

    def _transform(self, u: Array, raw: Array, inverse: bool):
        """T^{±1}(u; raw); (output, log-det summed over the event)."""
        raw = raw.astype(u.dtype)
        if self.transformer == "affine":
            out, log_det = affine_transform(u, raw, self.scale.astype(u.dtype), inverse=inverse)
        else:
            out, log_det = apply_spline(
                u, raw, inverse=inverse, num_bins=self.num_bins, bound=self.bound,
                min_bin_size=self.min_bin_size, min_derivative=self.min_derivative,
            )  # fmt: skip
        return out, jnp.sum(log_det, axis=-1)

    def _fast(self, v: Array, context: Array | None, inverse: bool):
        """T^{±1}(v; θ(v)): the one-pass direction."""
        self._check(v, context)
        return self._transform(v, self.made(v, context), inverse)

    def _slow(self, u: Array, context: Array | None, inverse: bool):
        """The v with v = T^{±1}(u; θ(v)), by D passes (module docstring)."""
        self._check(u, context)
        # The first pass through the bound MADE (it creates the parameters at init); the others
        # apply the same parameters as a pure function inside a fixed-length loop (a scan:
        # reverse-mode differentiable, unlike a while loop).
        v, _ = self._transform(u, self.made(jnp.zeros_like(u), context), inverse)
        made, variables = self.made.clone(parent=None), self.made.variables

        def one_pass(_, v):
            return self._transform(u, made.apply(variables, v, context), inverse)[0]

        v = jax.lax.fori_loop(0, max(self.event_dim - 2, 0), one_pass, v)
        return self._transform(u, made.apply(variables, v, context), inverse)

    def forward_and_log_det(self, x, context=None):
        return self._slow(x, context, inverse=False)

    def inverse_and_log_det(self, y, context=None):
        return self._fast(y, context, inverse=True)


class InverseAutoregressive(MaskedAutoregressive):
    """IAF layer: the inverse of `MaskedAutoregressive` with the same parameters; its forward
    (sampling, or a VAE posterior's z₀ → z_K) is one MADE pass, its inverse D passes."""

    def forward_and_log_det(self, x, context=None):
        return self._fast(x, context, inverse=True)

    def inverse_and_log_det(self, y, context=None):
        return self._slow(y, context, inverse=False)


def masked_autoregressive_flow(
    event_dim: int,
    *,
    num_layers: int = 5,
    inverse: bool = False,
    reverse_between: bool = True,
    **layer_options: Any,
) -> Chain:
    """``num_layers`` MAF layers (IAF with ``inverse=True``) on vectors of size ``event_dim``,
    with `Reverse` between consecutive layers so that each sees the other order.
    ``layer_options`` go to every layer (hidden_dims, transformer, num_bins, bound,
    context_dim, ...)."""
    cls = InverseAutoregressive if inverse else MaskedAutoregressive
    return autoregressive_stack(
        "masked_autoregressive_flow", lambda: cls(event_dim, **layer_options), num_layers,
        reverse_between,
    )  # fmt: skip


def autoregressive_stack(
    owner: str, make_layer: Callable[[], Bijector], num_layers: int, reverse_between: bool
) -> Chain:
    """``num_layers`` layers from ``make_layer()``, with `Reverse` between consecutive ones
    when ``reverse_between`` (each autoregressive layer then sees the other order)."""
    check_int(num_layers, "num_layers", minimum=1, owner=owner)
    layers: list[Bijector] = []
    for i in range(num_layers):
        if i and reverse_between:
            layers.append(Reverse())
        layers.append(make_layer())
    return Chain(layers)
