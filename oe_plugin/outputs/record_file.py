"""Crash-safe, append-only record files: the machinery shared by the online output files.

File layout (all little-endian)::

    offset 0   8 bytes   magic (per format, e.g. b"SWSPIKE1")
    offset 8   uint64    header_bytes: total header length, a multiple of 16
    offset 16  UTF-8 JSON metadata (sorted keys), padded with spaces to header_bytes
    header_bytes ...     packed records of the format's dtype, in write order

The JSON always holds ``format``, ``format_version``, ``dtype`` (field name and numpy type
string per field), ``record_bytes``, ``sample_rate_hz``, ``created_utc``, ``sweepsort_version``
and the caller's ``metadata``, plus the fields a concrete writer adds. Files are named
``<recording_dir>/<subdir>/<prefix><NNN><suffix>`` with the next free NNN.

A :class:`RecordFormat` describes one kind of file; a :class:`RecordFileWriter` subclass binds
one (``FORMAT``) and implements :meth:`RecordFileWriter._fill` (copy records into the buffer).
The concrete files: :mod:`oe_plugin.outputs.spike_file`, :mod:`oe_plugin.outputs.sweep_file`;
the reader: :mod:`offline.record_files`.

The writer runs on the GUI's audio thread, which executes Python without holding the GIL (see
``docs/host-threading.md``): it starts no thread, takes no lock, calls no numba code, and does
not allocate array memory per block. Records go into a buffer preallocated at construction;
:meth:`RecordFileWriter.maybe_flush` writes the buffered bytes with one ``os.write`` on an
``O_APPEND`` descriptor once ``flush_every_samples`` have passed or the buffer is 3/4 full, so a
crash of the GUI loses at most the unflushed buffer; a torn last record is dropped by the
reader. The append / flush methods never raise: they return ``False`` on trouble and keep
counters (``n_dropped``, ``n_errors``, ``last_error``).
"""

from __future__ import annotations

import datetime
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

HEADER_ALIGN = 16
HEADER_PREFIX = struct.Struct("<8sQ")  # magic, header_bytes (the first 16 bytes)

_W = TypeVar("_W", bound="RecordFileWriter")
_OPEN_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL
               | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))


@dataclass(frozen=True)
class RecordFormat:
    """One kind of record file: its magic, name, version, record layout and file names."""

    magic: bytes            # 8 bytes
    name: str               # the header's "format"
    version: int            # the header's "format_version"
    dtype: np.dtype         # one record (packed)
    file_prefix: str        # files are <subdir>/<file_prefix>NNN<file_suffix>
    file_suffix: str = ".bin"
    subdir: str = "sweepsort"
    older: tuple = ()
    """Earlier versions still read: ``((version, dtype), ...)``; their records are converted to
    ``dtype`` (fields they lack are zero, or NaN for float fields)."""

    def dtype_of(self, version) -> np.dtype | None:
        """The record layout of ``version`` (None: a version this format does not read)."""
        if version == self.version:
            return self.dtype
        for v, dt in self.older:
            if version == v:
                return np.dtype(dt)
        return None

    def upgrade(self, records: np.ndarray) -> np.ndarray:
        """Records of an older layout as the current ``dtype`` (missing fields 0 / NaN)."""
        if records.dtype == self.dtype:
            return records
        out = np.zeros(len(records), self.dtype)
        for name in self.dtype.names:
            if name in records.dtype.names:
                out[name] = records[name]
            elif self.dtype.fields[name][0].kind == "f":
                out[name] = np.nan
        return out

    @property
    def record_bytes(self) -> int:
        return self.dtype.itemsize

    @property
    def file_glob(self) -> str:
        return f"{self.file_prefix}*{self.file_suffix}"

    def dtype_description(self) -> list[list[str]]:
        """The record layout as stored in the header: ``[[name, numpy type string], ...]``."""
        return [[name, self.dtype.fields[name][0].str] for name in self.dtype.names]

    def encode_header(self, meta: dict) -> bytes:
        """The header bytes for ``meta``: magic, length, JSON padded to a multiple of 16."""
        raw = json.dumps(meta, default=json_default, ensure_ascii=False, sort_keys=True)
        raw = raw.encode("utf-8")
        total = HEADER_PREFIX.size + len(raw)
        total += -total % HEADER_ALIGN
        pad = b" " * (total - HEADER_PREFIX.size - len(raw))
        return HEADER_PREFIX.pack(self.magic, total) + raw + pad


