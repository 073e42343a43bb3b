"""Data parallelism by sharding: one ('data',) mesh, batches split over it, state replicated."""

from jgen.parallel.mesh import (
    DATA_AXIS,
    data_mesh,
    data_sharding,
    replicated_sharding,
    shard_batch,
)

__all__ = ["DATA_AXIS", "data_mesh", "data_sharding", "replicated_sharding", "shard_batch"]
