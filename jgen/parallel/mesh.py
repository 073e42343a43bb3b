"""Meshes and shardings for data-parallel training with `jax.jit` (no `jax.pmap`).

The global batch is split along its first axis over a one-axis ``('data',)`` mesh of all devices;
parameters, optimiser and model state are replicated. The train step itself is the same function
as on one device: XLA inserts the cross-device reductions that ``jnp.mean`` over the batch needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jgen.typing import PyTree

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``('data',)`` mesh over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (batch) axis over the mesh."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """Place a host batch (numpy) on the mesh, split along the batch axis.

    Every process passes the global batch; each device receives its slice. The batch size must
    be divisible by the number of devices.
    """
    n = mesh.size
    sharding = data_sharding(mesh)

    def put(x):
        x = np.asarray(x)
        if x.shape[0] % n:
            raise ValueError(
                f"the global batch size ({x.shape[0]}) must be divisible by the number of "
                f"devices in the data mesh ({n})"
            )
        return jax.device_put(x, sharding)

    return jax.tree.map(put, batch)
