"""Checks of user input at jgen's public entry points.

Every check raises an error that says what was expected and what was given, in the form
``"<name>: expected ..., got ..."``. Bad values raise `ValidationError` (a ``ValueError``); bad
types and dtypes raise `ValidationTypeError` (a ``ValidationError`` and a ``TypeError``), so
``except ValueError`` and ``except TypeError`` both keep working and the CLI can report any of
them as a clean error.

Cost under ``jax.jit``: checks of static properties (rank, shape, dtype, an empty batch) run
once, at trace time, and cost nothing per call. Checks of values (NaN, infinities, ranges) need
concrete arrays: they run on eager calls and are skipped for ``jax.core.Tracer`` s, so jitted
code pays nothing for them. Data is therefore checked at the boundary, before it enters jit
(`check_dataset` at the start of ``fit``).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ValidationError",
    "ValidationTypeError",
    "check_array",
    "check_choice",
    "check_dataset",
    "check_finite",
    "check_float_dtype",
    "check_int",
    "check_levels",
    "check_number",
    "check_positive_int",
    "check_trailing_shape",
    "is_concrete",
]

_FLOAT_NAMES = "float16, bfloat16, float32 or float64"


class ValidationError(ValueError):
    """Bad input caught at a public entry point; the message names expected and given."""


class ValidationTypeError(ValidationError, TypeError):
    """Input of the wrong type or dtype (also a ``TypeError``)."""


def is_concrete(x: Any) -> bool:
    """False for values being traced by jit/vmap/grad, whose contents are not known yet."""
    return not isinstance(x, jax.core.Tracer)


def _shape_str(shape: Sequence[int]) -> str:
    return str(tuple(int(d) for d in shape))


def _events_str(event_shape: Sequence[int]) -> str:
    return "(..., " + ", ".join(str(int(d)) for d in event_shape) + ")"


def _axes(n: int) -> str:
    return f"{n} axis" if n == 1 else f"{n} axes"


def check_float_dtype(dtype: Any, name: str, *, advice: str = "") -> None:
    """``dtype`` must be a real floating-point dtype (complex is rejected explicitly).

    ``advice`` is appended to the message for non-complex, non-floating dtypes.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValidationTypeError(
            f"{name}: expected a real floating-point dtype ({_FLOAT_NAMES}), got {dtype}: "
            "complex values are not supported (pass the real part, or real and imaginary "
            "parts as separate features)"
        )
    raise ValidationTypeError(
        f"{name}: expected a real floating-point dtype ({_FLOAT_NAMES}), got {dtype}{advice}"
    )


_CAST_ADVICE = (
    " (cast it, e.g. x.astype(jnp.float32); integer data is dequantised by "
    "DensityObjective(num_levels=...))"
)


