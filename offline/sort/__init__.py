"""Offline template sorting over the shared kernels (see docs/sorting.md).

:func:`sort_recording` runs the whole sort; :func:`load_sort` reads a sort folder back.
"""

from offline.sort.pipeline import sort_recording
from offline.sort.settings import AllSettings, load_sort_settings, settings_from_table
from offline.sort.sortfile import SortResult, load_sort, save_sort
from offline.sort.source import RecordingSource

__all__ = ["AllSettings", "RecordingSource", "SortResult", "load_sort", "load_sort_settings",
           "save_sort", "settings_from_table", "sort_recording"]
