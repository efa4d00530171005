"""The online statistics file: ``<recording_dir>/sweepsort/online_stats.bin`` + ``.json``.

Written by the pipeline module every ``[stats] write_every_s`` seconds of data (and at the end
of a recording), read by ``sweepsort monitor``. The write happens on the GUI's audio thread, so
it is made cheap and bounded:

- ``online_stats.json`` (the *sidecar*) is written **once**, at ``start_recording``: format,
  a random ``token``, sample rate, refresh rate, the units, and the module's settings;
- ``online_stats.bin`` is a raw little-endian buffer, **preallocated** at its largest size by
  :class:`StatsFileWriter`: a fixed header of ``HEADER_WORDS`` int64 (below), then
  ``time_counts`` (R, n_bins) int64, ``sweep_counts`` (R, n_sweeps) int64, ``sweep_frames``
  (n_sweeps,) int64 and ``no_sweep_counts`` (R,) int64, packed in place (R = units + 1, the last
  row unsorted spikes) — only the bins and sweep indices in use. A rewrite packs the tables
  into the buffer (no allocation) and writes it **in place**, as a *seqlock*: the header with
  an odd sequence number first, then the tables, then the header again with the next (even)
  number. A reader reads the whole file, then the sequence number again, and keeps what it
  read only if both are the same even number (else it retries): it never uses half of a
  write. No zip, no ``fsync`` (derived data, rewritten seconds later; an fsync can block for
  tens of ms), and no temporary file + ``os.replace``: on ext4 a rename over an existing file
  (and a truncate to zero) makes the kernel start writing the new file's data back at once
  (``auto_da_alloc``), which cost ~0.9 ms median and up to 6 ms per rewrite here, against
  ~0.1 ms for three in-place writes. A payload larger than ``chunk_bytes`` (hour-long
  sessions with hundreds of units) is written over several ``process()`` calls
  (:meth:`StatsFileWriter.step`); readers retry meanwhile. A crash in the middle of a write
  (a ~0.1 ms window) leaves an odd sequence number: :func:`read_stats` then says so.

Header words: 0 magic, 1 version, 2 token (= the sidecar's), 3 sequence number (odd while a
write is under way; write k ends at 2k), 4 samples processed, 5 time written (ns since the
epoch), 6 R, 7 n_bins, 8 bin width (samples), 9 n_sweeps, 10 size of this write's data
(bytes; the file may be longer, from an earlier, larger write).

:func:`read_stats` returns the same ``(arrays, meta)`` as before the raw format:
``time_counts``, ``bin_s``, ``sweep_counts``, ``sweep_seconds`` (frames / refresh rate),
``no_sweep_counts``, ``units``; ``meta`` = the sidecar plus ``samples_processed``,
``written_unix_s`` and ``write_seq``.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path

import numpy as np

FORMAT = "sweepsort-online-stats"
FORMAT_VERSION = 2
FILE_NAME = "online_stats.bin"
SIDECAR_NAME = "online_stats.json"
MAGIC = int.from_bytes(b"SWSTATS\x02", "little", signed=True)
HEADER_WORDS = 16
(H_MAGIC, H_VERSION, H_TOKEN, H_SEQ, H_SAMPLES, H_WRITTEN_NS, H_ROWS, H_BINS, H_BIN_SAMPLES,
 H_SWEEPS, H_SIZE) = range(11)


def stats_path(recording_dir) -> Path:
    return Path(recording_dir) / "sweepsort" / FILE_NAME


def sidecar_path(path) -> Path:
    return Path(path).with_name(SIDECAR_NAME)


def _write_atomic(path: Path, view) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


class StatsFileWriter:
    """Writes one recording's statistics file; ``n_rows`` = units + 1, tables at most
    ``max_bins`` time bins and ``max_sweeps`` sweep indices wide."""

    def __init__(self, path, n_rows: int, max_bins: int, max_sweeps: int, meta: dict,
                 sample_rate_hz: float, refresh_hz: float, chunk_bytes: int = 1 << 20):
        self.path = Path(path)
        self.rows = int(n_rows)
        self.max_bins = int(max_bins)
        self.max_sweeps = int(max_sweeps)
        self.chunk_bytes = max(4096, int(chunk_bytes))
        self.token = secrets.randbits(62)
        words = HEADER_WORDS + self.rows * (self.max_bins + self.max_sweeps + 1) + self.max_sweeps
        self.buf = np.zeros(words, np.int64)
        self.header = self.buf[:HEADER_WORDS]
        self.header[H_MAGIC] = MAGIC
        self.header[H_VERSION] = FORMAT_VERSION
        self.header[H_TOKEN] = self.token
        self.header[H_ROWS] = self.rows
        self._bytes = memoryview(self.buf).cast("B")
        self._head = self._bytes[:HEADER_WORDS * 8]
        self._fd = -1
        self._busy = False
        self._pos = 0
        self._end = 0
        self.seq = 0
        self.n_written = 0
        self.ms_max = 0.0  # the costliest single call (start or step), ms
        self.ms_last = 0.0
        self.ms_total = 0.0  # every start/step call, ms (mean = ms_total / calls)
        self.calls = 0
        side = dict(meta, format=FORMAT, format_version=FORMAT_VERSION, token=self.token,
                    sample_rate_hz=float(sample_rate_hz), refresh_hz=float(refresh_hz),
                    units=list(range(self.rows - 1)) + [-1], data_file=self.path.name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # a stale data file from an earlier session must not pair with the new sidecar
            os.unlink(self.path)
        except OSError:
            pass
        _write_atomic(sidecar_path(self.path), memoryview(json.dumps(side, indent=1).encode()))
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0),
                           0o644)

    @property
    def busy(self) -> bool:
        """A write is under way (its remaining pieces go out in :meth:`step`)."""
        return self._busy

    def start(self, time_counts, n_bins: int, bin_samples: int, sweep_counts, sweep_frames,
              n_sweeps: int, no_sweep, samples_processed: int) -> None:
        """Pack the tables (their first ``n_bins`` / ``n_sweeps`` columns) and write the file
        (or its first ``chunk_bytes``; :meth:`step` writes the rest). A write still under way is
        finished first."""
        t0 = time.perf_counter()
        if self._busy:
            self._finish_all()
        if self._fd < 0:
            return
        r = self.rows
        nb = max(0, min(int(n_bins), self.max_bins, time_counts.shape[1]))
        ns = max(0, min(int(n_sweeps), self.max_sweeps, sweep_counts.shape[1]))
        h = self.header
        self.seq += 1
        h[H_SEQ] = 2 * self.seq - 1  # odd: under way
        h[H_SAMPLES] = samples_processed
        h[H_WRITTEN_NS] = time.time_ns()
        h[H_BINS] = nb
        h[H_BIN_SAMPLES] = bin_samples
        h[H_SWEEPS] = ns
        o = HEADER_WORDS
        self.buf[o:o + r * nb].reshape(r, nb)[...] = time_counts[:r, :nb]
        o += r * nb
        self.buf[o:o + r * ns].reshape(r, ns)[...] = sweep_counts[:r, :ns]
        o += r * ns
        self.buf[o:o + ns] = sweep_frames[:ns]
        o += ns
        self.buf[o:o + r] = no_sweep[:r]
        o += r
        h[H_SIZE] = o * 8
        self._put(0, self._head)
        self._busy = True
        self._pos, self._end = HEADER_WORDS * 8, o * 8
        self._step()
        self._cost(t0)

    def step(self) -> bool:
        """Write the next piece of a write under way; True when the file has been swapped in
        (or no write was under way)."""
        if not self._busy:
            return True
        t0 = time.perf_counter()
        done = self._step()
        self._cost(t0)
        return done

    def _put(self, offset: int, view) -> None:
        os.lseek(self._fd, offset, os.SEEK_SET)
        while view:
            view = view[os.write(self._fd, view):]

    def _step(self) -> bool:
        try:
            stop = min(self._end, self._pos + self.chunk_bytes)
            if self._pos < stop:
                self._put(self._pos, self._bytes[self._pos:stop])
                self._pos = stop
            if self._pos < self._end:
                return False
            self.header[H_SEQ] = 2 * self.seq  # even: complete
            self._put(0, self._head)
        except BaseException:
            self._busy = False  # the file keeps an odd number until the next write
            raise
        self._busy = False
        self.n_written += 1
        return True

    def _finish_all(self) -> None:
        while not self._step():
            pass

    def finish(self) -> None:
        """Complete a write under way (message thread, end of recording)."""
        if self._busy:
            self._finish_all()

    def close(self) -> None:
        """Finish a write under way and close the file."""
        try:
            self.finish()
        finally:
            fd, self._fd = self._fd, -1
            if fd >= 0:
                os.close(fd)

    def _cost(self, t0: float) -> None:
        ms = (time.perf_counter() - t0) * 1e3
        self.ms_last = ms
        self.ms_total += ms
        self.calls += 1
        if ms > self.ms_max:
            self.ms_max = ms


def write_stats(path, arrays: dict, meta: dict) -> float:
    """One-shot write of ``arrays`` (the keys :func:`read_stats` returns; tests, tools) with
    ``meta`` in the sidecar; returns seconds taken."""
    t0 = time.perf_counter()
    tc = np.asarray(arrays["time_counts"], np.int64)
    rows = tc.shape[0]
    sc = np.asarray(arrays.get("sweep_counts", np.zeros((rows, 0))), np.int64)
    refresh = float(meta.get("refresh_hz", 200.0))
    secs = np.asarray(arrays.get("sweep_seconds", np.zeros(sc.shape[1])), np.float64)
    frames = np.rint(secs * refresh).astype(np.int64)
    fs = float(meta.get("sample_rate_hz", 30000.0))
    bin_samples = int(round(float(arrays.get("bin_s", 1.0)) * fs))
    no_sweep = np.asarray(arrays.get("no_sweep_counts", np.zeros(rows)), np.int64)
    w = StatsFileWriter(path, rows, tc.shape[1], sc.shape[1], meta, fs, refresh)
    w.start(tc, tc.shape[1], bin_samples, sc, frames, sc.shape[1], no_sweep,
            int(meta.get("samples_processed", 0)))
    w.close()
    return time.perf_counter() - t0


def _find(p: Path) -> Path:
    if p.is_dir():
        hits = sorted(p.rglob(FILE_NAME), key=lambda q: q.stat().st_mtime)
        if not hits:
            raise FileNotFoundError(f"{p}: no {FILE_NAME} (is the pipeline module's [stats] "
                                    "stage on, and recording?)")
        return hits[-1]
    if p.name == SIDECAR_NAME:
        p = p.with_name(FILE_NAME)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (no {FILE_NAME})")
    return p


def _parse(p: Path) -> tuple[dict, dict]:
    side = json.loads(sidecar_path(p).read_text())
    if side.get("format") != FORMAT:
        raise ValueError(f"{p}: not a {FORMAT} file")
    with open(p, "rb") as f:
        raw = f.read()
        f.seek(H_SEQ * 8)
        seq_after = int.from_bytes(f.read(8), "little", signed=True)
    if len(raw) < HEADER_WORDS * 8:
        raise ValueError(f"{p}: truncated ({len(raw)} bytes)")
    buf = np.frombuffer(raw[:len(raw) // 8 * 8], "<i8")
    h = buf[:HEADER_WORDS]
    if h[H_MAGIC] != MAGIC or h[H_VERSION] != FORMAT_VERSION:
        raise ValueError(f"{p}: not a {FORMAT} v{FORMAT_VERSION} data file")
    if int(h[H_SEQ]) % 2 or int(h[H_SEQ]) != seq_after:
        raise ValueError(f"{p}: being rewritten (or a write was interrupted)")
    if int(h[H_TOKEN]) != int(side.get("token", -1)):
        raise ValueError(f"{p}: data file and {SIDECAR_NAME} belong to different sessions")
    r, nb, ns = int(h[H_ROWS]), int(h[H_BINS]), int(h[H_SWEEPS])
    size = int(h[H_SIZE])
    if size > len(raw) or size != 8 * (HEADER_WORDS + r * (nb + ns + 1) + ns):
        raise ValueError(f"{p}: size disagrees with its header")
    o = HEADER_WORDS
    tc = buf[o:o + r * nb].reshape(r, nb).astype(np.int64)
    o += r * nb
    sc = buf[o:o + r * ns].reshape(r, ns).astype(np.int64)
    o += r * ns
    frames = buf[o:o + ns].astype(np.int64)
    o += ns
    no_sweep = buf[o:o + r].astype(np.int64)
    fs = float(side["sample_rate_hz"])
    refresh = float(side.get("refresh_hz", 200.0)) or 200.0
    arrays = {"time_counts": tc, "bin_s": np.float64(int(h[H_BIN_SAMPLES]) / fs),
              "sweep_counts": sc, "sweep_seconds": frames / refresh,
              "no_sweep_counts": no_sweep,
              "units": np.asarray(side.get("units", list(range(r - 1)) + [-1]), np.int32)}
    meta = dict(side, samples_processed=int(h[H_SAMPLES]),
                written_unix_s=int(h[H_WRITTEN_NS]) * 1e-9, write_seq=int(h[H_SEQ]) // 2)
    return arrays, meta


def read_stats(path_or_recording_dir, retries: int = 20) -> tuple[dict, dict]:
    """(arrays, meta) of a stats file (or of the newest one under a recording directory)."""
    p = _find(Path(path_or_recording_dir))
    last = None
    for _ in range(max(1, retries)):
        try:
            return _parse(p)
        except (OSError, ValueError, KeyError) as exc:  # a write under way: retry
            last = exc
            time.sleep(0.05)
    raise ValueError(f"{p}: unreadable ({last})")