def _check_real_dtype(dtype: Any, name: str) -> None:
    """Integers, booleans and real floats are accepted; complex and non-numeric are not."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValidationTypeError(
            f"{name}: expected a real (integer or floating-point) dtype, got {dtype}: complex "
            "values are not supported"
        )
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
        raise ValidationTypeError(
            f"{name}: expected a real (integer or floating-point) dtype, got {dtype}"
        )


def check_trailing_shape(
    x: Any, name: str, event_shape: Sequence[int], *, broadcastable: bool = False
) -> None:
    """``x.shape`` must end in ``event_shape``; with ``broadcastable``, a 1 in ``event_shape``
    matches any size (for parameters that broadcast over the event)."""
    event_shape = tuple(int(d) for d in event_shape)
    shape = tuple(x.shape)
    k = len(event_shape)
    tail = shape[len(shape) - k :] if k else ()
    ok = len(shape) >= k and all(
        e == s or (broadcastable and e == 1) for e, s in zip(event_shape, tail, strict=True)
    )
    if not ok:
        raise ValidationError(
            f"{name}: expected shape {_events_str(event_shape)} ending in the event shape "
            f"{event_shape}, got shape {_shape_str(shape)}"
        )


def check_array(
    x: Any,
    name: str,
    *,
    event_shape: Sequence[int] | None = None,
    min_ndim: int = 0,
    floating: bool = True,
    allow_empty: bool = False,
) -> None:
    """Static checks of an array argument (free under jit: they run at trace time).

    ``x`` must be an array (jax or numpy) with at least ``min_ndim`` axes, ending in
    ``event_shape`` if given, of a real floating-point dtype if ``floating`` (else of any real
    dtype: integers are allowed, complex never), and with at least one element unless
    ``allow_empty``. Values are not looked at: see `check_finite`.
    """
    if not (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "ndim")):
        raise ValidationTypeError(
            f"{name}: expected an array (jax.Array or numpy.ndarray), got {type(x).__name__}"
        )
    if event_shape is not None:
        event_shape = tuple(event_shape)
        if x.ndim < max(min_ndim, len(event_shape)):
            raise ValidationError(
                f"{name}: expected shape {_events_str(event_shape)} ending in the event shape "
                f"{event_shape} (at least {_axes(max(min_ndim, len(event_shape)))}), got shape "
                f"{_shape_str(x.shape)}"
            )
        check_trailing_shape(x, name, event_shape)
    elif x.ndim < min_ndim:
        raise ValidationError(
            f"{name}: expected at least {_axes(min_ndim)}, got shape {_shape_str(x.shape)} "
            f"({_axes(x.ndim)})"
        )
    if floating:
        check_float_dtype(x.dtype, name, advice=_CAST_ADVICE)
    else:
        _check_real_dtype(x.dtype, name)
    if not allow_empty and math.prod(x.shape) == 0:
        raise ValidationError(
            f"{name}: expected a non-empty batch, got shape {_shape_str(x.shape)} (0 elements)"
        )


def _nonfinite_counts(x: Any) -> tuple[int, int, int] | None:
    """(non-finite, NaN, inf) counts of a concrete array; None where values are unknown."""
    if isinstance(x, jax.core.Tracer):
        return None
    if isinstance(x, np.ndarray | np.generic):
        xp, arr = np, x
    elif isinstance(x, jax.Array):
        xp, arr = jnp, x
    else:
        return None
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        return 0, 0, 0
    # A concrete array closed over by a function being traced (``jax.jit(lambda p:
    # flow.apply(p, x))``) is still concrete, but jnp operations on it would be staged into
    # the trace: evaluate them now.
    with jax.ensure_compile_time_eval():
        if bool(xp.all(xp.isfinite(arr))):  # the common case: one reduction, one scalar back
            return 0, 0, 0
        nan = int(xp.sum(xp.isnan(arr)))
        inf = int(xp.sum(xp.isinf(arr)))
    return nan + inf, nan, inf


def check_finite(x: Any, name: str) -> None:
    """Raise if a concrete ``x`` holds NaN or infinite values (naming how many).

    Tracers (inside ``jax.jit``, ``vmap``, ``grad``) are skipped: under jit nothing is checked
    and nothing is paid. Integer and boolean arrays are always finite.
    """
    counts = _nonfinite_counts(x)
    if counts is None or counts[0] == 0:
        return
    bad, nan, inf = counts
    raise ValidationError(
        f"{name}: expected finite values, got {bad} non-finite value(s) ({nan} NaN, {inf} inf) "
        f"in an array of shape {_shape_str(x.shape)}"
    )


def check_int(value: Any, name: str, *, minimum: int = 0, owner: str | None = None) -> int:
    """``value`` as an int, if it is an int >= ``minimum`` (numpy integers too, booleans not).

    The one integer check of jgen: bijector and network hyper-parameters (``event_ndims``,
    widths, counts) and call arguments (``num_samples``) use it. ``owner`` prefixes the message.
    """
    prefix = f"{owner}: " if owner else ""
    expected = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
    if isinstance(value, bool | np.bool_):
        raise ValidationTypeError(f"{prefix}{name} must be {expected}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValidationTypeError(
            f"{prefix}{name} must be {expected}, got {value!r} ({type(value).__name__})"
        ) from None
    if number < minimum:
        raise ValidationError(f"{prefix}{name} must be {expected}, got {number}")
    return number


_INTERVALS = {  # name: (description, lower bound, lower bound included, upper bound)
    "positive": ("a positive number", 0.0, False, np.inf),
    "non_negative": ("a non-negative number", 0.0, True, np.inf),
    "open_unit": ("a number in (0, 1)", 0.0, False, 1.0),
    "unit": ("a number in [0, 1)", 0.0, True, 1.0),
}


def check_number(value: Any, name: str, *, interval: str = "positive", owner: str) -> float:
    """``value`` if it is a real number (not a bool) in ``interval``: 'positive' (0, inf),
    'non_negative' [0, inf), 'open_unit' (0, 1) or 'unit' [0, 1); NaN and infinities never
    pass. ValidationError naming ``owner`` otherwise. The one check of real hyper-parameters
    (scales, coefficients, tolerances, learning rates)."""
    expected, lower, closed, upper = _INTERVALS[interval]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{owner}: {name} must be {expected}, got {value!r}")
    above = lower <= value if closed else lower < value
    if not (above and value < upper):
        raise ValidationError(f"{owner}: {name} must be {expected}, got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str], *, owner: str) -> Any:
    """``value`` if it is one of ``choices``; ValidationError naming ``owner`` otherwise."""
    if value not in choices:
        raise ValidationError(f"{owner}: {name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int, if it is a positive int (numpy integers too, booleans not)."""
    return check_int(value, name, minimum=1)


