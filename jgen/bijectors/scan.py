"""`Repeat`: one bijector applied n times with separate variables, compiled once.

``Repeat(body, n)`` is ``Chain([body_0, ..., body_{n-1}])`` where every ``body_j`` is a copy of
``body`` with its own variables, listed from the data side as in `Chain`:

    inverse (data → latent):  y → body_0⁻¹ → body_1⁻¹ → ... → body_{n-1}⁻¹
    forward (latent → data):  x → body_{n-1} → ... → body_1 → body_0
    log|det J| = Σ_j log|det J_{body_j}|

The n copies run in a `flax.linen.scan` (a `lax.scan` over their stacked variables), so the
body is traced and compiled once: compile time does not grow with n, where an unrolled `Chain`
traces and compiles every member. Every variable of the body gets a leading axis of size n
(``params['body']['0_affine_coupling']['net']['hidden_0']['kernel']`` has shape
``(n, D_in, 128)``), and each copy is initialised with its own PRNG key.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jgen.bijectors.base import Bijector, sum_rightmost
from jgen.validation import check_int

__all__ = ["Repeat"]


class Repeat(Bijector):
    """``body`` applied ``num_repeats`` times, each copy with its own variables, in one scan
    (see the module docstring). ``body`` must keep the event shape."""

    body: Bijector
    num_repeats: int

    def __post_init__(self):
        check_int(self.num_repeats, "num_repeats", minimum=1, owner="Repeat")
        if not isinstance(self.body, Bijector):
            raise TypeError(f"Repeat: body must be a jgen Bijector, got {type(self.body).__name__}")
        super().__post_init__()

    @property
    def event_ndims(self) -> int:
        return self.body.event_ndims

    def _run(self, x, context, method: str, reverse: bool):
        batch_ndim = x.ndim - self.event_ndims

        def step(body, carry, _):
            h, total = carry
            h, log_det = getattr(body, method)(h, context)
            return (h, total + sum_rightmost(log_det, log_det.ndim - batch_ndim)), None

        scan = nn.scan(
            step,
            variable_axes={True: 0},
            split_rngs={True: True},
            length=self.num_repeats,
            reverse=reverse,
        )
        (y, total), _ = scan(self.body, (x, jnp.zeros(x.shape[:batch_ndim], x.dtype)), None)
        return y, total

    def forward_and_log_det(self, x, context=None):
        return self._run(x, context, "forward_and_log_det", reverse=True)

    def inverse_and_log_det(self, y, context=None):
        return self._run(y, context, "inverse_and_log_det", reverse=False)
