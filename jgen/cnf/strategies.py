"""CNF strategies by name, for configs, the CLI and the benchmark harness.

`make_field` builds a vector field by name ('concat_squash': FFJORD's, or 'mlp', flattened for
image-shaped events; 'unet': `UNetField` on the images themselves). `make_cnf` builds a `CNF`
from plain values: a solver name ('euler',
'heun', 'midpoint', 'bosh3', 'tsit5', 'dopri5', 'dopri8'), tolerances (adaptive PID control) or
a fixed step, an adjoint name ('recursive': discretise-then-optimise through recursive
checkpointing, 'backsolve': the continuous adjoint) and a trace estimator name ('exact',
'hutchinson', 'hutch++'). Python code can equally pass diffrax and `jgen.cnf.trace` objects
to `CNF` itself.
"""

from __future__ import annotations

from typing import Any

import diffrax
import flax.linen as nn

from jgen.cnf.cnf import CNF
from jgen.cnf.trace import ExactTrace, Hutchinson, HutchPlusPlus, TraceEstimator
from jgen.cnf.unet import UNetField
from jgen.cnf.vector_fields import ConcatSquashField, FlattenedField, MLPField

__all__ = [
    "ADJOINTS",
    "FIELDS",
    "SOLVERS",
    "TRACE_ESTIMATORS",
    "make_cnf",
    "make_field",
    "make_trace_estimator",
]

FIELDS = {"concat_squash": ConcatSquashField, "mlp": MLPField, "unet": UNetField}
IMAGE_FIELDS = ("unet",)

SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}
ADJOINTS = {
    "recursive": diffrax.RecursiveCheckpointAdjoint,
    "backsolve": diffrax.BacksolveAdjoint,
}
TRACE_ESTIMATORS = ("exact", "hutchinson", "hutch++")


def _choose(kind: str, name: str, choices) -> Any:
    if name not in choices:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {sorted(choices)}")
    return choices[name]


def make_field(
    name: str,
    hidden_dims,
    event_shape: tuple[int, ...],
    *,
    activation: str | None = None,
    **options,
) -> nn.Module:
    """The vector field ``name`` (`FIELDS`) with these hidden widths (for 'unet': the width of
    each resolution level), acting on events of ``event_shape``: vector fields are wrapped in
    `FlattenedField` for image-shaped events; 'unet' needs images (H, W, C). ``activation``
    None is the field's default; ``options`` go to the field's constructor (e.g.
    ``num_res_blocks``, ``attention`` of `UNetField`)."""
    field_cls = _choose("vector field", name, FIELDS)
    event_shape = tuple(event_shape)
    if name in IMAGE_FIELDS and len(event_shape) != 3:
        raise ValueError(f"vector field {name!r} needs image events (H, W, C), got {event_shape}")
    if activation is not None:
        options["activation"] = activation
    field = field_cls(tuple(hidden_dims), **options)
    if name in IMAGE_FIELDS or len(event_shape) == 1:
        return field
    return FlattenedField(field)


def make_trace_estimator(
    name: str = "exact", *, distribution: str = "rademacher", num_probes: int = 1
) -> TraceEstimator:
    """'exact', 'hutchinson' (``num_probes`` probes) or 'hutch++' (``num_probes`` >= 3
    matrix-vector products in all), with Rademacher or Gaussian probes."""
    builders = {
        "exact": lambda: ExactTrace(),
        "hutchinson": lambda: Hutchinson(distribution, num_probes),
        "hutch++": lambda: HutchPlusPlus(max(num_probes, 3), distribution),
    }
    return _choose("trace estimator", name, builders)()


def make_cnf(
    vector_field: nn.Module,
    event_shape: tuple[int, ...],
    *,
    solver: str = "tsit5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    step_size: float | None = None,
    adjoint: str = "recursive",
    trace: str = "exact",
    trace_distribution: str = "rademacher",
    num_probes: int = 1,
    t0: float = 0.0,
    t1: float = 1.0,
    max_steps: int = 4096,
    solve_jointly: bool = False,
    regularizers: tuple[str, ...] = (),
) -> CNF:
    """A `CNF` from names: adaptive PID steps with (rtol, atol), or constant steps of
    ``step_size`` when it is given (the only choice for Euler and Midpoint, which have no
    error estimate)."""
    solver_cls = _choose("solver", solver, SOLVERS)
    adaptive = step_size is None
    if adaptive and solver in ("euler", "midpoint"):
        raise ValueError(f"solver {solver!r} has no error estimate: give step_size")
    controller = (
        diffrax.PIDController(rtol=rtol, atol=atol) if adaptive else diffrax.ConstantStepSize()
    )
    return CNF(
        vector_field,
        event_shape=tuple(event_shape),
        t0=t0,
        t1=t1,
        solver=solver_cls(),
        stepsize_controller=controller,
        dt0=step_size,
        adjoint=_choose("adjoint", adjoint, ADJOINTS)(),
        trace_estimator=make_trace_estimator(
            trace, distribution=trace_distribution, num_probes=num_probes
        ),
        max_steps=max_steps,
        solve_jointly=solve_jointly,
        regularizers=tuple(regularizers),
    )
