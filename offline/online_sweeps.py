"""Read the decoded-frame files the sweep-decoder module writes (``online_sweeps_<NNN>.bin``).

Format: :mod:`oe_plugin.outputs.sweep_file`; reading: :mod:`offline.record_files`. A file cut
short by a crash is read up to its last complete record (the torn tail is dropped with a
warning); a file whose header never reached the disk is skipped with a warning; a foreign file
or an unknown format version raises :class:`OnlineSweepFileError`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from oe_plugin.outputs.sweep_file import SWEEP_FORMAT
from offline import record_files


class OnlineSweepFileError(ValueError):
    """A file named like an online sweep file is foreign, corrupt or of an unknown version."""


class OnlineSweepFileWarning(UserWarning):
    """Something was recovered: a torn trailing record dropped, an empty file skipped."""


_KIND = record_files.RecordFileKind(
    SWEEP_FORMAT, what="online sweep file", holds="frames",
    written_by="the sweep decoder module", error=OnlineSweepFileError,
    warning=OnlineSweepFileWarning)


def read_online_sweeps_meta(recording_dir) -> list[dict]:
    """The JSON header of every online sweep file under ``recording_dir``, each with ``path``,
    ``header_bytes``, ``n_records`` and, when the sidecar exists, ``stats``."""
    metas = record_files.read_meta(recording_dir, _KIND)
    for meta in metas:
        side = Path(meta["path"]).with_suffix(".json")
        if side.exists():
            try:
                meta["stats"] = json.loads(side.read_text())
            except (OSError, json.JSONDecodeError):
                pass
    return metas


def read_online_sweeps(recording_dir) -> np.ndarray:
    """Every frame the online sweep decoder wrote under ``recording_dir``.

    Parameters
    ----------
    recording_dir : a recording directory (its ``sweepsort/`` folder is searched recursively),
        a ``sweepsort/`` folder, or one ``online_sweeps_<NNN>.bin`` file.

    Returns
    -------
    np.ndarray, shape (n_frames,), dtype SWEEP_RECORD_DTYPE
        ``sample_number`` int64, ``frame_number`` int64, ``sweep_index`` int32 (65535 = no
        sweep, -1 = unknown), ``flags`` uint32 (:mod:`oe_plugin.protocol.spec`); files
        concatenated in name order, then stably sorted by sample number.

    Raises
    ------
    FileNotFoundError: no online sweep file there. OnlineSweepFileError: a bad file.
    """
    return record_files.read_records(recording_dir, _KIND)

