"""The one configuration loader: YAML files plus ``key.sub=value`` command-line overrides.

Every console entry point takes ``--config FILE`` (optional) and ``--set a.b=value ...``.
Values of overrides are parsed as YAML scalars (``--set train.lr=1e-3 data.sizes=[256,320]``).
Configuration sections map onto frozen dataclasses with :func:`dataclass_from_dict`, which
rejects unknown keys so that a typo never silently falls back to a default.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file, override or value is invalid; the message says which and why."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` / ``3E5`` as floats (YAML 1.2, as people write
    learning rates); PyYAML's YAML 1.1 rules need a dot (``1.0e-4``) and would return a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse_yaml(text: str) -> Any:
    """YAML text -> Python values (safe; ``1e-4`` is a float)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; an empty file is an empty mapping."""
    path = Path(path)
    try:
        with path.open("r", encoding="utf-8") as f:
            data = parse_yaml(f.read())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins. Returns a new dict, inputs untouched."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(config: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) and return a new dict."""
    out = copy.deepcopy(config)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        dotted, raw = item.split("=", 1)
        keys = [k for k in dotted.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        node = out
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {key!r} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """defaults <- YAML file <- overrides."""
    config = copy.deepcopy(defaults or {})
    if path is not None:
        config = merge(config, load_yaml(path))
    return apply_overrides(config, overrides)


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | Path | None = None) -> None:
    """Add the standard ``--config`` and ``--set`` options to an entry point's parser."""
    parser.add_argument("--config", default=str(default_config) if default_config else None,
                        help="YAML config file" + (f" (default: {default_config})" if default_config else ""))
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config entries (YAML values), e.g. --set section.key=value")


T = typing.TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into dataclass-typed fields.

    Unknown keys raise :class:`ConfigError` naming the section and the allowed keys; lists are
    turned into tuples for tuple-typed fields so the result stays hashable and frozen.
    """
    data = dict(data or {})
    where = where or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in section {where!r}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = dataclass_from_dict(hint, value, f"{where}.{name}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid section {where!r}: {exc}") from exc


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """Plain dict (lists instead of tuples) of a dataclass, suitable for YAML/JSON dumps."""
    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(obj))
