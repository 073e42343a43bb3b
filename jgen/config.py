"""Configs as code: finding ``experiments/configs/*.py``, choosing a variant, applying overrides.

A config module defines ``get_config(arg: str | None = None, smoke: bool = False) ->
ConfigDict`` and optionally ``ARGS`` (the values ``arg`` may take, e.g. the 2-D toy names).
An experiment is named ``module`` or ``module:arg`` (``realnvp_2d:moons``), or given as a path
to a ``.py`` file. Overrides are ``dotted.key=value`` with Python literals as values; configs
are locked, so an unknown key is an error, not a silent no-op.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path
from types import ModuleType

from ml_collections import ConfigDict

__all__ = [
    "ConfigError",
    "apply_overrides",
    "config_dir",
    "list_experiments",
    "load_experiment_config",
]


class ConfigError(ValueError):
    """A config that cannot be used as asked: unknown experiment, key, variant or value type."""


def config_dir() -> Path:
    """``$JGEN_CONFIG_DIR``, else the repository's ``experiments/configs``."""
    env = os.environ.get("JGEN_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "experiments" / "configs"


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"jgen_config_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load config file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config file {path} does not define get_config()")
    return module


def _modules() -> dict[str, Path]:
    root = config_dir()
    if not root.is_dir():
        raise FileNotFoundError(
            f"config directory {root} not found; set JGEN_CONFIG_DIR to your experiments/configs"
        )
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.name.startswith("_")}


def list_experiments() -> list[str]:
    """Every runnable experiment name (``module`` or ``module:arg``)."""
    names = []
    for stem, path in _modules().items():
        args = getattr(_load_module(path), "ARGS", None)
        names.extend(f"{stem}:{a}" for a in args) if args else names.append(stem)
    return names


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
                f"unknown experiment {name!r}; known: {', '.join(list_experiments())}"
            )
        path = modules[stem]
    module = _load_module(path)
    args = getattr(module, "ARGS", None)
    if args and arg not in args:
        raise ConfigError(
            f"experiment {stem!r} takes one of {', '.join(args)} after ':', got {arg or 'none'!r}"
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
                raise ConfigError(f"unknown config section {part!r} in override {item!r}")
            parent = parent[part]
        if leaf not in parent:
            known = ", ".join(sorted(parent.keys()))
            raise ConfigError(f"unknown config key {key!r}; keys here: {known}")
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
