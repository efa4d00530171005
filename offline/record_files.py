"""Read the crash-safe record files the plugin writes (:mod:`oe_plugin.outputs.record_file`).

Shared by :mod:`offline.online_spikes` and :mod:`offline.online_sweeps`: each describes its
files with a :class:`RecordFileKind` (the writer's :class:`RecordFormat`, words for messages,
its error and warning classes). A file cut short by a crash is read up to its last complete
record (the partial tail is dropped with a warning); a file whose header never reached the disk
is skipped with a warning; a foreign file, a corrupt header or an unknown format version raises
the kind's error.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oe_plugin.outputs.record_file import HEADER_ALIGN, HEADER_PREFIX, RecordFormat

_MAX_HEADER_BYTES = 1 << 24
# warnings point at the caller of the public read function: warn <- _open_checked <- _opened
# <- read_* here <- offline.online_*.read_* <- caller
_STACKLEVEL = 5


@dataclass(frozen=True)
class RecordFileKind:
    """How to read one kind of record file and what to call it in messages."""

    format: RecordFormat
    what: str                      # "online spike file"
    holds: str                     # what its records are, plural: "spikes"
    written_by: str                # "the spike detector module" (hint when nothing is found)
    error: type[Exception]         # foreign / corrupt / unknown version
    warning: type[Warning]         # something was recovered or skipped


def find_record_files(recording_dir: str | os.PathLike, fmt: RecordFormat) -> list[Path]:
    """All ``<prefix>*<suffix>`` files under ``recording_dir`` (recursive, sorted by path);
    ``recording_dir`` may also be one such file, or a Record Node's folder inside the recording
    folder (``Record Node N[/experimentE/recordingR]``): then the recording folder's
    ``sweepsort/`` files are found (:func:`oe_plugin.outputs.location.find_output_folder`)."""
    from oe_plugin.outputs.location import find_output_folder

    root = Path(recording_dir)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    found = sorted(p for p in root.rglob(fmt.file_glob) if p.is_file())
    inside_record_node = any(part.startswith("Record Node") for part in root.resolve().parts)
    if not found and inside_record_node:
        top = find_output_folder(root)
        if top is not None and top != root:
            found = sorted(p for p in top.rglob(fmt.file_glob) if p.is_file())
    return found


_RECORDING_PART = re.compile(r"recording(\d+)$")
_EXPERIMENT_PART = re.compile(r"experiment(\d+)$")


def recording_of_folder(path) -> tuple[int, int] | None:
    """``(experiment, recording)`` when ``path`` is (inside) a Record Node's
    ``experimentE/recordingR`` folder, else None."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, 0, -1):
        r = _RECORDING_PART.match(parts[i])
        e = _EXPERIMENT_PART.match(parts[i - 1])
        if r and e:
            return int(e.group(1)), int(r.group(1))
    return None


def _of_recording(meta: dict, wanted: tuple[int, int] | None) -> bool:
    """Does the file belong to recording ``wanted`` (its header's ``recording`` says so; files
    without that information always do)?"""
    if wanted is None:
        return True
    rec = (meta.get("metadata") or {}).get("recording") or {}
    e, r = rec.get("experiment_number"), rec.get("recording_number")
    return e is None or r is None or (int(e), int(r)) == wanted


def read_meta(recording_dir: str | os.PathLike, kind: RecordFileKind) -> list[dict]:
    """The JSON header of every file of ``kind`` under ``recording_dir``, each with ``path``
    (str), ``header_bytes`` and ``n_records`` (complete records at the time of reading)."""
    metas = []
    for f, meta in _opened(recording_dir, kind):
        f.close()
        metas.append(meta)
    return metas


def read_records(recording_dir: str | os.PathLike, kind: RecordFileKind,
                 sort_by: str = "sample_number") -> np.ndarray:
    """Every record of ``kind`` under ``recording_dir``: files concatenated in name order,
    then stably sorted by ``sort_by``. Empty (with the format's dtype) when there are none."""
    fmt = kind.format
    dtype = fmt.dtype
    parts = []
    for f, meta in _opened(recording_dir, kind):
        with f:
            n = meta["n_records"]
            records = np.fromfile(f, dtype=fmt.dtype_of(meta.get("format_version")), count=n)
        if records.size != n:  # the file shrank while we read it
            raise kind.error(f"{meta['path']}: expected {n} records, read {records.size}")
        parts.append(fmt.upgrade(records))
    records = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return records[np.argsort(records[sort_by], kind="stable")]


