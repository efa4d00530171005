"""Offline template sorting over the shared kernels (see docs/sorting.md).

:func:`sort_recording` runs the whole sort; :func:`load_sort` reads a sort folder back.

The names below are imported on first use (PEP 562): importing a light submodule such as
:mod:`offline.sort.sortfile` (the CLI's error types) does not compile the sorting pipeline.
"""

from __future__ import annotations

from offline._lazy import lazy_names

_LAZY = {
    "sort_recording": "offline.sort.pipeline",
    "AllSettings": "offline.sort.settings",
    "load_sort_settings": "offline.sort.settings",
    "settings_from_table": "offline.sort.settings",
    "SortResult": "offline.sort.sortfile",
    "load_sort": "offline.sort.sortfile",
    "save_sort": "offline.sort.sortfile",
    "RecordingSource": "offline.sort.source",
}

__all__ = ["AllSettings", "RecordingSource", "SortResult", "load_sort", "load_sort_settings",
           "save_sort", "settings_from_table", "sort_recording"]


__getattr__, __dir__ = lazy_names("offline.sort", _LAZY, globals())
