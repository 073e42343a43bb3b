"""Meshes and shardings for data-parallel training with `jax.jit` (no `jax.pmap`).

The global batch is split along its batch axis over a one-axis ``('data',)`` mesh of all devices
(of every process, in a multi-host run); parameters, optimiser and model state are replicated.
The train step itself is the same function as on one device: XLA inserts the cross-device
reductions that ``jnp.mean`` over the batch needs, and JAX's partitionable threefry PRNG gives
every example the same random bits whatever the sharding, so a data-parallel step computes what
the one-device step computes (up to the order of floating-point sums).

Each process holds only its own rows of every global batch (`jgen.data.BatchStream` with
``process_index``/``process_count``): `shard_batch` assembles the global array from them with
``jax.make_array_from_process_local_data``. With one process the local rows are the batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jgen.typing import PyTree
from jgen.validation import check_int

__all__ = [
    "DATA_AXIS",
    "data_mesh",
    "data_sharding",
    "local_rows",
    "replicated_sharding",
    "shard_batch",
]

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None, *, num_devices: int = 0) -> Mesh:
    """A ``('data',)`` mesh over ``devices`` (default: every device of every process).

    ``num_devices > 0`` keeps the first ``num_devices`` of them (a one-process run only: in a
    multi-host run every process must contribute its devices).
    """
    devices = list(jax.devices() if devices is None else devices)
    if check_int(num_devices, "num_devices (0: all)", minimum=0):
        if num_devices > len(devices):
            raise ValueError(
                f"num_devices={num_devices} but only {len(devices)} devices are available"
            )
        if jax.process_count() > 1 and num_devices != len(devices):
            raise ValueError(
                "num_devices must be 0 (all devices) in a multi-process run; every process "
                "contributes its local devices to the mesh"
            )
        devices = devices[:num_devices]
    # Process by process: process p's devices hold the p-th block of rows of a global batch,
    # the block `jgen.data.BatchStream` gives process p.
    devices.sort(key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh, *, batch_axis: int = 0) -> NamedSharding:
    """Split axis ``batch_axis`` (the batch; axis 1 under vmapped seeds) over the mesh."""
    return NamedSharding(mesh, PartitionSpec(*([None] * batch_axis), DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


@functools.lru_cache(maxsize=8)  # called for every batch: computed once per mesh
def _process_layout(mesh: Mesh) -> tuple[int, int]:
    """(index, count) of this process among the processes owning the mesh's devices."""
    owners = sorted({d.process_index for d in mesh.devices.flat})
    return owners.index(jax.process_index()), len(owners)


def local_rows(global_size: int, mesh: Mesh) -> slice:
    """This process's rows of a global batch of ``global_size`` on ``mesh`` (all rows when one
    process owns the mesh). Rows are assigned to processes in contiguous blocks, the layout of
    `jgen.data.BatchStream`'s ``process_index``."""
    index, count = _process_layout(mesh)
    if global_size % mesh.size:
        raise ValueError(
            f"the global batch size ({global_size}) must be divisible by the number of "
            f"devices in the data mesh ({mesh.size})"
        )
    per_process = global_size // count
    return slice(index * per_process, (index + 1) * per_process)


def shard_batch(batch: PyTree, mesh: Mesh, *, batch_axis: int = 0) -> PyTree:
    """Place this process's rows of a batch (numpy) on the mesh as one global array per leaf,
    split along ``batch_axis``.

    With one process, ``batch`` is the whole global batch. With P processes each passes its own
    contiguous block of ``B / P`` rows (`local_rows`; `BatchStream` with ``process_index``)
    and the result is the global batch of size ``B``. ``B`` must be divisible by the number of
    devices.
    """
    _, count = _process_layout(mesh)
    sharding = data_sharding(mesh, batch_axis=batch_axis)

    def put(x):
        x = np.asarray(x)
        global_shape = list(x.shape)
        global_shape[batch_axis] *= count
        if global_shape[batch_axis] % mesh.size:
            raise ValueError(
                f"the global batch size ({global_shape[batch_axis]}) must be divisible by the "
                f"number of devices in the data mesh ({mesh.size})"
            )
        return jax.make_array_from_process_local_data(sharding, x, tuple(global_shape))

    return jax.tree.map(put, batch)
