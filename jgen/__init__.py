"""jgen: deep generative models in JAX.

Subpackages imported here: `bijectors` (composable bijectors with log-dets: RealNVP, planar and
radial, residual flows, ...), `cnf` (continuous normalizing flows on diffrax, trace estimators),
`distributions` (flows, dequantisation, the likelihood objective), `data`, `train` (the shared
trainer), `parallel` (data-parallel sharding). The model families are imported on use:
`jgen.flow_matching`, `jgen.vae`, `jgen.vi`, `jgen.gan`, `jgen.seq2seq`, `jgen.autoregressive`.
The `jgen` command lives in `jgen.cli`.
"""

from jgen import bijectors, cnf, data, distributions, parallel, train

__all__ = ["bijectors", "cnf", "data", "distributions", "parallel", "train"]
__version__ = "0.1.0"
