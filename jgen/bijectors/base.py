"""The bijector contract, composition (`Chain`, `Inverse`) and interop with distrax.

A jgen bijector is a Flax linen module f mapping the base space to the data space. It implements

    forward_and_log_det(x, context=None) -> (y, log|det ∂f/∂x (x)|)
    inverse_and_log_det(y, context=None) -> (x, log|det ∂f⁻¹/∂y (y)|)

with log-determinants summed over the event dimensions, so they have the batch shape
``x.shape[:-event_ndims]``. ``forward``, ``inverse`` and the two log-det functions are derived.
``context`` carries optional conditioning (a batch of vectors); bijectors that do not use it
ignore it.

Parameters live in the Flax variables of the enclosing module, so a flow is used as
``flow.apply(variables, x, method=...)`` and every call is a pure function that jit, vmap and
grad see through. Bijectors whose parameters do not depend on data create them in ``setup``.
Bijectors with data-dependent initialisation (ActNorm) override the compact ``__call__`` below
instead; ``forward_and_log_det``/``inverse_and_log_det`` then call ``self(x, inverse=...)``.

Composition order is distrax's: ``Chain([f, g])`` is f∘g, so its forward applies g first and
its inverse applies f⁻¹ first.

**Modes.** Layers that behave differently in training and evaluation (BatchNorm's batch
statistics, a residual block's log-det estimator) read `is_training()`. The mode is set
explicitly by whoever calls the model: ``Flow.log_prob(x, train=True)``, a bound object's
``method(..., train=True)`` (`jgen.bind`), ``Bijector.__call__(..., train=True)``, or the
context manager `mode` (``with mode(train=True): ...``); without one a call is in evaluation
mode. Whether a collection is mutable only decides whether statistics are *written*, never
which estimator runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import distrax
import flax.linen as nn
import jax.numpy as jnp

from jgen.typing import Array, PRNGKey
from jgen.validation import check_array, check_finite, check_trailing_shape

__all__ = [
    "Bijector",
    "Chain",
    "FromDistrax",
    "Identity",
    "Inverse",
    "apply_at",
    "collect_metrics",
    "is_training",
    "metric_names",
    "mode",
    "sow_metrics",
    "submodule",
    "sum_rightmost",
    "to_distrax",
    "trace_rng",
]

_TRAINING: contextvars.ContextVar[bool] = contextvars.ContextVar("jgen_training", default=False)


@contextlib.contextmanager
def mode(*, train: bool | None) -> Iterator[None]:
    """Run the bijector calls inside the block in training (``train=True``) or evaluation
    (``False``) mode; None keeps the enclosing mode. The mode is read when the model is traced,
    so under ``jax.jit`` it is static: put the ``with`` inside the jitted function (or pass
    ``train=`` to the entry point, e.g. ``Flow.log_prob(x, train=True)``)."""
    if train is None:
        yield
        return
    if not isinstance(train, bool):
        raise TypeError(f"mode: train must be a bool, got {train!r} ({type(train).__name__})")
    token = _TRAINING.set(train)
    try:
        yield
    finally:
        _TRAINING.reset(token)


def is_training() -> bool:
    """The mode set by the innermost enclosing `mode` (or ``train=`` argument of an entry
    point); False (evaluation) when none is set. Layers with train/eval behaviour read it."""
    return _TRAINING.get()


def sum_rightmost(x: Array, ndims: int) -> Array:
    """Sum the ``ndims`` trailing axes of ``x`` (a per-element log-det to a per-event one)."""
    if ndims == 0:
        return x
    return jnp.sum(x, axis=tuple(range(-ndims, 0)))


def trace_rng(module: nn.Module, needs_key: str, instead: str) -> PRNGKey:
    """The PRNG key of a stochastic estimator inside ``module`` (a CNF's trace, a residual
    block's log-det): the ``'trace'`` stream, or ``'params'`` during ``init``. Otherwise a
    ValueError saying that ``needs_key`` needs ``rngs={'trace': key}`` or, ``instead``, a
    deterministic estimator."""
    if module.has_rng("trace"):
        return module.make_rng("trace")
    if module.is_initializing():
        return module.make_rng("params")
    raise ValueError(
        f"{type(module).__name__}: {needs_key} is stochastic and needs a PRNG key: call "
        f"apply(..., rngs={{'trace': key}}), or use {instead}"
    )


#: The key under which layers sow per-example metrics into Flax's ``'intermediates'``.
METRICS_NAME = "layer_metrics"


def sow_metrics(module: nn.Module, metrics: dict[str, Array]) -> None:
    """Report per-example values (batch-shaped arrays) of one call of ``module``: a solver's
    function evaluations, a regulariser. Whoever applies the model with ``'intermediates'``
    mutable gets them by `collect_metrics` (`jgen.distributions.DensityObjective` puts them in
    its metrics and weights them into the loss by name). A layer that reports metrics lists
    their names in a ``metric_names`` attribute (see `metric_names`). Nothing is sown at init."""
    if not module.is_initializing():
        module.sow("intermediates", METRICS_NAME, dict(metrics))


def collect_metrics(intermediates: Any) -> dict[str, Array]:
    """Every metric sown by `sow_metrics` anywhere in ``intermediates`` (the mutable state of
    ``apply(..., mutable=['intermediates'])``), summed over layers and calls, per example."""
    totals: dict[str, Array] = {}

    def walk(node):
        if not hasattr(node, "items"):
            return
        for key, value in node.items():
            if key != METRICS_NAME:
                walk(value)
                continue
            for metrics in value:  # Flax sows a tuple, one entry per call
                for name, v in metrics.items():
                    totals[name] = totals[name] + v if name in totals else v

    walk(intermediates)
    return totals


def metric_names(module: Any) -> set[str]:
    """The names of the metrics that ``module`` and the modules it holds (dataclass fields,
    sequences of modules) declare in ``metric_names`` attributes: what they may sow."""
    names: set[str] = set(getattr(module, "metric_names", ()) or ())
    for field in getattr(module, "__dataclass_fields__", {}):
        if field in ("parent", "name"):
            continue
        value = getattr(module, field, None)
        for member in value if isinstance(value, list | tuple) else (value,):
            if isinstance(member, nn.Module):
                names |= metric_names(member)
    return names


class Bijector(nn.Module):
    """Base class of jgen bijectors (see the module docstring for the contract).

    Subclasses set ``event_ndims`` (a field or a property): the number of trailing axes that form
    one event. Log-dets are summed over exactly those axes.
    """

    def forward_and_log_det(self, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_and_log_det")

    def inverse_and_log_det(self, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        raise NotImplementedError(f"{type(self).__name__} has no inverse_and_log_det")

    #: True for layers that never own Flax variables (permutations, fixed elementwise maps);
    #: `Chain` does not count them when it numbers its members' names.
    parameter_free: ClassVar[bool] = False

    def __call__(
        self,
        x: Array,
        context: Array | None = None,
        *,
        inverse: bool = False,
        train: bool | None = None,
    ) -> tuple[Array, Array]:
        """Dispatch to the forward or inverse direction; returns ``(output, log_det)``.
        ``train`` sets the mode (see `mode`); None keeps the enclosing one."""
        with mode(train=train):
            if inverse:
                return self.inverse_and_log_det(x, context)
            return self.forward_and_log_det(x, context)

    # Derived methods -----------------------------------------------------------------------
    def forward(self, x: Array, context: Array | None = None) -> Array:
        return self.forward_and_log_det(x, context)[0]

    def inverse(self, y: Array, context: Array | None = None) -> Array:
        return self.inverse_and_log_det(y, context)[0]

    def forward_log_det_jacobian(self, x: Array, context: Array | None = None) -> Array:
        return self.forward_and_log_det(x, context)[1]

    def inverse_log_det_jacobian(self, y: Array, context: Array | None = None) -> Array:
        return self.inverse_and_log_det(y, context)[1]


class Identity(Bijector):
    """y = x, log-det 0."""

    parameter_free: ClassVar[bool] = True
    event_ndims: int = 1

    def forward_and_log_det(self, x, context=None):
        return x, jnp.zeros(x.shape[: x.ndim - self.event_ndims], x.dtype)

    def inverse_and_log_det(self, y, context=None):
        return self.forward_and_log_det(y, context)


class Chain(Bijector):
    """Composition ``Chain([f1, ..., fn]) = f1 ∘ ... ∘ fn`` (distrax order).

    forward:  x → fn → ... → f1 → y,   log|det J| = Σ_i log|det J_{f_i}|
    inverse:  y → f1⁻¹ → ... → fn⁻¹ → x.

    ``context`` is passed to every member. Members may change the event shape (squeeze). The
    chain's ``event_ndims`` is the largest of its members'; a member acting on fewer axes (an
    elementwise map with ``event_ndims=0``) has its log-det summed up to the chain's event axes.

    **Parameter names.** A member is named ``f"{j}_{kind}"``: ``kind`` is its class name in
    snake case (``act_norm``, ``affine_coupling``), ``j`` the number of members before it that
    may own variables (`Bijector.parameter_free` is False), so inserting a permutation does not
    rename any parameter. A parameter-free member is named after the next counted index
    (``2_reverse``), with ``_1``, ``_2``, ... when several share it. A member given an explicit
    ``name=`` keeps it. Chains nest: ``params['bijector']['1_chain']['0_affine_coupling']``.
    """

    # Members keep the names given in __post_init__ (Flax renames adopted modules by default).
    preserve_adopted_names: ClassVar[bool] = True
    bijectors: Sequence[Bijector]

    def __post_init__(self):
        if not self.bijectors:
            raise ValueError("Chain needs at least one bijector, got an empty sequence")
        # distrax bijectors may be listed directly; they are wrapped to sum their log-dets over
        # the chain's event axes.
        jgen_ndims = [_event_ndims(b) for b in self.bijectors if not _is_distrax(b)]
        ndims = max(jgen_ndims, default=max(_event_ndims(b) for b in self.bijectors))
        wrapped = tuple(
            FromDistrax(b, event_ndims=ndims) if _is_distrax(b) else b for b in self.bijectors
        )
        object.__setattr__(self, "bijectors", _named_members(wrapped))
        super().__post_init__()

    @property
    def event_ndims(self) -> int:
        return max(_event_ndims(b) for b in self.bijectors)

    def _run(self, x, context, members, method: str):
        batch_ndim = x.ndim - self.event_ndims
        if batch_ndim < 0:
            raise ValueError(
                f"Chain: input of shape {x.shape} has fewer axes than the chain's event_ndims "
                f"({self.event_ndims})"
            )
        total = jnp.zeros(x.shape[:batch_ndim], x.dtype)
        for b in members:
            x, ld = getattr(b, method)(x, context)
            total = total + sum_rightmost(ld, ld.ndim - batch_ndim)
        return x, total

    def forward_and_log_det(self, x, context=None):
        return self._run(x, context, reversed(self.bijectors), "forward_and_log_det")

    def inverse_and_log_det(self, y, context=None):
        return self._run(y, context, self.bijectors, "inverse_and_log_det")


def _kind(module: nn.Module) -> str:
    """The snake-case class name: ActNorm → act_norm, LULinear → lu_linear, CNF → cnf."""
    name = type(module).__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _named_members(members: Sequence[Any]) -> tuple[Any, ...]:
    """``members`` with the readable names of `Chain` (see its docstring). Members that are
    already attached to a parent module (built inside another module's setup) or carry an
    explicit name are left as they are."""
    named, used, index = [], set(), 0
    for member in members:
        free = bool(getattr(member, "parameter_free", False))
        base = f"{index}_{_kind(member)}"
        name, n = base, 0
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        if not free:
            index += 1
        if isinstance(member, nn.Module) and member.parent is None and member.name is None:
            member = member.clone(parent=None, name=name)
        named.append(member)
    return tuple(named)


class Inverse(Bijector):
    """The inverse f⁻¹ of a bijector f: its forward is f's inverse and vice versa."""

    bijector: Bijector

    @property
    def parameter_free(self) -> bool:  # type: ignore[override]
        """The inverse of a parameter-free bijector has no variables either."""
        return bool(getattr(self.bijector, "parameter_free", False))

    @property
    def event_ndims(self) -> int:
        return _event_ndims(self.bijector)

    def forward_and_log_det(self, x, context=None):
        return self.bijector.inverse_and_log_det(x, context)

    def inverse_and_log_det(self, y, context=None):
        return self.bijector.forward_and_log_det(y, context)


class FromDistrax(Bijector):
    """Use a ``distrax.Bijector`` inside jgen (e.g. in a ``Chain``).

    The distrax bijector's own arrays are constants to jgen (they are not Flax parameters).
    Its log-det, defined over ``bijector.event_ndims_in`` axes, is summed up to ``event_ndims``.
    ``context`` is ignored.
    """

    parameter_free: ClassVar[bool] = True
    bijector: Any  # distrax.Bijector (kept as Any: Flax fields need no type check)
    event_ndims: int = 1

    def __post_init__(self):
        if not isinstance(self.bijector, distrax.Bijector):
            raise TypeError(
                f"FromDistrax expects a distrax.Bijector, got {type(self.bijector).__name__}"
            )
        if self.bijector.event_ndims_in > self.event_ndims:
            raise ValueError(
                f"the distrax bijector acts on events of {self.bijector.event_ndims_in} axes, "
                f"more than event_ndims={self.event_ndims}"
            )
        super().__post_init__()

    def _extra(self) -> int:
        return self.event_ndims - self.bijector.event_ndims_in

    def forward_and_log_det(self, x, context=None):
        y, ld = self.bijector.forward_and_log_det(x)
        return y, sum_rightmost(_broadcast_log_det(ld, x, self.bijector), self._extra())

    def inverse_and_log_det(self, y, context=None):
        x, ld = self.bijector.inverse_and_log_det(y)
        return x, sum_rightmost(_broadcast_log_det(ld, y, self.bijector), self._extra())


def _broadcast_log_det(ld: Array, x: Array, bijector: distrax.Bijector) -> Array:
    # Constant-Jacobian distrax bijectors may return a log-det that is not yet broadcast.
    shape = x.shape[: x.ndim - bijector.event_ndims_in]
    return jnp.broadcast_to(ld, shape)


ModulePath = tuple[str | int, ...]


def submodule(module: Any, path: ModulePath) -> Any:
    """The member of ``module`` reached by ``path``: a name is an attribute, an int indexes a
    sequence (``('bijector', 'bijectors', 2)`` is ``module.bijector.bijectors[2]``)."""
    for step in path:
        module = module[step] if isinstance(step, int) else getattr(module, step)
    return module


def apply_at(
    root: nn.Module,
    variables: Any,
    path: ModulePath,
    method: str,
    *args: Any,
    train: bool | None = None,
    rngs: Any = None,
    mutable: Any = False,
    **kwargs: Any,
) -> Any:
    """``submodule(root, path).method(*args, **kwargs)`` with ``root``'s ``variables`` bound, in
    the mode ``train`` (None: the enclosing one): a pure function of the variables, as
    ``root.apply``, so jit, vmap and grad see through it. Nested members need no path surgery
    on the variables (``{'params': variables['params']['bijector']}``)."""

    def run(module, *args, **kwargs):
        with mode(train=train):
            return getattr(submodule(module, path), method)(*args, **kwargs)

    return root.apply(variables, *args, method=run, rngs=rngs, mutable=mutable, **kwargs)


class _BoundBijector(distrax.Bijector):
    """A jgen bijector with bound variables, seen as a ``distrax.Bijector`` (evaluation mode).

    The bijector is ``submodule(root, path)`` and ``variables`` are the root's, so a flow's
    bijector is used with the flow's own variables. Inputs are checked at this boundary (not
    inside the jgen bijector): at least ``event_ndims`` axes, the event shape where the bijector
    declares one, a real floating dtype, a non-empty batch, and, when called eagerly, finite
    values (under jit only the static checks run, at trace time).
    """

    def __init__(self, root, variables, path: ModulePath, context, event_ndims, rngs=None):
        super().__init__(event_ndims_in=event_ndims)
        self._root, self._variables, self._path, self._rngs = root, variables, path, rngs
        self._bijector = submodule(root, path)
        self._context = context
        self._input_shapes = {
            "x": _input_event_shape(self._bijector, inverse=False),
            "y": _input_event_shape(self._bijector, inverse=True),
        }

    def _check(self, x: Array, name: str) -> None:
        label = f"to_distrax({type(self._bijector).__name__}): {name}"
        check_array(x, label, min_ndim=self.event_ndims_in)
        if self._input_shapes[name] is not None:
            check_trailing_shape(x, label, self._input_shapes[name], broadcastable=True)
        check_finite(x, label)

    def _call(self, method: str, x: Array):
        root, variables, path = self._root, self._variables, self._path
        return apply_at(root, variables, path, method, x, self._context, train=False,
                        rngs=self._rngs)  # fmt: skip

    def forward_and_log_det(self, x):
        self._check(x, "x")
        return self._call("forward_and_log_det", x)

    def inverse_and_log_det(self, y):
        self._check(y, "y")
        return self._call("inverse_and_log_det", y)


def _input_event_shape(bijector: Any, *, inverse: bool) -> tuple[int, ...] | None:
    """The trailing shape the input of ``bijector``'s forward (or inverse) must end in, where
    the member that first sees the input declares an ``event_shape``; else None (unchecked)."""
    if isinstance(bijector, Chain):
        members = bijector.bijectors
        return _input_event_shape(members[0] if inverse else members[-1], inverse=inverse)
    if isinstance(bijector, Inverse):
        return _input_event_shape(bijector.bijector, inverse=not inverse)
    shape = getattr(bijector, "event_shape", None)
    if isinstance(shape, Sequence) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        return tuple(shape)
    return None


def to_distrax(
    bijector: Any,
    variables: Any = None,
    *,
    context: Array | None = None,
    event_ndims: int | None = None,
) -> distrax.Bijector:
    """A ``distrax.Bijector`` with bound variables, usable anywhere distrax expects one, e.g.
    ``distrax.Transformed(base, to_distrax(flow, variables))``.

    ``bijector`` is a jgen bijector with its own ``variables`` (from ``bijector.init``), a
    module holding one as ``.bijector`` (a `jgen.distributions.Flow`) with *its* variables (no
    path surgery), or a bound object from `jgen.bind` (then no ``variables``), e.g.
    ``to_distrax(jgen.bind(flow, variables).bijector.bijectors[0])``. It runs in evaluation
    mode. Its inputs are checked (rank, the event shape the bijector declares, real floating
    dtype, non-empty; NaN/inf only when called eagerly, never under jit), with errors naming
    what was expected and what was given.
    """
    binding = getattr(bijector, "jgen_binding", None)
    rngs = None
    if binding is not None:
        if variables is not None:
            raise TypeError("to_distrax: a bound object (jgen.bind) already has its variables")
        root, variables, path, rngs = binding
    elif isinstance(bijector, Bijector):
        root, path = bijector, ()
    elif isinstance(getattr(bijector, "bijector", None), Bijector):
        root, path = bijector, ("bijector",)
    else:
        raise TypeError(
            "to_distrax expects a jgen Bijector, a module with a .bijector (a Flow) or a bound "
            f"object from jgen.bind, got {type(bijector).__name__}"
        )
    if variables is None:
        raise TypeError(f"to_distrax({type(bijector).__name__}): variables are required")
    if event_ndims is None:
        event_ndims = _event_ndims(submodule(root, path))
    return _BoundBijector(root, variables, path, context, event_ndims, rngs)


def _is_distrax(b: Any) -> bool:
    return isinstance(b, distrax.Bijector)


def _event_ndims(b: Any) -> int:
    if isinstance(b, distrax.Bijector):
        return b.event_ndims_in
    n = getattr(b, "event_ndims", None)
    if n is None:
        raise AttributeError(f"{type(b).__name__} does not declare event_ndims")
    return int(n)
