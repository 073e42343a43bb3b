"""jgen: deep generative models in JAX.

Subpackages: `bijectors` (composable bijectors with log-dets: RealNVP, planar and radial,
residual flows, ...), `cnf` (continuous normalizing flows on diffrax, trace estimators),
`distributions` (flows, dequantisation, the likelihood objective), `data`, `train` (the shared
trainer), `parallel` (data-parallel sharding), and the model families `flow_matching`, `vae`,
`vi`, `gan`, `seq2seq`, `autoregressive`. Each is imported on first use (``jgen.bijectors``
works after ``import jgen``), so that the `jgen` command (`jgen.cli`) starts without loading
JAX.
"""

import importlib

__all__ = ["bijectors", "cnf", "data", "distributions", "parallel", "train"]
__version__ = "0.1.0"

_SUBPACKAGES = frozenset(
    {*__all__, "flow_matching", "vae", "vi", "gan", "seq2seq", "autoregressive", "records"}
)


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"jgen.{name}")
    raise AttributeError(f"module 'jgen' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBPACKAGES})
