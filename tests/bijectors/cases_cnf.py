"""Registry cases for continuous normalizing flows (`jgen.cnf.CNF`).

The property suite differentiates the forward map with ``jax.jacfwd``, so these CNFs use
diffrax's ``ForwardMode`` adjoint (the default ``RecursiveCheckpointAdjoint`` supports reverse
mode only) and ``ExactTrace`` (the registry's ``init`` passes no 'trace' key). The suite checks
float64 to 1e-7 (round trip) and the log-det to 1e-5 (relative) against the Jacobian of the
discretised map, so the solver tolerances follow the precision the case is built under: 1e-10
in float64, 1e-6 in float32 (tighter float32 tolerances would only chase round-off).
The vector fields use the default (random) initialisation, so the flows are not the identity.
"""

import diffrax
import jax.numpy as jnp

from jgen.cnf import CNF, MLPField
from tests.bijectors.registry import Case


def _controller():
    tol = 1e-10 if jnp.result_type(float) == jnp.float64 else 1e-6
    return diffrax.PIDController(rtol=tol, atol=tol)


def _cnf(field, event_shape, **kwargs):
    def make():
        return CNF(
            field,
            event_shape=event_shape,
            stepsize_controller=_controller(),
            adjoint=diffrax.ForwardMode(),
            **kwargs,
        )

    return make


# Float32 tolerances of an adaptive solve at rtol = atol = 1e-6 (errors accumulate over steps).
_F32 = dict(rtol=1e-4, atol=1e-4, logdet_atol=1e-4)

# One case (each costs ~15 s of compilation per dtype): an MLP field with a context, so that
# the conditioning path is covered too.
CASES = [
    Case(
        "cnf_mlp_field_with_context_tsit5",
        _cnf(MLPField((8,)), (3,)),
        (3,),
        context_dim=2,
        **_F32,
    ),
]
