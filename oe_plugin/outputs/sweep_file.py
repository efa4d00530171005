"""Crash-safe, append-only file of the sweep decoder's frames (one record per refresh).

The same design as the spike file (:mod:`oe_plugin.outputs.spike_file`; the shared machinery is
:mod:`oe_plugin.outputs.record_file`), little-endian::

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

import json
import os

import numpy as np

from oe_plugin.outputs.record_file import (
    HEADER_ALIGN,
    HEADER_PREFIX,
    RecordFileWriter,
    RecordFormat,
    json_default,
)
from oe_plugin.protocol.decoder import DECODED_DTYPE

__all__ = [
    "FILE_PREFIX", "FILE_SUFFIX", "FORMAT_NAME", "FORMAT_VERSION", "HEADER_ALIGN",
    "HEADER_PREFIX", "MAGIC", "RECORD_BYTES", "SUBDIR", "SWEEP_FORMAT", "SWEEP_RECORD_DTYPE",
    "SweepFileWriter", "dtype_description", "encode_header",
]

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
SWEEP_FORMAT = RecordFormat(MAGIC, FORMAT_NAME, FORMAT_VERSION, SWEEP_RECORD_DTYPE, FILE_PREFIX,
                            FILE_SUFFIX, SUBDIR)


def dtype_description() -> list[list[str]]:
    """The record layout as stored in the header: ``[[name, numpy type string], ...]``."""
    return SWEEP_FORMAT.dtype_description()


def encode_header(meta: dict) -> bytes:
    """Magic, length and the JSON padded with spaces to a multiple of 16 bytes."""
    return SWEEP_FORMAT.encode_header(meta)


class SweepFileWriter(RecordFileWriter):
    """Append decoded frames to one ``online_sweeps_<NNN>.bin``.

    Make one with :meth:`open` (not real-time: ``start_recording``); per block call
    :meth:`append` and :meth:`maybe_flush` (real-time safe); finally :meth:`close`.

    Attributes: ``path``, ``header``, ``capacity_records``, ``flush_every_samples``,
    ``n_written`` (records on disk), ``n_dropped``, ``n_errors``, ``last_error``.
    """

    FORMAT = SWEEP_FORMAT

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
        return cls._create(recording_dir, sample_rate_hz, metadata,
                           capacity_records=capacity_records, flush_every_s=flush_every_s,
                           protocol=protocol)

    @classmethod
    def _header_fields(cls, protocol) -> dict:
        return {"protocol": dict(protocol)}

    # -- real-time path ---------------------------------------------------------------------

    def append(self, frames: np.ndarray, n: int) -> bool:
        """Buffer the first ``n`` records of ``frames`` (SWEEP_RECORD_DTYPE, e.g. the decoder's
        output buffer). Flushes at once when the buffer fills. Returns False if records were
        dropped (``n_dropped``) or an error occurred (``n_errors``, ``last_error``)."""
        return self._append(n, frames)

    def _fill(self, a: int, b: int, start: int, sources) -> None:
        self._buf[a:b] = sources[start:start + (b - a)]

    # -- not real-time ----------------------------------------------------------------------

    def close(self, stats: dict | None = None, *, fsync: bool = True) -> bool:
        """Flush, (``fsync``) and close (idempotent; never raises); with ``stats``, also write
        the JSON sidecar (:meth:`write_sidecar`). On the audio thread call it with
        ``fsync=False`` and no stats (an fsync can take milliseconds; the OS still writes the
        data). Returns True when every appended record reached the file."""
        ok = self._close(fsync=fsync)
        if stats is not None:
            self.write_sidecar(stats)
        return ok

    def write_sidecar(self, stats: dict) -> None:
        """Write ``online_sweeps_<NNN>.json`` (atomically) with the file's and the decoder's
        counters. Not real-time. Never raises (an error is counted)."""
        side = self.path.with_suffix(".json")
        try:
            tmp = side.with_name(side.name + ".tmp")
            tmp.write_text(json.dumps({"records_written": self.n_written,
                                       "records_dropped": self.n_dropped,
                                       "write_errors": self.n_errors,
                                       "decoder": stats}, default=json_default, indent=2))
            os.replace(tmp, side)
        except Exception as exc:
            self._note_error(exc)