class RecordFileWriter:
    """Append records to one ``<prefix><NNN><suffix>`` file of the subclass's ``FORMAT``.

    Subclasses set ``FORMAT``, provide an ``open`` classmethod (calling :meth:`_create`), a
    public ``append`` (calling :meth:`_append`) and :meth:`_fill`.

    Attributes: ``path``, ``header``, ``capacity_records``, ``flush_every_samples``,
    ``n_written`` (records fully written to the file), ``n_dropped`` (buffer full while the disk
    refused writes, or appended after close), ``n_errors`` and ``last_error``.
    """

    FORMAT: RecordFormat

    def __init__(self, fd: int, path: Path, header: dict, capacity_records: int,
                 flush_every_samples: int):
        self.path = path
        self.header = header
        self.capacity_records = int(capacity_records)
        self.flush_every_samples = int(flush_every_samples)
        self._record_bytes = self.FORMAT.record_bytes
        self._fd = fd
        self._buf = np.zeros(self.capacity_records, dtype=self.FORMAT.dtype)
        self._bytes = memoryview(self._buf.view(np.uint8))
        self._n_records = 0        # records in the buffer
        self._start_byte = 0       # buffer bytes already written (a short write leaves > 0)
        self._high_water = max(1, (3 * self.capacity_records) // 4)
        self._last_flush_sample: int | None = None
        self._bytes_written = 0
        self.n_dropped = 0
        self.n_errors = 0
        self.last_error: str | None = None

    @classmethod
    def _create(cls, recording_dir, sample_rate_hz: float, metadata: dict | None, *,
                capacity_records: int, flush_every_s: float, **fields):
        """Validate, create the next free file, write and fsync its header; return the writer.

        ``fields`` go through :meth:`_header_fields` (after the checks) into the header, after
        ``sample_rate_hz``. Raises OSError / ValueError (not real-time).
        """
        if not capacity_records >= 1:
            raise ValueError(f"capacity_records must be >= 1, got {capacity_records}")
        if not (sample_rate_hz > 0 and np.isfinite(sample_rate_hz)):
            raise ValueError(f"sample_rate_hz must be a positive number, got {sample_rate_hz}")
        if not flush_every_s >= 0:
            raise ValueError(f"flush_every_s must be >= 0, got {flush_every_s}")
        fmt = cls.FORMAT
        directory = Path(recording_dir) / fmt.subdir
        directory.mkdir(parents=True, exist_ok=True)
        header = {
            "format": fmt.name,
            "format_version": fmt.version,
            "dtype": fmt.dtype_description(),
            "record_bytes": fmt.record_bytes,
            "sample_rate_hz": float(sample_rate_hz),
            **cls._header_fields(**fields),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "sweepsort_version": sweepsort_version(),
            "metadata": dict(metadata or {}),
        }
        raw = fmt.encode_header(header)
        fd, path = create_next(directory, fmt)
        try:
            write_all(fd, raw)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        fsync_dir(directory)
        return cls(fd, path, header, capacity_records,
                   max(1, round(flush_every_s * sample_rate_hz)))

    @classmethod
    def _header_fields(cls) -> dict:
        """The subclass's own header fields (from the keyword arguments given to _create)."""
        return {}

    # -- real-time path: never raises, no allocation of array memory ------------------------

    def _fill(self, a: int, b: int, start: int, sources) -> None:
        """Copy source records ``start .. start + (b - a)`` into buffer rows ``a .. b``."""
        raise NotImplementedError

    def _append(self, n, sources) -> bool:
        """Buffer the first ``n`` records of ``sources`` (through :meth:`_fill`), flushing at
        once when the buffer fills. False if records were dropped or an error occurred."""
        done = 0
        try:
            n = int(n)
            if n <= 0:
                return True
            if self._fd < 0:
                self.n_dropped += n
                return False
            while done < n:
                room = self.capacity_records - self._n_records
                if room == 0:
                    self._flush()
                    room = self.capacity_records - self._n_records
                    if room == 0:  # the disk refuses: drop (and count) the rest
                        self.n_dropped += n - done
                        return False
                k = min(room, n - done)
                a = self._n_records
                self._fill(a, a + k, done, sources)
                self._n_records = a + k
                done += k
            return True
        except Exception as exc:  # bad input shapes/types: count, never raise
            self._note_error(exc)
            try:
                self.n_dropped += max(0, int(n) - done)
            except Exception:
                pass
            return False

    def maybe_flush(self, now_sample: int) -> bool:
        """Write the buffer if ``flush_every_samples`` passed since the last flush (the first
        call with nothing buffered only starts the clock; records buffered before any flush are
        written at once), if ``now_sample`` went backwards (a restarted counter), or if the
        buffer is 3/4 full. ``now_sample``: the stream's current sample number (int).
        Returns False if a write failed (see ``last_error``) or ``now_sample`` is not an
        integer, else True."""
        try:
            now = int(now_sample)
            last = self._last_flush_sample
            if self._n_records == 0:
                if last is None:
                    self._last_flush_sample = now
                return True
            # due: first flush, interval passed, sample counter restarted, or 3/4 full
            if (last is None or now < last or now - last >= self.flush_every_samples
                    or self._n_records >= self._high_water):
                self._last_flush_sample = now
                return self._flush()
            return True
        except Exception as exc:
            self._note_error(exc)
            return False

    def flush(self) -> bool:
        """Write everything buffered now. Returns False if a write failed."""
        try:
            return self._flush()
        except Exception as exc:
            self._note_error(exc)
            return False

    # -- not real-time ----------------------------------------------------------------------

    def close(self) -> bool:
        """Flush, ``fsync`` and close (idempotent). Records that still cannot be written are
        counted in ``n_dropped``. Returns True when every appended record reached the file."""
        return self._close(fsync=True)

    def _close(self, fsync: bool) -> bool:
        """Flush, (``fsync``) and close (idempotent; never raises on OS errors)."""
        if self._fd < 0:
            return self.n_dropped == 0
        ok = self.flush()
        for op in ((os.fsync, os.close) if fsync else (os.close,)):
            try:
                op(self._fd)
            except OSError as exc:
                self._note_error(exc)
                ok = False
        self._fd = -1
        if self._n_records:
            self.n_dropped += self._n_records - self._start_byte // self._record_bytes
            self._n_records = 0
            self._start_byte = 0
        return ok and self.n_dropped == 0

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def n_written(self) -> int:
        return self._bytes_written // self._record_bytes

    @property
    def n_buffered(self) -> int:
        """Records appended but not yet (completely) written."""
        return self._n_records - self._start_byte // self._record_bytes

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, written={self.n_written}, "
                f"buffered={self.n_buffered}, dropped={self.n_dropped}, errors={self.n_errors})")

    # -- internals --------------------------------------------------------------------------

    def _flush(self) -> bool:
        """Write buffered bytes (a short write is retried); keep whatever the OS did not take
        (the byte stream in the file stays contiguous). Returns True if the buffer is now
        empty."""
        end = self._n_records * self._record_bytes
        while self._start_byte < end and self._fd >= 0:
            try:
                written = os.write(self._fd, self._bytes[self._start_byte:end])
            except OSError as exc:
                self._note_error(exc)
                break
            if written <= 0:
                self._note_error(OSError("os.write wrote nothing"))
                break
            self._start_byte += written
            self._bytes_written += written
        if self._start_byte >= end:
            self._n_records = 0
            self._start_byte = 0
            return True
        # Some bytes remain: move whole unwritten-or-partial records to the front so that
        # appends can continue (rare error path; may allocate).
        shift = self._start_byte // self._record_bytes
        if shift:
            keep = self._n_records - shift
            self._buf[:keep] = self._buf[shift:self._n_records].copy()
            self._n_records = keep
            self._start_byte -= shift * self._record_bytes
        return False

    def _note_error(self, exc: BaseException) -> None:
        self.n_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"


def create_next(directory: Path, fmt: RecordFormat) -> tuple[int, Path]:
    """Create the first free ``<prefix><NNN><suffix>`` exclusively; return (fd, path)."""
    taken = {p.name for p in directory.glob(fmt.file_glob)}
    index = 0
    while True:
        name = f"{fmt.file_prefix}{index:03d}{fmt.file_suffix}"
        if name not in taken:
            path = directory / name
            try:
                return os.open(path, _OPEN_FLAGS, 0o644), path
            except FileExistsError:
                pass
        index += 1


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError("os.write wrote nothing")
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    """Persist the new directory entry (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def json_default(obj):
    """``json.dumps(default=...)``: numpy scalars/arrays, paths, sets and tuples; else repr."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (os.PathLike, Path)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def sweepsort_version() -> str:
    try:
        from importlib.metadata import version

        return version("sweepsort")
    except Exception:
        return "unknown"
