"""Crash-safe, append-only file of online spike detections.

File layout (all little-endian)::

    offset 0   8 bytes   magic b"SWSPIKE1"
    offset 8   uint64    header_bytes: total header length, a multiple of 16
    offset 16  UTF-8 JSON metadata, padded with spaces to header_bytes
    header_bytes ...     packed records of SPIKE_DTYPE (16 bytes each), in write order

The JSON holds ``format`` (:data:`FORMAT_NAME`), ``format_version`` (:data:`FORMAT_VERSION`),
``dtype`` (field name and numpy type string per field), ``record_bytes``, ``sample_rate_hz``,
``n_channels``, ``created_utc``, ``sweepsort_version`` and the caller's ``metadata`` dict.

Files are named ``<recording_dir>/sweepsort/online_spikes_<NNN>.bin`` with the next free NNN,
so several recordings into one folder never collide.

The writer runs on the GUI's audio thread, which executes Python without holding the GIL (see
``notes/host-threading.md``): it starts no thread, takes no lock, calls no numba code, and does
not allocate array memory per block. Records go into a buffer preallocated at construction;
:meth:`SpikeFileWriter.maybe_flush` writes the buffered bytes with one ``os.write`` on an
``O_APPEND`` descriptor once ``flush_every_s`` of samples have passed or the buffer is 3/4 full,
so a crash of the GUI loses at most the unflushed buffer (about ``flush_every_s``).
:meth:`append` and :meth:`maybe_flush` never raise: they return ``False`` on trouble and keep
counters (``n_dropped``, ``n_errors``, ``last_error``).
"""

from __future__ import annotations

import datetime
import json
import os
import struct
from pathlib import Path

import numpy as np

MAGIC = b"SWSPIKE1"
FORMAT_NAME = "sweepsort online spikes"
FORMAT_VERSION = 1
SUBDIR = "sweepsort"
FILE_PREFIX = "online_spikes_"
FILE_SUFFIX = ".bin"
#: One detection: sample number (stream sample count since acquisition start, as emitted by the
#: module), data channel (0-based), amplitude (µV, signed peak), unit (-1 = unsorted).
SPIKE_DTYPE = np.dtype(
    [("sample_number", "<i8"), ("channel", "<i2"), ("amplitude_uv", "<f4"), ("unit", "<i2")]
)
RECORD_BYTES = SPIKE_DTYPE.itemsize  # 16: packed
HEADER_ALIGN = 16
HEADER_PREFIX = struct.Struct("<8sQ")  # magic, header_bytes (the first 16 bytes)

_OPEN_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL
               | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))


def dtype_description() -> list[list[str]]:
    """``SPIKE_DTYPE`` as stored in the header: ``[[name, numpy type string], ...]``."""
    return [[name, SPIKE_DTYPE.fields[name][0].str] for name in SPIKE_DTYPE.names]


def encode_header(meta: dict) -> bytes:
    """The header bytes for ``meta``: magic, length, JSON padded to a multiple of 16."""
    body = json.dumps(meta, default=_json_default, ensure_ascii=False, sort_keys=True)
    raw = body.encode("utf-8")
    total = HEADER_PREFIX.size + len(raw)
    total += -total % HEADER_ALIGN
    return HEADER_PREFIX.pack(MAGIC, total) + raw + b" " * (total - HEADER_PREFIX.size - len(raw))


