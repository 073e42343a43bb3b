"""jgen: deep generative models in JAX.

Subpackages: `bijectors` (composable bijectors with log-dets), `distributions` (flows,
dequantisation, the likelihood objective), `data`, `train` (the shared trainer), `parallel`
(data-parallel sharding). The `jgen` command lives in `jgen.cli`.
"""

from jgen import bijectors, data, distributions, parallel, train

__all__ = ["bijectors", "data", "distributions", "parallel", "train"]
__version__ = "0.1.0"
