"""Multi-host runs with JAX's own runtime (`jax.distributed`).

Every host starts the same command; `initialize` connects them through a coordinator (process 0's
address). After it, ``jax.devices()`` lists the devices of every process, the data mesh of
`jgen.parallel.mesh` spans them all, and collectives cross hosts (NCCL on GPUs, gloo over TCP on
CPUs). Each process loads only its rows of every batch, all processes take part in checkpoint
saves (orbax writes each array once), and only the primary process (index 0) writes logs,
config and figures.

Settings come from arguments, else from the environment: ``JAX_COORDINATOR_ADDRESS``
(``host:port``), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; with none of them,
`jax.distributed.initialize` detects a cluster it knows (SLURM, Open MPI, Kubernetes, TPU pods).
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["agree", "barrier", "initialize", "is_primary"]

_ENV = {"num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join the multi-process run (call before any JAX computation; once per process).

    Explicit arguments win over ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` /
    ``JAX_PROCESS_ID``; whatever is still unset is auto-detected by JAX on a known cluster.
    """
    num_processes = num_processes if num_processes is not None else _env_int(_ENV["num_processes"])
    process_id = process_id if process_id is not None else _env_int(_ENV["process_id"])
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in 0..{num_processes - 1}, got {process_id}")
    if coordinator_address is not None and ":" not in coordinator_address:
        raise ValueError(f"coordinator_address must be host:port, got {coordinator_address!r}")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def is_primary() -> bool:
    """True on the process that writes logs, configs and figures (process 0)."""
    return jax.process_index() == 0


def agree(flag: bool) -> bool:
    """True on every process if ``flag`` is True on any (a collective: every process must call
    it at the same point). A stop signal received by one host stops them all at the same step."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.asarray(flag, np.int32))
    return bool(np.any(flags))


def barrier(name: str) -> None:
    """Wait until every process reaches this point (a no-op in a one-process run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