class SpikeFileWriter:
    """Append spike records to one ``online_spikes_<NNN>.bin`` file.

    Make one with :meth:`open` (on a non-real-time thread, e.g. in ``start_recording``); then
    per block call :meth:`append` and :meth:`maybe_flush` (real-time safe); finally
    :meth:`close` (flushes and fsyncs).

    Attributes
    ----------
    path : Path
        The file.
    header : dict
        The metadata written in the header.
    capacity_records : int
        Buffer size, records.
    flush_every_samples : int
        Flush interval, samples.
    n_written : int
        Records fully written to the file.
    n_dropped : int
        Records lost (buffer full while the disk refused writes, or appended after close).
    n_errors : int
        Failed writes or unexpected errors; ``last_error`` describes the latest.
    """

    def __init__(self, fd: int, path: Path, header: dict, capacity_records: int,
                 flush_every_samples: int):
        self.path = path
        self.header = header
        self.capacity_records = int(capacity_records)
        self.flush_every_samples = int(flush_every_samples)
        self._fd = fd
        self._buf = np.zeros(self.capacity_records, dtype=SPIKE_DTYPE)
        self._sample = self._buf["sample_number"]
        self._channel = self._buf["channel"]
        self._amplitude = self._buf["amplitude_uv"]
        self._unit = self._buf["unit"]
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
    def open(cls, recording_dir: str | os.PathLike, sample_rate_hz: float, n_channels: int,
             metadata: dict | None = None, *, capacity_records: int = 65536,
             flush_every_s: float = 0.5) -> SpikeFileWriter:
        """Create ``<recording_dir>/sweepsort/online_spikes_<NNN>.bin`` and write its header.

        Parameters
        ----------
        recording_dir : path
            The recording directory the GUI passed to ``start_recording``.
        sample_rate_hz : float
            Stream sample rate, Hz.
        n_channels : int
            Stream channel count.
        metadata : dict, optional
            JSON-serialisable extras (module settings, probe name...), stored under
            ``"metadata"`` in the header; numpy scalars/arrays and paths are converted.
        capacity_records : int
            Preallocated buffer, records (16 bytes each).
        flush_every_s : float
            Flush interval in seconds of data (converted to samples).

        Raises
        ------
        OSError
            The directory or file cannot be created (not real-time: call it from
            ``start_recording`` and handle the error there).
        ValueError
            Bad arguments.
        """
        if not capacity_records >= 1:
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
            "n_channels": int(n_channels),
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

    # -- real-time path: never raises, no allocation of array memory ------------------------

    def append(self, sample_numbers, channels, amplitudes_uv, units, n: int) -> bool:
        """Buffer the first ``n`` records of the given arrays.

        Parameters
        ----------
        sample_numbers : array, shape (>= n,), integer — sample numbers.
        channels : array, shape (>= n,), integer — data channels (0-based).
        amplitudes_uv : array, shape (>= n,), float — amplitudes, µV.
        units : array, shape (>= n,), integer, or None — unit ids (None: all -1, unsorted).
        n : int — how many records to take.

        Returns
        -------
        bool
            True when all ``n`` records are buffered or written; False when some were dropped
            (counted in ``n_dropped``) or an error occurred (``n_errors``, ``last_error``).
            When the buffer fills up it is flushed at once (never dropped silently).
        """
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
                a, b = self._n_records, self._n_records + k
                self._sample[a:b] = sample_numbers[done:done + k]
                self._channel[a:b] = channels[done:done + k]
                self._amplitude[a:b] = amplitudes_uv[done:done + k]
                if units is None:
                    self._unit[a:b] = -1
                else:
                    self._unit[a:b] = units[done:done + k]
                self._n_records = b
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
        if self._fd < 0:
            return self.n_dropped == 0
        ok = self.flush()
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._note_error(exc)
            ok = False
        try:
            os.close(self._fd)
        except OSError as exc:
            self._note_error(exc)
            ok = False
        self._fd = -1
        if self._n_records:
            self.n_dropped += self._n_records - self._start_byte // RECORD_BYTES
            self._n_records = 0
            self._start_byte = 0
        return ok and self.n_dropped == 0

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def n_written(self) -> int:
        return self._bytes_written // RECORD_BYTES

    @property
    def n_buffered(self) -> int:
        """Records appended but not yet (completely) written."""
        return self._n_records - self._start_byte // RECORD_BYTES

    def __enter__(self) -> SpikeFileWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"SpikeFileWriter({str(self.path)!r}, written={self.n_written}, "
                f"buffered={self.n_buffered}, dropped={self.n_dropped}, errors={self.n_errors})")

    # -- internals --------------------------------------------------------------------------

    def _flush(self) -> bool:
        """Write buffered bytes; keep whatever the OS did not take (the byte stream in the file
        stays contiguous after a short write). Returns True if the buffer is now empty."""
        end = self._n_records * RECORD_BYTES
        while self._start_byte < end:
            if self._fd < 0:
                return False
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
        shift_records = self._start_byte // RECORD_BYTES
        if shift_records:
            keep = self._n_records - shift_records
            self._buf[:keep] = self._buf[shift_records:self._n_records].copy()
            self._n_records = keep
            self._start_byte -= shift_records * RECORD_BYTES
        return False

    def _note_error(self, exc: BaseException) -> None:
        self.n_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"


def _create_next(directory: Path) -> tuple[int, Path]:
    """Create the first free ``online_spikes_<NNN>.bin`` exclusively; return (fd, path)."""
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
    except Exception:
        return "unknown"