def _opened(recording_dir, kind: RecordFileKind):
    """Yield ``(file at its first record, meta)`` per valid file; skip incomplete headers and,
    for a Record Node's ``experimentE/recordingR`` folder, other recordings' files."""
    wanted = None if Path(recording_dir).is_file() else recording_of_folder(recording_dir)
    for path in _files_or_raise(recording_dir, kind):
        opened = _open_checked(path, kind)
        if opened is None:
            continue
        if _of_recording(opened[1], wanted):
            yield opened
        else:
            opened[0].close()


def _files_or_raise(recording_dir, kind: RecordFileKind) -> list[Path]:
    files = find_record_files(recording_dir, kind.format)
    if not files:
        raise FileNotFoundError(
            f"{recording_dir}: no {kind.what}s ({kind.format.file_glob}) here or in its "
            f"subfolders; was {kind.written_by} recording into this directory?"
        )
    return files


def _open_checked(path: Path, kind: RecordFileKind):
    """Open ``path``, validate its header, leave the file positioned at the first record.

    Returns ``(file, meta)`` or None when the header is incomplete (skipped with a warning).
    """
    fmt, error = kind.format, kind.error
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(HEADER_PREFIX.size)
        if len(prefix) < HEADER_PREFIX.size:
            if fmt.magic.startswith(prefix[: len(fmt.magic)]):
                warnings.warn(f"{path}: header incomplete ({size} bytes; the GUI stopped while "
                              f"creating the file?): skipped, it holds no {kind.holds}",
                              kind.warning, stacklevel=_STACKLEVEL)
                f.close()
                return None
            raise error(f"{path}: not a sweepsort {kind.what} "
                        f"(starts with {prefix[:8]!r}, expected {fmt.magic!r})")
        magic, header_bytes = HEADER_PREFIX.unpack(prefix)
        if magic != fmt.magic:
            raise error(f"{path}: not a sweepsort {kind.what} "
                        f"(starts with {magic!r}, expected {fmt.magic!r})")
        if (header_bytes < HEADER_PREFIX.size or header_bytes % HEADER_ALIGN
                or header_bytes > _MAX_HEADER_BYTES):
            raise error(f"{path}: corrupt header (header length {header_bytes})")
        if size < header_bytes:
            warnings.warn(f"{path}: header incomplete ({size} of {header_bytes} bytes): skipped, "
                          f"it holds no {kind.holds}", kind.warning, stacklevel=_STACKLEVEL)
            f.close()
            return None
        try:
            meta = json.loads(f.read(header_bytes - HEADER_PREFIX.size).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise error(f"{path}: corrupt header JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise error(f"{path}: corrupt header (JSON is not an object)")
        version = meta.get("format_version")
        layout = fmt.dtype_of(version)
        if layout is None:
            readable = ", ".join(str(v) for v in sorted([fmt.version, *(v for v, _ in fmt.older)]))
            raise error(f"{path}: {kind.what} format version {version!r}; this sweepsort reads "
                        f"version {readable} (a newer sweepsort wrote it?)")
        expected = [[name, layout.fields[name][0].str] for name in layout.names]
        if meta.get("dtype") != expected:
            raise error(f"{path}: unexpected record layout {meta.get('dtype')!r}, "
                        f"expected {expected!r}")
        record_bytes = layout.itemsize
        n_records, tail = divmod(size - header_bytes, record_bytes)
        if tail:
            warnings.warn(f"{path}: dropped a partial trailing record ({tail} of {record_bytes} "
                          f"bytes; the file was cut short or is being written)",
                          kind.warning, stacklevel=_STACKLEVEL)
        meta.update(path=str(path), header_bytes=header_bytes, n_records=n_records)
        return f, meta
    except BaseException:
        f.close()
        raise
