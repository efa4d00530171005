"""Crash-safe, append-only file of online spike detections.

File layout (all little-endian; the machinery is :mod:`oe_plugin.outputs.record_file`)::

    offset 0   8 bytes   magic b"SWSPIKE1"
    offset 8   uint64    header_bytes: total header length, a multiple of 16
    offset 16  UTF-8 JSON metadata, padded with spaces to header_bytes
    header_bytes ...     packed records of SPIKE_DTYPE (20 bytes each), in write order

The JSON holds ``format`` (:data:`FORMAT_NAME`), ``format_version`` (:data:`FORMAT_VERSION`),
``dtype`` (field name and numpy type string per field), ``record_bytes``, ``sample_rate_hz``,
``n_channels``, ``created_utc``, ``sweepsort_version`` and the caller's ``metadata`` dict.

Files are named ``<recording_dir>/sweepsort/online_spikes_<NNN>.bin`` with the next free NNN,
so several recordings into one folder never collide.

The writer runs on the GUI's audio thread, which executes Python without holding the GIL (see
``docs/host-threading.md``): it starts no thread, takes no lock, calls no numba code, and does
not allocate array memory per block. Records go into a buffer preallocated at construction;
:meth:`SpikeFileWriter.maybe_flush` writes the buffered bytes with one ``os.write`` on an
``O_APPEND`` descriptor once ``flush_every_s`` of samples have passed or the buffer is 3/4 full,
so a crash of the GUI loses at most the unflushed buffer (about ``flush_every_s``).
:meth:`append` and :meth:`maybe_flush` never raise: they return ``False`` on trouble and keep
counters (``n_dropped``, ``n_errors``, ``last_error``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from oe_plugin.outputs.record_file import (
    HEADER_ALIGN,
    HEADER_PREFIX,
    RecordFileWriter,
    RecordFormat,
)

__all__ = [
    "FILE_PREFIX", "FILE_SUFFIX", "FORMAT_NAME", "FORMAT_VERSION", "HEADER_ALIGN",
    "HEADER_PREFIX", "MAGIC", "RECORD_BYTES", "SPIKE_DTYPE", "SPIKE_DTYPE_V1", "SPIKE_FORMAT",
    "SUBDIR",
    "SpikeFileWriter", "dtype_description", "encode_header",
]

MAGIC = b"SWSPIKE1"
FORMAT_NAME = "sweepsort online spikes"
FORMAT_VERSION = 2
SUBDIR = "sweepsort"
FILE_PREFIX = "online_spikes_"
FILE_SUFFIX = ".bin"
#: One detection: sample number (stream sample count since acquisition start, as emitted by the
#: module), data channel (0-based), amplitude (µV, signed peak), unit (-1 = unsorted), and the
#: displacement (µm) the module's drift stage shifted the channel by at the spike (NaN: none).
SPIKE_DTYPE = np.dtype(
    [("sample_number", "<i8"), ("channel", "<i2"), ("amplitude_uv", "<f4"), ("unit", "<i2"),
     ("displacement_um", "<f4")]
)
RECORD_BYTES = SPIKE_DTYPE.itemsize  # 20: packed
#: Version 1 (before live motion tracking): the same without ``displacement_um`` (read as NaN).
SPIKE_DTYPE_V1 = np.dtype(
    [("sample_number", "<i8"), ("channel", "<i2"), ("amplitude_uv", "<f4"), ("unit", "<i2")]
)
SPIKE_FORMAT = RecordFormat(MAGIC, FORMAT_NAME, FORMAT_VERSION, SPIKE_DTYPE, FILE_PREFIX,
                            FILE_SUFFIX, SUBDIR, older=((1, SPIKE_DTYPE_V1),))


def dtype_description() -> list[list[str]]:
    """``SPIKE_DTYPE`` as stored in the header: ``[[name, numpy type string], ...]``."""
    return SPIKE_FORMAT.dtype_description()


def encode_header(meta: dict) -> bytes:
    """The header bytes for ``meta``: magic, length, JSON padded to a multiple of 16."""
    return SPIKE_FORMAT.encode_header(meta)


class SpikeFileWriter(RecordFileWriter):
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

    FORMAT = SPIKE_FORMAT

    def __init__(self, fd: int, path: Path, header: dict, capacity_records: int,
                 flush_every_samples: int):
        super().__init__(fd, path, header, capacity_records, flush_every_samples)
        self._sample = self._buf["sample_number"]
        self._channel = self._buf["channel"]
        self._amplitude = self._buf["amplitude_uv"]
        self._unit = self._buf["unit"]
        self._disp = self._buf["displacement_um"]
        self.sample_offset = 0
        """Added to every appended sample number (a module's count -> the stream's absolute
        sample numbers, :class:`oe_plugin.online.clock.SampleClock`)."""

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
        return cls._create(recording_dir, sample_rate_hz, metadata,
                           capacity_records=capacity_records, flush_every_s=flush_every_s,
                           n_channels=n_channels)

    @classmethod
    def _header_fields(cls, n_channels) -> dict:
        return {"n_channels": int(n_channels)}

    # -- real-time path: never raises, no allocation of array memory ------------------------

    def append(self, sample_numbers, channels, amplitudes_uv, units, n: int,
               displacements_um=None) -> bool:
        """Buffer the first ``n`` records of the given arrays.

        Parameters
        ----------
        sample_numbers : array, shape (>= n,), integer — sample numbers.
        channels : array, shape (>= n,), integer — data channels (0-based).
        amplitudes_uv : array, shape (>= n,), float — amplitudes, µV.
        units : array, shape (>= n,), integer, or None — unit ids (None: all -1, unsorted).
        n : int — how many records to take.
        displacements_um : array, shape (>= n,), float, or None — the drift stage's
            displacement per spike, µm (None: all NaN, no correction).

        Returns
        -------
        bool
            True when all ``n`` records are buffered or written; False when some were dropped
            (counted in ``n_dropped``) or an error occurred (``n_errors``, ``last_error``).
            When the buffer fills up it is flushed at once (never dropped silently).
        """
        return self._append(n, (sample_numbers, channels, amplitudes_uv, units,
                                displacements_um))

    def _fill(self, a: int, b: int, start: int, sources) -> None:
        sample_numbers, channels, amplitudes_uv, units, disp = sources
        stop = start + (b - a)
        self._sample[a:b] = sample_numbers[start:stop]
        if self.sample_offset:
            self._sample[a:b] += self.sample_offset
        self._channel[a:b] = channels[start:stop]
        self._amplitude[a:b] = amplitudes_uv[start:stop]
        if units is None:
            self._unit[a:b] = -1
        else:
            self._unit[a:b] = units[start:stop]
        if disp is None:
            self._disp[a:b] = np.nan
        else:
            self._disp[a:b] = disp[start:stop]
