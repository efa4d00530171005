"""Crash-safe, append-only file of the sweep decoder's frames (one record per refresh).

The same design as the spike file (:mod:`oe_plugin.outputs.spike_file`), little-endian::

    offset 0   8 bytes   magic b"SWSWEEP1"
    offset 8   uint64    header_bytes: total header length, a multiple of 16
    offset 16  UTF-8 JSON metadata, padded with spaces to header_bytes
    header_bytes ...     packed records of SWEEP_RECORD_DTYPE (24 bytes each), in decode order

The JSON holds ``format`` (:data:`FORMAT_NAME`), ``format_version``, ``dtype``,
``record_bytes``, ``sample_rate_hz``, ``protocol`` (the TTL protocol settings, with their
version), ``created_utc``, ``sweepsort_version`` and the caller's ``metadata``.

Files are ``<recording_dir>/sweepsort/online_sweeps_<NNN>.bin`` (the next free NNN). At
:meth:`SweepFileWriter.close` a sidecar ``online_sweeps_<NNN>.json`` (written atomically) adds
the decoder's counters; it is informative only — the ``.bin`` file alone is complete.

Real-time rules (the audio thread runs without the GIL): no thread, no lock, no numba, no array
allocation per block. Records are copied into a buffer preallocated at construction;
:meth:`maybe_flush` writes them with one ``os.write`` on an ``O_APPEND`` descriptor every
``flush_every_s`` of samples (or when the buffer is 3/4 full), so a GUI crash loses at most
about that much; a torn last record is dropped by the reader. :meth:`append` and
:meth:`maybe_flush` never raise.
"""

from __future__ import annotations

import datetime
import json
import os
import struct
from pathlib import Path

import numpy as np

from oe_plugin.protocol.decoder import DECODED_DTYPE

MAGIC = b"SWSWEEP1"
FORMAT_NAME = "sweepsort online sweeps"
FORMAT_VERSION = 1
SUBDIR = "sweepsort"
FILE_PREFIX = "online_sweeps_"
FILE_SUFFIX = ".bin"
SWEEP_RECORD_DTYPE = DECODED_DTYPE
"""One refresh: ``sample_number`` int64, ``frame_number`` int64, ``sweep_index`` int32,
``flags`` uint32 (see :mod:`oe_plugin.protocol.spec`)."""
RECORD_BYTES = SWEEP_RECORD_DTYPE.itemsize  # 24
HEADER_ALIGN = 16
HEADER_PREFIX = struct.Struct("<8sQ")

_OPEN_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL
               | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))


def dtype_description() -> list[list[str]]:
    """The record layout as stored in the header: ``[[name, numpy type string], ...]``."""
    return [[name, SWEEP_RECORD_DTYPE.fields[name][0].str] for name in SWEEP_RECORD_DTYPE.names]


def encode_header(meta: dict) -> bytes:
    """Magic, length and the JSON padded with spaces to a multiple of 16 bytes."""
    raw = json.dumps(meta, default=_json_default, ensure_ascii=False, sort_keys=True)
    raw = raw.encode("utf-8")
    total = HEADER_PREFIX.size + len(raw)
    total += -total % HEADER_ALIGN
    return HEADER_PREFIX.pack(MAGIC, total) + raw + b" " * (total - HEADER_PREFIX.size - len(raw))


