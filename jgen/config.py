"""Configs as code: finding ``experiments/configs/*.py``, choosing a variant, applying overrides.

A config module defines ``get_config(arg: str | None = None, smoke: bool = False) ->
ConfigDict`` and optionally ``ARGS`` (the values ``arg`` may take, e.g. the 2-D toy names).
An experiment is named ``module`` or ``module:arg`` (``realnvp_2d:moons``), or given as a path
to a ``.py`` file. Overrides are ``dotted.key=value`` with Python literals as values; configs
are locked, so an unknown key is an error, not a silent no-op.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from ml_collections import ConfigDict

__all__ = [
    "SMOKE_TRAIN",
    "ConfigError",
    "apply_overrides",
    "config_dir",
    "describe_experiments",
    "list_experiments",
    "load_experiment_config",
    "shared_config_module",
    "smoke_variant",
]


#: The smoke variant's loop: a few steps that still reach an evaluation and a checkpoint.
SMOKE_TRAIN = dict(steps=3, log_every=1, eval_every=2, checkpoint_every=2)
# Modules of the configs package that are not experiments (besides names starting with "_").
NOT_EXPERIMENTS = ("common",)


def smoke_variant(
    c: ConfigDict,
    *,
    batch_size: int,
    eval_batch_size: int,
    n_train: int | None = None,
    n_test: int | None = None,
) -> ConfigDict:
    """Turn ``c`` (in place, and returned) into its smoke variant's loop: `SMOKE_TRAIN`, the
    given batch sizes, no learning-rate warm-up (where the optimiser has one) and, for generated
    data sets, ``n_train`` / ``n_test`` examples. The one place these settings are written; a
    config shrinks its own model on top (experiments/configs/common.py re-exports this)."""
    c.train.update(SMOKE_TRAIN, batch_size=batch_size, eval_batch_size=eval_batch_size)
    if "warmup_steps" in c.get("optim", {}):
        c.optim.warmup_steps = 0
    if n_train is not None:
        c.data.n_train = n_train
    if n_test is not None:
        c.data.n_test = n_test
    return c


class ConfigError(ValueError):
    """A config that cannot be used as asked: unknown experiment, key, variant or value type."""


def config_dir() -> Path:
    """``$JGEN_CONFIG_DIR``, else the folder of the ``experiments.configs`` package (shipped
    with the wheel, or the repository's ``experiments/configs``)."""
    env = os.environ.get("JGEN_CONFIG_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("experiments.configs")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    # A source checkout whose editable install predates the configs package: use the
    # repository's folder, and make `experiments.configs.common` importable for its modules.
    repository = Path(__file__).resolve().parent.parent
    if (repository / "experiments" / "configs" / "__init__.py").exists():
        sys.path.insert(0, str(repository))
        return repository / "experiments" / "configs"
    raise FileNotFoundError(
        "the experiments.configs package is not installed; reinstall jgen or set "
        "JGEN_CONFIG_DIR to your experiments/configs"
    )


def _load_module(path: Path, *, require_get_config: bool = True) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"jgen_config_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load config file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if require_get_config and not hasattr(module, "get_config"):
        raise AttributeError(f"config file {path} does not define get_config()")
    return module


def shared_config_module(name: str) -> ModuleType:
    """A helper module of the config directory (``_name.py``, e.g. settings shared by a group of
    configs), loaded by path as the configs themselves are."""
    return _load_module(config_dir() / f"{name}.py", require_get_config=False)


def _modules() -> dict[str, Path]:
    root = config_dir()
    if not root.is_dir():
        raise FileNotFoundError(
            f"config directory {root} not found; set JGEN_CONFIG_DIR to your experiments/configs"
        )
    return {
        p.stem: p
        for p in sorted(root.glob("*.py"))
        if not p.name.startswith("_") and p.stem not in NOT_EXPERIMENTS
    }


def _static_args(path: Path) -> tuple[str, tuple[str, ...] | None]:
    """A config module's docstring and ``ARGS``, read without running it when ``ARGS`` is a
    literal (so `jgen list` does not import the numerical stack); None when it is computed."""
    tree = ast.parse(path.read_text(), str(path))
    args: tuple[str, ...] | None = ()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ARGS" for t in node.targets
        ):
            try:
                args = tuple(ast.literal_eval(node.value))
            except ValueError:
                args = None
    return ast.get_docstring(tree) or "", args


def describe_experiments() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Experiment module -> (the first line of its docstring, the variants it takes after ':')."""
    described = {}
    for stem, path in _modules().items():
        doc, args = _static_args(path)
        if args is None:
            args = tuple(getattr(_load_module(path), "ARGS", ()))
        described[stem] = (_first_sentence(doc), args)
    return described


def _first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence (not the one of "et al. 2019")."""
    paragraph = " ".join(text.split("\n\n")[0].split())
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z`])", paragraph)[0]
    return sentence if len(sentence) <= 110 else sentence[:109].rstrip() + "…"


def list_experiments() -> list[str]:
    """Every runnable experiment name (``module`` or ``module:arg``)."""
    names = []
    for stem, (_, args) in describe_experiments().items():
        names.extend(f"{stem}:{a}" for a in args) if args else names.append(stem)
    return names


def _did_you_mean(word: str, choices, prefix: str = "") -> str:
    """``"; did you mean 'x'?"`` for the choices closest to a mistyped ``word`` (or "")."""
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(prefix + c) for c in close)}?" if close else ""


def load_experiment_config(
    name: str, overrides: list[str] | tuple[str, ...] = (), *, smoke: bool = False
) -> ConfigDict:
    """The locked config of experiment ``name`` with ``overrides`` applied."""
    stem, _, arg = name.partition(":")
    if stem.endswith(".py") or os.sep in stem:
        path = Path(stem)
        if not path.exists():
            raise ConfigError(f"config file {path} not found")
    else:
        modules = _modules()
        if stem not in modules:
            raise ConfigError(
                f"unknown experiment {name!r}{_did_you_mean(stem, modules) or ';'} known: "
                f"{', '.join(modules)} (`jgen list` describes them and their variants)"
            )
        path = modules[stem]
    try:
        module = _load_module(path)
    except (SyntaxError, ImportError, AttributeError) as e:
        raise ConfigError(f"config file {path} cannot be loaded: {type(e).__name__}: {e}") from e
    args = getattr(module, "ARGS", None)
    if args and arg not in args:
        raise ConfigError(
            f"experiment {stem!r} takes one of {', '.join(args)} after ':', got {arg or 'none'!r}"
            + _did_you_mean(arg, args)
        )
    if not args and arg:
        raise ConfigError(f"experiment {stem!r} takes no ':' argument, got {arg!r}")
    config = module.get_config(arg or None, smoke=smoke)
    _add_train_defaults(config)
    config.lock()
    apply_overrides(config, overrides)
    return config


def _add_train_defaults(config: ConfigDict) -> None:
    """Every `jgen.train.TrainConfig` setting a config does not set, at its default, so that
    any of them can be overridden (``train.num_seeds=3``, ``train.num_devices=2``, ...)."""
    import dataclasses

    from jgen.train import TrainConfig

    if "train" not in config or not isinstance(config.train, ConfigDict):
        return
    for field in dataclasses.fields(TrainConfig):
        if field.name not in config.train and field.default is not dataclasses.MISSING:
            config.train[field.name] = field.default


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: ConfigDict, overrides) -> ConfigDict:
    """Apply ``key.sub=value`` strings to a locked config, with clear errors."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        parent = config
        *path, leaf = key.split(".")
        for part in path:
            if part not in parent or not isinstance(parent[part], ConfigDict):
                sections = [k for k, v in parent.items() if isinstance(v, ConfigDict)]
                raise ConfigError(
                    f"unknown config section {part!r} in override {item!r}"
                    + _did_you_mean(part, sections)
                )
            parent = parent[part]
        if leaf not in parent:
            known = ", ".join(sorted(parent.keys()))
            prefix = "".join(f"{part}." for part in path)
            hint = _did_you_mean(leaf, parent.keys(), prefix)
            raise ConfigError(f"unknown config key {key!r}{hint} (keys here: {known})")
        value = _parse_value(text)
        current = parent[leaf]
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        try:
            parent[leaf] = value
        except TypeError as e:
            raise ConfigError(
                f"override {item!r}: expected a value of type {type(current).__name__}, got "
                f"{type(value).__name__} ({e})"
            ) from None
    return config