def _check_split(name: str, split: str, data: Any, num_levels: int | None) -> None:
    where = f"dataset {name!r}, {split} split"
    if not (hasattr(data, "shape") and hasattr(data, "dtype")):
        raise ValidationTypeError(f"{where}: expected an array, got {type(data).__name__}")
    if data.ndim < 1 or data.shape[0] == 0:
        raise ValidationError(
            f"{where}: expected at least 1 example, got shape {_shape_str(data.shape)}"
        )
    _check_real_dtype(data.dtype, where)
    if num_levels is None:
        check_finite(np.asarray(data), where)
        return
    check_levels(data, where, num_levels)


def check_levels(x: Any, name: str, num_levels: int) -> None:
    """A concrete ``x`` must hold the integer levels ``0..num_levels - 1`` (values only: shapes
    are the caller's; tracers are skipped, as everywhere in this module). Integer dtypes that
    cannot leave that range (e.g. uint8 with 256 levels) are accepted without reading values."""
    if not is_concrete(x):
        return
    data = np.asarray(x)
    if jnp.issubdtype(data.dtype, jnp.integer):
        info = np.iinfo(data.dtype)
        if info.min >= 0 and info.max <= num_levels - 1:
            return
    elif jnp.issubdtype(data.dtype, jnp.floating):
        check_finite(data, name)
        fractional = data[data != np.floor(data)]
        if fractional.size:
            raise ValidationError(
                f"{name}: expected integer levels 0..{num_levels - 1} (num_levels={num_levels}), "
                f"got {fractional.size} non-integer value(s), e.g. {fractional.flat[0]}"
            )
    low, high = data.min(), data.max()
    if low < 0 or high > num_levels - 1:
        raise ValidationError(
            f"{name}: expected integer levels 0..{num_levels - 1} (num_levels={num_levels}), "
            f"got values in {low}..{high}"
        )


def check_dataset(dataset: Any, *, batch_size: int | None = None) -> None:
    """Check a `jgen.data.Dataset` on the host before anything is compiled.

    Every split (train, test, and valid if present) must hold at least one example of a real
    dtype; continuous data (``num_levels`` None) must be finite; discrete data must hold the
    levels ``0..num_levels - 1``; ``batch_size``, if given, must not exceed the train split.
    These checks read every value once (numpy, on the host).
    """
    name = getattr(dataset, "name", type(dataset).__name__)
    num_levels = getattr(dataset, "num_levels", None)
    splits = [("train", dataset.train), ("test", dataset.test)]
    if getattr(dataset, "valid", None) is not None:
        splits.append(("valid", dataset.valid))
    for split, data in splits:
        _check_split(name, split, data, num_levels)
    if batch_size is not None and batch_size > len(dataset.train):
        n = len(dataset.train)
        raise ValidationError(
            f"batch_size: expected at most the {n} examples of the train split of dataset "
            f"{name!r}, got {batch_size}"
        )