class SweepFileWriter:
    """Append decoded frames to one ``online_sweeps_<NNN>.bin``.

    Make one with :meth:`open` (not real-time: ``start_recording``); per block call
    :meth:`append` and :meth:`maybe_flush` (real-time safe); finally :meth:`close`.

    Attributes: ``path``, ``header``, ``capacity_records``, ``flush_every_samples``,
    ``n_written`` (records on disk), ``n_dropped``, ``n_errors``, ``last_error``.
    """

    def __init__(self, fd: int, path: Path, header: dict, capacity_records: int,
                 flush_every_samples: int):
        self.path = path
        self.header = header
        self.capacity_records = int(capacity_records)
        self.flush_every_samples = int(flush_every_samples)
        self._fd = fd
        self._buf = np.zeros(self.capacity_records, SWEEP_RECORD_DTYPE)
        self._bytes = memoryview(self._buf.view(np.uint8))
        self._n = 0               # records in the buffer
        self._start_byte = 0      # bytes of the buffer already written (after a short write)
        self._high_water = max(1, (3 * self.capacity_records) // 4)
        self._last_flush_sample: int | None = None
        self._bytes_written = 0
        self.n_dropped = 0
        self.n_errors = 0
        self.last_error: str | None = None

    @classmethod
    def open(cls, recording_dir, sample_rate_hz: float, protocol: dict,
             metadata: dict | None = None, *, capacity_records: int = 8192,
             flush_every_s: float = 0.5) -> SweepFileWriter:
        """Create ``<recording_dir>/sweepsort/online_sweeps_<NNN>.bin`` and write its header.

        Parameters
        ----------
        recording_dir : the directory the GUI passed to ``start_recording``.
        sample_rate_hz : stream sample rate, Hz.
        protocol : ``ProtocolSettings.to_dict()`` of the decoder.
        metadata : JSON-serialisable extras (module settings...).
        capacity_records : preallocated buffer, records (24 bytes each).
        flush_every_s : flush interval in seconds of data.

        Raises OSError if the file cannot be created, ValueError on bad arguments.
        """
        if capacity_records < 1:
            raise ValueError(f"capacity_records must be >= 1, got {capacity_records}")
        if not (sample_rate_hz > 0 and np.isfinite(sample_rate_hz)):
            raise ValueError(f"sample_rate_hz must be a positive number, got {sample_rate_hz}")
        if not flush_every_s >= 0:
            raise ValueError(f"flush_every_s must be >= 0, got {flush_every_s}")
        directory = Path(recording_dir) / SUBDIR
        directory.mkdir(parents=True, exist_ok=True)
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "dtype": dtype_description(),
            "record_bytes": RECORD_BYTES,
            "sample_rate_hz": float(sample_rate_hz),
            "protocol": dict(protocol),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "sweepsort_version": _version(),
            "metadata": dict(metadata or {}),
        }
        raw = encode_header(header)
        fd, path = _create_next(directory)
        try:
            _write_all(fd, raw)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        _fsync_dir(directory)
        return cls(fd, path, header, capacity_records,
                   max(1, round(flush_every_s * sample_rate_hz)))

    # -- real-time path ---------------------------------------------------------------------

    def append(self, frames: np.ndarray, n: int) -> bool:
        """Buffer the first ``n`` records of ``frames`` (SWEEP_RECORD_DTYPE, e.g. the decoder's
        output buffer). Flushes at once when the buffer fills. Returns False if records were
        dropped (``n_dropped``) or an error occurred (``n_errors``, ``last_error``)."""
        done = 0
        try:
            n = int(n)
            if n <= 0:
                return True
            if self._fd < 0:
                self.n_dropped += n
                return False
            while done < n:
                room = self.capacity_records - self._n
                if room == 0:
                    self._flush()
                    room = self.capacity_records - self._n
                    if room == 0:
                        self.n_dropped += n - done
                        return False
                k = min(room, n - done)
                self._buf[self._n:self._n + k] = frames[done:done + k]
                self._n += k
                done += k
            return True
        except Exception as exc:  # noqa: BLE001 - never raise on the audio thread
            self._note_error(exc)
            try:
                self.n_dropped += max(0, int(n) - done)
            except Exception:  # noqa: BLE001
                pass
            return False

    def maybe_flush(self, now_sample: int) -> bool:
        """Write the buffer if ``flush_every_samples`` passed since the last flush, the sample
        counter went backwards, or the buffer is 3/4 full. Returns False on a failed write."""
        try:
            now = int(now_sample)
            last = self._last_flush_sample
            if self._n == 0:
                if last is None:
                    self._last_flush_sample = now
                return True
            if (last is None or now < last or now - last >= self.flush_every_samples
                    or self._n >= self._high_water):
                self._last_flush_sample = now
                return self._flush()
            return True
        except Exception as exc:  # noqa: BLE001
            self._note_error(exc)
            return False

    def flush(self) -> bool:
        """Write everything buffered now. Returns False if a write failed."""
        try:
            return self._flush()
        except Exception as exc:  # noqa: BLE001
            self._note_error(exc)
            return False

    # -- not real-time ----------------------------------------------------------------------

    def close(self, stats: dict | None = None, *, fsync: bool = True) -> bool:
        """Flush, (``fsync``) and close (idempotent; never raises); with ``stats``, also write
        the JSON sidecar (:meth:`write_sidecar`). On the audio thread call it with
        ``fsync=False`` and no stats (an fsync can take milliseconds; the OS still writes the
        data). Returns True when every appended record reached the file."""
        if self._fd >= 0:
            ok = self.flush()
            ops = (os.fsync, os.close) if fsync else (os.close,)
            for op in ops:
                try:
                    op(self._fd)
                except OSError as exc:
                    self._note_error(exc)
                    ok = False
            self._fd = -1
            if self._n:
                self.n_dropped += self._n - self._start_byte // RECORD_BYTES
                self._n = 0
                self._start_byte = 0
        else:
            ok = True
        if stats is not None:
            self.write_sidecar(stats)
        return ok and self.n_dropped == 0

    def write_sidecar(self, stats: dict) -> None:
        """Write ``online_sweeps_<NNN>.json`` (atomically) with the file's and the decoder's
        counters. Not real-time. Never raises (an error is counted)."""
        side = self.path.with_suffix(".json")
        try:
            tmp = side.with_name(side.name + ".tmp")
            tmp.write_text(json.dumps({"records_written": self.n_written,
                                       "records_dropped": self.n_dropped,
                                       "write_errors": self.n_errors,
                                       "decoder": stats}, default=_json_default, indent=2))
            os.replace(tmp, side)
        except Exception as exc:  # noqa: BLE001
            self._note_error(exc)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def n_written(self) -> int:
        return self._bytes_written // RECORD_BYTES

    @property
    def n_buffered(self) -> int:
        return self._n - self._start_byte // RECORD_BYTES

    def __enter__(self) -> SweepFileWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _flush(self) -> bool:
        """One ``os.write`` of the buffered bytes (a short write is retried; what the OS does not
        take stays buffered, the file's byte stream stays contiguous)."""
        end = self._n * RECORD_BYTES
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
            self._n = 0
            self._start_byte = 0
            return True
        shift = self._start_byte // RECORD_BYTES  # rare error path: compact (may allocate)
        if shift:
            keep = self._n - shift
            self._buf[:keep] = self._buf[shift:self._n].copy()
            self._n = keep
            self._start_byte -= shift * RECORD_BYTES
        return False

    def _note_error(self, exc: BaseException) -> None:
        self.n_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"


def _create_next(directory: Path) -> tuple[int, Path]:
    taken = {p.name for p in directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}")}
    index = 0
    while True:
        name = f"{FILE_PREFIX}{index:03d}{FILE_SUFFIX}"
        if name not in taken:
            path = directory / name
            try:
                return os.open(path, _OPEN_FLAGS, 0o644), path
            except FileExistsError:
                pass
        index += 1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError("os.write wrote nothing")
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
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


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (os.PathLike, Path)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("sweepsort")
    except Exception:  # noqa: BLE001
        return "unknown"
