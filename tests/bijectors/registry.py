"""The registry of every jgen bijector, for the property tests in `test_properties.py`.

Each `tests/bijectors/cases_*.py` module defines ``CASES: list[Case]``; this module collects
them all. A new bijector joins the property suite by adding a `Case` to such a module.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp

import tests.bijectors as _pkg


def normal_sampler(scale: float = 1.0):
    """Inputs x ~ N(0, scale²) in the forward domain."""

    def sample(key, shape, dtype):
        return scale * jax.random.normal(key, shape, dtype)

    return sample


def uniform_sampler(low: float, high: float):
    """Inputs x ~ U(low, high), for bijectors whose forward domain is an interval."""

    def sample(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, low, high)

    return sample


@dataclass(frozen=True)
class Interval:
    """The open interval (low, high) that every element of a bijector's input must lie in.

    ``Interval()`` is the whole real line. A bounded interval describes e.g. the forward domain
    of `Logit`, (0, 1), or the inverse domain of `Tanh`, (-1, 1); the numerical tests draw
    points within a few ulps of its edges there.
    """

    low: float = -math.inf
    high: float = math.inf

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"Interval needs low < high, got ({self.low}, {self.high})")
        if math.isinf(self.low) != math.isinf(self.high):
            raise ValueError(
                f"Interval must be the real line or bounded, got ({self.low}, {self.high})"
            )

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low)


REALS = Interval()
UNIT_INTERVAL = Interval(0.0, 1.0)


@dataclass(frozen=True)
class Case:
    """One bijector configuration to property-test.

    make:        builds the (unbound) bijector module.
    event_shape: shape of one event; the tests use a batch of 3 events.
    sample_x:    draws points of the forward domain (the base side).
    context_dim: size of the conditioning vector, or None for unconditional bijectors.
    init_inverse: initialise through ``inverse_and_log_det`` (data-dependent init on data).
    rtol/atol:   float32 tolerances (float64 uses much tighter ones).
    domain:      the valid forward inputs (base side), elementwise; the real line by default.
    codomain:    the valid inverse inputs (data side), elementwise; the real line by default.
    """

    name: str
    make: Callable
    event_shape: tuple[int, ...]
    sample_x: Callable = field(default_factory=normal_sampler)
    context_dim: int | None = None
    init_inverse: bool = False
    rtol: float = 1e-4
    atol: float = 1e-4
    # Log-det tolerance (float32); bijectors whose log-det is an estimate or a sum over many
    # terms may declare a looser one.
    logdet_atol: float = 1e-3
    domain: Interval = REALS
    codomain: Interval = REALS

    def __str__(self) -> str:
        return self.name


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for info in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"{_pkg.__name__}.{info.name}")
            cases.extend(module.CASES)
    names = [c.name for c in cases]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"bijector cases must have unique names; repeated: {sorted(duplicated)}")
    return cases


def make_inputs(case: Case, dtype=jnp.float32, batch: int = 3, seed: int = 0):
    """A batch of forward-domain inputs and (if any) a context, for one case."""
    kx, kc = jax.random.split(jax.random.key(seed))
    x = case.sample_x(kx, (batch, *case.event_shape), dtype)
    context = None
    if case.context_dim is not None:
        context = jax.random.normal(kc, (batch, case.context_dim), dtype)
    return x, context


def init_variables(case: Case, bijector, x, context):
    """The case's variables: ``init`` through the forward map, or, with ``init_inverse``
    (data-dependent initialisation on data), through the inverse at points pushed forward by
    a throwaway default initialisation."""
    if not case.init_inverse:
        return bijector.init(jax.random.key(2), x, context, method="forward_and_log_det")
    throwaway = bijector.init(jax.random.key(1), x, context, method="forward_and_log_det")
    y = bijector.apply(throwaway, x, context, method="forward")
    return bijector.init(jax.random.key(2), y, context, method="inverse_and_log_det")
