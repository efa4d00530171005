"""Read the decoded-frame files the sweep-decoder module writes (``online_sweeps_<NNN>.bin``).

Format: :mod:`oe_plugin.outputs.sweep_file`. A file cut short by a crash is read up to its last
complete record (the torn tail is dropped with a warning); a file whose header never reached the
disk is skipped with a warning; a foreign file or an unknown format version raises
:class:`OnlineSweepFileError`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from oe_plugin.outputs.sweep_file import (
    FILE_PREFIX,
    FILE_SUFFIX,
    FORMAT_VERSION,
    HEADER_ALIGN,
    HEADER_PREFIX,
    MAGIC,
    RECORD_BYTES,
    SWEEP_RECORD_DTYPE,
    dtype_description,
)

_MAX_HEADER_BYTES = 1 << 24


class OnlineSweepFileError(ValueError):
    """A file named like an online sweep file is foreign, corrupt or of an unknown version."""


class OnlineSweepFileWarning(UserWarning):
    """Something was recovered: a torn trailing record dropped, an empty file skipped."""


def find_online_sweep_files(recording_dir) -> list[Path]:
    """All ``online_sweeps_*.bin`` under ``recording_dir`` (recursive, sorted by path), or the
    file itself if ``recording_dir`` is one."""
    root = Path(recording_dir)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    return sorted(p for p in root.rglob(f"{FILE_PREFIX}*{FILE_SUFFIX}") if p.is_file())


def read_online_sweeps_meta(recording_dir) -> list[dict]:
    """The JSON header of every online sweep file under ``recording_dir``, each with ``path``,
    ``header_bytes``, ``n_records`` and, when the sidecar exists, ``stats``."""
    metas = []
    for path in _files_or_raise(recording_dir):
        opened = _open_checked(path)
        if opened is None:
            continue
        f, meta = opened
        f.close()
        side = path.with_suffix(".json")
        if side.exists():
            try:
                meta["stats"] = json.loads(side.read_text())
            except (OSError, json.JSONDecodeError):
                pass
        metas.append(meta)
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
    parts = []
    for path in _files_or_raise(recording_dir):
        opened = _open_checked(path)
        if opened is None:
            continue
        f, meta = opened
        with f:
            n = meta["n_records"]
            records = np.fromfile(f, dtype=SWEEP_RECORD_DTYPE, count=n)
        if records.size != n:
            raise OnlineSweepFileError(f"{path}: expected {n} records, read {records.size}")
        parts.append(records)
    frames = np.concatenate(parts) if parts else np.zeros(0, SWEEP_RECORD_DTYPE)
    return frames[np.argsort(frames["sample_number"], kind="stable")]


def _files_or_raise(recording_dir) -> list[Path]:
    files = find_online_sweep_files(recording_dir)
    if not files:
        raise FileNotFoundError(
            f"{recording_dir}: no online sweep files ({FILE_PREFIX}*{FILE_SUFFIX}) here or in "
            "its subfolders; was the sweep decoder module recording into this directory?")
    return files


def _open_checked(path: Path):
    """Open and validate; returns ``(file at first record, meta)`` or None (skipped)."""
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(HEADER_PREFIX.size)
        if len(prefix) < HEADER_PREFIX.size:
            if MAGIC.startswith(prefix[:len(MAGIC)]):
                warnings.warn(f"{path}: header incomplete ({size} bytes): skipped, it holds no "
                              "frames", OnlineSweepFileWarning, stacklevel=3)
                f.close()
                return None
            raise OnlineSweepFileError(f"{path}: not a sweepsort online sweep file")
        magic, header_bytes = HEADER_PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise OnlineSweepFileError(f"{path}: not a sweepsort online sweep file (starts "
                                       f"with {magic!r}, expected {MAGIC!r})")
        if (header_bytes < HEADER_PREFIX.size or header_bytes % HEADER_ALIGN
                or header_bytes > _MAX_HEADER_BYTES):
            raise OnlineSweepFileError(f"{path}: corrupt header (length {header_bytes})")
        if size < header_bytes:
            warnings.warn(f"{path}: header incomplete ({size} of {header_bytes} bytes): "
                          "skipped", OnlineSweepFileWarning, stacklevel=3)
            f.close()
            return None
        try:
            meta = json.loads(f.read(header_bytes - HEADER_PREFIX.size).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OnlineSweepFileError(f"{path}: corrupt header JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise OnlineSweepFileError(f"{path}: corrupt header (JSON is not an object)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise OnlineSweepFileError(
                f"{path}: online sweep file format version {meta.get('format_version')!r}; "
                f"this sweepsort reads version {FORMAT_VERSION}")
        if meta.get("dtype") != dtype_description():
            raise OnlineSweepFileError(f"{path}: unexpected record layout {meta.get('dtype')!r}")
        n_records, tail = divmod(size - header_bytes, RECORD_BYTES)
        if tail:
            warnings.warn(f"{path}: dropped a partial trailing record ({tail} of {RECORD_BYTES} "
                          "bytes; the file was cut short or is being written)",
                          OnlineSweepFileWarning, stacklevel=3)
        meta.update(path=str(path), header_bytes=header_bytes, n_records=n_records)
        return f, meta
    except BaseException:
        f.close()
        raise
