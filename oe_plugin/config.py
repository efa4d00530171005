"""Typed settings loaded from TOML, with errors that name the bad key.

Every configurable part of sweepsort declares its settings as a frozen dataclass whose fields
carry their unit in the name (``low_hz``, ``lockout_us``). This module turns a TOML table into
such a dataclass and refuses anything it does not understand:

- an unknown key -> ``detect.treshold_mad: unknown key (did you mean "threshold_mad"?)``
- a wrong type   -> ``SettingsError("filter.order: expected an integer, got 'two'")``
- a bad value    -> the dataclass's ``check()`` raises ``SettingsError`` naming the key.

Choices are declared with ``choice(...)`` field metadata; range checks live in each dataclass's
``check()`` method (called by :func:`from_table`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    import tomli as tomllib

CONFIG_ENV_VAR = "SWEEPSORT_CONFIG"


class SettingsError(ValueError):
    """A setting is unknown, of the wrong type or out of range; the message names the key."""


def choice(*options: str, default: str) -> Any:
    """A string field restricted to ``options``."""
    return dataclasses.field(default=default, metadata={"choices": tuple(options)})


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key)
    if origin in (tuple, list):
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{key}: expected a list, got {value!r}")
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SettingsError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_table(cls: type, table: dict | None, section: str) -> Any:
    """Build the settings dataclass ``cls`` from a TOML table (``None`` -> all defaults).

    Unknown keys, wrong types and values outside a field's choices raise :class:`SettingsError`
    whose message starts with ``section.key``; then ``cls.check(section)`` runs if defined.
    """
    table = dict(table or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(sorted(fields))
            raise SettingsError(f"{section}.{key}: unknown key{hint}; known keys: {known}")
        converted = _convert(value, hints[key], f"{section}.{key}")
        options = fields[key].metadata.get("choices")
        if options and converted not in options:
            raise SettingsError(
                f"{section}.{key}: {converted!r} is not one of {', '.join(map(repr, options))}"
            )
        kwargs[key] = converted
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(section)
    return obj


def require(condition: bool, key: str, message: str) -> None:
    """Raise ``SettingsError('key: message')`` unless ``condition``."""
    if not condition:
        raise SettingsError(f"{key}: {message}")


def load_toml(path: str | os.PathLike) -> dict:
    """Read a TOML file; a syntax error becomes a :class:`SettingsError` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None


def check_sections(table: dict, known: typing.Iterable[str], where: str = "settings") -> None:
    """Refuse top-level sections that nothing reads (a typo would otherwise be silently ignored)."""
    known = tuple(known)
    for name in table:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SettingsError(
                f"{name}: unknown section in {where}{hint}; known sections: {', '.join(known)}"
            )


def find_config(script_path: str | os.PathLike) -> Path | None:
    """The settings file for a module: ``$SWEEPSORT_CONFIG`` if set, else ``<script stem>.toml``
    next to the script, else ``None`` (documented defaults)."""
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        return Path(env)
    candidate = Path(script_path).with_suffix(".toml")
    return candidate if candidate.exists() else None
