"""Read the online spike files the plugin writes (``online_spikes_<NNN>.bin``).

The format is defined in :mod:`oe_plugin.outputs.spike_file`. A file cut short by a crash is
read up to its last complete record (the partial tail is dropped with a warning); a file whose
header never reached the disk is skipped with a warning; a file that is not a sweepsort online
spike file, or of an unknown format version, raises :class:`OnlineFileError`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from oe_plugin.outputs.spike_file import (
    FILE_PREFIX,
    FILE_SUFFIX,
    FORMAT_VERSION,
    HEADER_PREFIX,
    MAGIC,
    RECORD_BYTES,
    SPIKE_DTYPE,
    dtype_description,
)

_MAX_HEADER_BYTES = 1 << 24


class OnlineFileError(ValueError):
    """A file named like an online spike file is foreign, corrupt or of an unknown version."""


class OnlineFileWarning(UserWarning):
    """Something was recovered: a partial trailing record dropped, an empty file skipped."""


def find_online_spike_files(recording_dir: str | os.PathLike) -> list[Path]:
    """All ``online_spikes_*.bin`` files under ``recording_dir`` (recursive, sorted by path);
    ``recording_dir`` may also be one such file."""
    root = Path(recording_dir)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    return sorted(p for p in root.rglob(f"{FILE_PREFIX}*{FILE_SUFFIX}") if p.is_file())


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
    metas = []
    for path in _files_or_raise(recording_dir):
        opened = _open_checked(path)
        if opened is None:
            continue
        f, meta = opened
        f.close()
        metas.append(meta)
    return metas


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
        ``unit`` (int16, -1 = unsorted). Empty (with that dtype) when the files hold no spikes.
        Records of several files are concatenated in file-name order before the stable sort.

    Raises
    ------
    FileNotFoundError
        No online spike file under ``recording_dir``.
    OnlineFileError
        A foreign file, a corrupt header or an unknown format version.
    """
    parts = []
    for path in _files_or_raise(recording_dir):
        opened = _open_checked(path)
        if opened is None:
            continue
        f, meta = opened
        with f:
            n = meta["n_records"]
            records = np.fromfile(f, dtype=SPIKE_DTYPE, count=n)
        if records.size != n:  # the file shrank while we read it
            raise OnlineFileError(f"{path}: expected {n} records, read {records.size}")
        parts.append(records)
    spikes = np.concatenate(parts) if parts else np.zeros(0, dtype=SPIKE_DTYPE)
    order = np.argsort(spikes["sample_number"], kind="stable")
    return spikes[order]


def _files_or_raise(recording_dir) -> list[Path]:
    files = find_online_spike_files(recording_dir)
    if not files:
        raise FileNotFoundError(
            f"{recording_dir}: no online spike files ({FILE_PREFIX}*{FILE_SUFFIX}) here or in "
            f"its subfolders; was the spike detector module recording into this directory?"
        )
    return files


def _open_checked(path: Path):
    """Open ``path``, validate its header, leave the file positioned at the first record.

    Returns ``(file, meta)`` or None when the header is incomplete (skipped with a warning).
    """
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(HEADER_PREFIX.size)
        if len(prefix) < HEADER_PREFIX.size:
            if MAGIC.startswith(prefix[: len(MAGIC)]):
                warnings.warn(f"{path}: header incomplete ({size} bytes; the GUI stopped while "
                              f"creating the file?): skipped, it holds no spikes",
                              OnlineFileWarning, stacklevel=3)
                f.close()
                return None
            raise OnlineFileError(f"{path}: not a sweepsort online spike file "
                                  f"(starts with {prefix[:8]!r}, expected {MAGIC!r})")
        magic, header_bytes = HEADER_PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise OnlineFileError(f"{path}: not a sweepsort online spike file "
                                  f"(starts with {magic!r}, expected {MAGIC!r})")
        too_big = header_bytes > _MAX_HEADER_BYTES
        if header_bytes < HEADER_PREFIX.size or header_bytes % 16 or too_big:
            raise OnlineFileError(f"{path}: corrupt header (header length {header_bytes})")
        if size < header_bytes:
            warnings.warn(f"{path}: header incomplete ({size} of {header_bytes} bytes): skipped, "
                          f"it holds no spikes", OnlineFileWarning, stacklevel=3)
            f.close()
            return None
        try:
            meta = json.loads(f.read(header_bytes - HEADER_PREFIX.size).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OnlineFileError(f"{path}: corrupt header JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise OnlineFileError(f"{path}: corrupt header (JSON is not an object)")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise OnlineFileError(
                f"{path}: online spike file format version {version!r}; this sweepsort reads "
                f"version {FORMAT_VERSION} (a newer sweepsort wrote it?)")
        if meta.get("dtype") != dtype_description():
            raise OnlineFileError(f"{path}: unexpected record layout {meta.get('dtype')!r}, "
                                  f"expected {dtype_description()!r}")
        body = size - header_bytes
        n_records, tail = divmod(body, RECORD_BYTES)
        if tail:
            warnings.warn(f"{path}: dropped a partial trailing record ({tail} of {RECORD_BYTES} "
                          f"bytes; the file was cut short or is being written)",
                          OnlineFileWarning, stacklevel=3)
        meta.update(path=str(path), header_bytes=header_bytes, n_records=n_records)
        return f, meta
    except BaseException:
        f.close()
        raise
