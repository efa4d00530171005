"""sweepsort offline: read recordings and online outputs, re-sort, analyse.

The names below are imported on first use (PEP 562), so that ``import offline.cli`` (the
``sweepsort`` command, its ``--help``) does not pull in numpy and the kernels.
"""

from __future__ import annotations

from offline._lazy import lazy_names

_LAZY = {
    "read_online_spikes": "offline.online_spikes",
    "read_online_sweeps": "offline.online_sweeps",
}

__all__ = ["read_online_spikes", "read_online_sweeps"]


__getattr__, __dir__ = lazy_names("offline", _LAZY, globals())
