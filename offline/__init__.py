"""sweepsort offline: read recordings and online outputs, re-sort, analyse.

The names below are imported on first use (PEP 562), so that ``import offline.cli`` (the
``sweepsort`` command, its ``--help``) does not pull in numpy and the kernels.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "read_online_spikes": "offline.online_spikes",
    "read_online_sweeps": "offline.online_sweeps",
}

__all__ = ["read_online_spikes", "read_online_sweeps"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        # a submodule that was imported eagerly before the names became lazy
        # (``import offline; offline.<submodule>.f()`` keeps working)
        try:
            return importlib.import_module(f"offline.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"offline.{name}":
                raise
        raise AttributeError(f"module 'offline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
