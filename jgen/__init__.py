"""jgen: deep generative models in JAX.

Subpackages: `bijectors` (composable bijectors with log-dets: RealNVP, planar and radial,
residual flows, ...), `cnf` (continuous normalizing flows on diffrax, trace estimators),
`distributions` (flows, dequantisation), `data`, `train` (the shared trainer), `parallel`
(data-parallel sharding), and the model families `flows` (maximum likelihood:
`DensityObjective`), `flow_matching`, `vae`, `vi`, `gan`, `seq2seq`, `autoregressive`. Each
is imported on first use (``jgen.bijectors`` works after ``import jgen``), so that the `jgen`
command (`jgen.cli`) starts without loading JAX. `jgen.init`, `jgen.bind` and `jgen.Bound`
(from `jgen.binding`) are the direct-call API for research code: see docs/using_jgen.md.
"""

import importlib

__all__ = [
    "Bound",
    "bijectors",
    "bind",
    "cnf",
    "data",
    "distributions",
    "flows",
    "init",
    "parallel",
    "train",
]
__version__ = "0.1.0"

_SUBPACKAGES = frozenset(
    {
        "bijectors",
        "cnf",
        "data",
        "distributions",
        "flows",
        "parallel",
        "train",
        "flow_matching",
        "vae",
        "vi",
        "gan",
        "seq2seq",
        "autoregressive",
        "records",
    }
)
_DIRECT_CALLS = frozenset({"Bound", "bind", "init"})  # jgen.binding


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"jgen.{name}")
    if name in _DIRECT_CALLS:
        return getattr(importlib.import_module("jgen.binding"), name)
    raise AttributeError(f"module 'jgen' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBPACKAGES, *_DIRECT_CALLS})
