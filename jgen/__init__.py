"""jgen: deep generative models in JAX.

Subpackages: `bijectors` (composable bijectors with log-dets), `cnf` (continuous normalizing
flows on diffrax, trace estimators), `distributions` (flows,
dequantisation, the likelihood objective), `data`, `train` (the shared trainer), `parallel`
(data-parallel sharding). The `jgen` command lives in `jgen.cli`.
"""

from jgen import bijectors, cnf, data, distributions, parallel, train

__all__ = ["bijectors", "cnf", "data", "distributions", "parallel", "train"]
__version__ = "0.1.0"
