"""Data parallelism by sharding: one ('data',) mesh, batches split over it, state replicated;
multi-host runs through `jax.distributed`."""

from jgen.parallel.distributed import agree, barrier, initialize, is_primary
from jgen.parallel.mesh import (
    data_mesh,
    data_sharding,
    local_rows,
    replicated_sharding,
    shard_batch,
)

__all__ = [
    "agree",
    "barrier",
    "data_mesh",
    "data_sharding",
    "initialize",
    "is_primary",
    "local_rows",
    "replicated_sharding",
    "shard_batch",
]
