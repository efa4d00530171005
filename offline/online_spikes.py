"""Read the online spike files the plugin writes (``online_spikes_<NNN>.bin``).

The format is defined in :mod:`oe_plugin.outputs.spike_file`; the reading is
:mod:`offline.record_files`. A file cut short by a crash is read up to its last complete record
(the partial tail is dropped with a warning); a file whose header never reached the disk is
skipped with a warning; a file that is not a sweepsort online spike file, or of an unknown
format version, raises :class:`OnlineFileError`. Format 1 (before ``displacement_um``) is still
read (:data:`oe_plugin.outputs.spike_file.SPIKE_DTYPE_V1`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from oe_plugin.outputs.spike_file import SPIKE_FORMAT
from offline import record_files


class OnlineFileError(ValueError):
    """A file named like an online spike file is foreign, corrupt or of an unknown version."""


class OnlineFileWarning(UserWarning):
    """Something was recovered: a partial trailing record dropped, an empty file skipped."""


_KIND = record_files.RecordFileKind(
    SPIKE_FORMAT, what="online spike file", holds="spikes",
    written_by="the spike detector module", error=OnlineFileError, warning=OnlineFileWarning)


def find_online_spike_files(recording_dir: str | os.PathLike) -> list[Path]:
    """All ``online_spikes_*.bin`` files under ``recording_dir`` (recursive, sorted by path);
    ``recording_dir`` may also be one such file."""
    return record_files.find_record_files(recording_dir, SPIKE_FORMAT)


def read_online_spikes_meta(recording_dir: str | os.PathLike) -> list[dict]:
    """The JSON headers of every online spike file under ``recording_dir``.

    Each dict is the file's header plus ``path`` (str), ``header_bytes`` and ``n_records``
    (complete records at the time of reading). Files without a complete header are skipped
    with an :class:`OnlineFileWarning`.

    Raises
    ------
    FileNotFoundError
        No online spike file under ``recording_dir``.
    OnlineFileError
        A foreign file, a corrupt header or an unknown format version.
    """
    return record_files.read_meta(recording_dir, _KIND)


def online_spike_files(recording_dir: str | os.PathLike) -> list[Path]:
    """The online spike files :func:`read_online_spikes` would read under ``recording_dir``
    (sorted by path); empty when there are none or the folder does not exist."""
    try:
        return record_files.find_record_files(recording_dir, _KIND.format)
    except FileNotFoundError:
        return []


def read_online_spikes(recording_dir: str | os.PathLike) -> np.ndarray:
    """All online detections under ``recording_dir``, sorted by sample number (stable).

    Parameters
    ----------
    recording_dir : path
        A recording directory (its ``sweepsort/`` subfolder is searched, recursively), a
        ``sweepsort/`` folder, or one ``online_spikes_<NNN>.bin`` file.

    Returns
    -------
    np.ndarray, shape (n_spikes,), dtype SPIKE_DTYPE
        Fields ``sample_number`` (int64), ``channel`` (int16), ``amplitude_uv`` (float32),
        ``unit`` (int16, -1 = unsorted), ``displacement_um`` (float32: the drift correction the
        module applied to the spike's channel; NaN without one, and for format-1 files, which
        lack the field). Empty (with that dtype) when the files hold no spikes.
        Records of several files are concatenated in file-name order before the stable sort.

    Raises
    ------
    FileNotFoundError
        No online spike file under ``recording_dir``.
    OnlineFileError
        A foreign file, a corrupt header or an unknown format version.
    """
    return record_files.read_records(recording_dir, _KIND)
