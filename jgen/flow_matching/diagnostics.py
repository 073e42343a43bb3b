"""Diagnostics of a trained flow-matching field: trajectories, their straightness, and the cost
of sampling.

``trajectories`` solves the plain ODE dz/dt = v_θ(z, t) (no log-det state) from noise x0 at
t = 0 to t = 1 with diffrax (Tsit5, adaptive; one solve per example, vmapped), saving z at the
given times. ``straightness`` is the measure of Liu et al. (2023, rectified flow, Def. 3.1)

    S(v) = ∫_0^1 E ||(z_1 − z_0) − v_θ(z_t, t)||² dt,

0 exactly when every trajectory is a straight line traversed at constant speed (then one Euler
step is exact), by the trapezoidal rule on the saved times; ``relative_straightness`` divides
it by E||z_1 − z_0||² (a scale-free number; 0 = straight). The sampling cost at a fixed
tolerance is the CNF's own: `FlowMatchingObjective.sample_with_stats` reports the mean NFE per
sample of the library's sampling solve.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

from jgen.typing import Array

__all__ = ["integrate", "straightness", "trajectories"]


def integrate(
    velocity, x0: Array, times: Array, *, context: Array | None = None, rtol=1e-5, atol=1e-5
) -> Array:
    """z(t) (B, len(times), *event) of dz/dt = velocity(z, t, context) from z(0) = x0 (B,
    *event) at t = 0; ``velocity`` acts on batches (z (B, *event), t (B,), context (B, C) or
    None), ``times`` increase in [0, 1]. One adaptive Tsit5 solve per example (vmapped)."""
    times = jnp.asarray(times, x0.dtype)

    def solve(z0, c0):
        def field(t, z, args):
            batch_context = None if c0 is None else c0[None]
            return velocity(z[None], t[None], batch_context)[0]

        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=1.0, dt0=None, y0=z0,
            saveat=diffrax.SaveAt(ts=times),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=4096,
        )  # fmt: skip
        return solution.ys

    return jax.vmap(solve)(x0, context)


def trajectories(
    objective, params, model_state, x0: Array, times: Array, *, rtol=1e-5, atol=1e-5
) -> Array:
    """z(t) (B, len(times), *event) of dz/dt = v_θ(z, t) from z(0) = x0 (B, *event); ``times``
    increasing in [0, 1]."""

    def velocity(z, t, context):
        return objective.velocity(params, model_state, z, t, context)

    return integrate(velocity, x0, times, rtol=rtol, atol=atol)


def straightness(
    objective, params, model_state, x0: Array, *, num_times: int = 33, rtol=1e-5, atol=1e-5
) -> dict[str, Array]:
    """{'straightness': S, 'relative_straightness': S / E||z_1 − z_0||²} over the trajectories
    from x0 (B, *event) (module docstring)."""
    times = jnp.linspace(0.0, 1.0, num_times, dtype=x0.dtype)
    path = trajectories(objective, params, model_state, x0, times, rtol=rtol, atol=atol)
    batch, event = path.shape[:2], path.shape[2:]
    flat = path.reshape(-1, *event)
    v = objective.velocity(params, model_state, flat, jnp.tile(times, batch[0]))
    v = v.reshape(path.shape)
    displacement = path[:, -1] - path[:, 0]
    axes = tuple(range(2, path.ndim))
    deviation = jnp.sum(jnp.square(displacement[:, None] - v), axis=axes)  # (B, K)
    value = jnp.mean(jnp.trapezoid(deviation, times, axis=1))
    length = jnp.mean(jnp.sum(jnp.square(displacement), axis=tuple(range(1, displacement.ndim))))
    return {"straightness": value, "relative_straightness": value / length}
