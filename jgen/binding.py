"""Direct calls for research code: `init` a model on data, `bind` its variables, call it.

    variables = jgen.init(flow, key, data)            # data-dependent layers see real data
    model = jgen.bind(flow, variables)
    model.log_prob(x)                                 # (B,)
    model.sample(key, 100)                            # (100, *event_shape)
    model.bijector.bijectors[0].inverse(x)            # members are bound too
    jax.grad(lambda v: -jgen.bind(flow, v).log_prob(x).mean())(variables)

A bound object is a view (module, variables, path to a member, default RNGs): every method call
is ``root.apply(variables, ..., method=<the member's method>)``, a pure function of the
variables, so ``jax.jit``, ``vmap`` and ``grad`` see through it whether the object is made
inside or outside the transformed function. Members are reached by attribute and index
(``model.bijector.bijectors[2]``) and use the root's variables (every collection: a residual
flow's ``'spectral'`` vectors included), so no path surgery on the variables is needed.

Every method takes three extra keywords: ``train`` (the mode of layers that differ between
training and evaluation, see `jgen.bijectors.mode`; default: evaluation), ``rngs`` (e.g.
``{'trace': key}`` for stochastic estimators; default: those given to `bind`) and ``mutable``
(collections to write, as in Flax's ``apply``: the call then returns ``(output, updates)``).
"""

from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn

from jgen.bijectors.base import ModulePath, apply_at, mode, submodule
from jgen.typing import Array, PRNGKey
from jgen.validation import check_array, check_finite

__all__ = ["Bound", "bind", "init"]


class Bound:
    """A module (or one of its members) with bound variables; see the module docstring."""

    def __init__(self, root: nn.Module, variables: Any, path: ModulePath = (), rngs: Any = None):
        # Read by jgen.bijectors.to_distrax; a public name so that no other attribute clashes.
        self.jgen_binding = (root, variables, path, rngs)

    @property
    def module(self) -> nn.Module:
        """The (unbound) module this object calls."""
        root, _, path, _ = self.jgen_binding
        return submodule(root, path)

    @property
    def variables(self) -> Any:
        """The root module's variables."""
        return self.jgen_binding[1]

    def _method(self, name: str):
        root, variables, path, default_rngs = self.jgen_binding

        def call(*args, train: bool | None = None, rngs: Any = None, mutable: Any = False, **kw):
            rngs = default_rngs if rngs is None else rngs
            return apply_at(root, variables, path, name, *args, train=train, rngs=rngs,
                            mutable=mutable, **kw)  # fmt: skip

        call.__name__ = name
        call.__doc__ = getattr(type(self.module), name).__doc__
        return call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "jgen_binding":
            raise AttributeError(name)
        root, variables, path, rngs = self.jgen_binding
        module = self.module
        if inspect.isfunction(getattr(type(module), name, None)):
            return self._method(name)
        try:
            value = getattr(module, name)
        except AttributeError:
            # Attributes made in setup() exist on a bound module only.
            value = getattr(submodule(root.bind(variables, rngs=rngs), path), name)
        if isinstance(value, nn.Module):
            return Bound(root, variables, (*path, name), rngs)
        if (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(v, nn.Module) for v in value)
        ):
            return tuple(Bound(root, variables, (*path, name, i), rngs) for i in range(len(value)))
        return value

    def __call__(self, *args, **kwargs):
        return self._method("__call__")(*args, **kwargs)

    def __repr__(self) -> str:
        path = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.jgen_binding[2])
        return f"Bound({type(self.jgen_binding[0]).__name__}{path})"


def bind(module: nn.Module, variables: Any, *, rngs: Any = None) -> Bound:
    """``module`` with ``variables`` (all its collections, e.g. from `init`) bound: call its
    methods directly (``bind(flow, v).log_prob(x)``), reach its members by attribute
    (``.bijector.bijectors[0]``). ``rngs``: default RNG streams of every call (a stochastic
    estimator's ``{'trace': key}``)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"bind: module must be a Flax module, got {type(module).__name__}")
    if not hasattr(variables, "keys"):
        raise TypeError(
            f"bind: variables must be the dict of collections from init (e.g. {{'params': ...}}), "
            f"got {type(variables).__name__}"
        )
    return Bound(module, variables, (), rngs)


def init(
    module: nn.Module,
    key: PRNGKey,
    data: Array,
    context: Array | None = None,
    *,
    train: bool = True,
) -> dict[str, Any]:
    """The variables of ``module``, created on a batch of real ``data``: the one way to
    initialise a model for direct use.

    A flow (a module with ``log_prob``, e.g. `jgen.distributions.Flow`) is initialised through
    ``log_prob(data)``, a bijector through ``inverse_and_log_det(data)``: the data → noise
    direction that data-dependent layers (ActNorm) expect, so they start normalised on
    ``data``. Those layers refuse a degenerate batch (fewer than 2 examples, constant
    features, e.g. ``jnp.zeros``). ``train=True`` (default) initialises in training mode, as
    the trainer does (BatchNorm's running statistics move towards ``data``). ``data`` must be a
    non-empty real floating array; NaN/inf raise (when concrete). Returns every collection
    (``{'params': ..., 'batch_stats': ...}``), ready for `bind`.
    """
    check_array(data, "data")
    check_finite(data, "data")
    method = "log_prob" if hasattr(type(module), "log_prob") else "inverse_and_log_det"

    def run(m, x, context):
        with mode(train=train):
            return getattr(m, method)(x, context)

    return dict(module.init(key, data, context, method=run))
