"""The online statistics file: ``<recording_dir>/sweepsort/online_stats.bin`` + ``.json``.

Written by the pipeline module every ``[stats] write_every_s`` seconds of data (and at the end
of a recording), read by ``sweepsort monitor``. Format version 5 (version 4 plus the live
motion estimate): the sweep tables are kept **per stimulus experiment**, each with the session
code its START block carried (:mod:`oe_plugin.online.stats` says how frames and spikes are
assigned to experiments), and, with ``[match] track_motion``, the displacement the module
applied over time. The
write happens on the GUI's audio thread, so it is made cheap and bounded:

- ``online_stats.json`` (the *sidecar*) is written **once**, at ``start_recording``: format,
  format version, a random ``token``, sample rate, refresh rate, the units, the module's
  settings and the stimulus session files it was given (``session_files``, ``session_dir``;
  ``sweepsort monitor`` matches them to experiments);
- ``online_stats.bin`` is a raw little-endian int64 buffer, **preallocated** at its largest
  size by :class:`StatsFileWriter`: a fixed header of ``HEADER_WORDS`` words (below), then the
  tables packed in place — only the time bins, experiment slots and sweep columns in use
  (R = units + 1, the last row unsorted spikes; S = experiment slots; C = sweep columns)::

      time_counts    (R, n_bins)       spikes per unit per time bin (whole acquisition)
      experiments    (S, EXP_FIELDS)   per slot: X_NUMBER, X_MERGED, X_START, X_LAST,
                                       X_FRAMES, X_NONE_FRAMES, X_NO_COLUMN, X_SIG_LEN,
                                       X_CODE
      signatures     (S, SIG_LEN)      per slot: the first sweep indices shown (see below)
      no_sweep       (S, R)            per slot: spikes outside any counted sweep
      col_exp        (C,)              sweep column -> experiment slot
      col_sweep      (C,)              sweep column -> sweep index
      col_frames     (C,)              refreshes shown per column (exposure)
      sweep_counts   (R, C)            spikes per unit per column
      motion         (M, W)            v5: displacement (µm, float64 bits) per depth window
                                       applied on samples [k E, (k+1) E) of the acquisition
                                       (E = header word 20); M = 0 without live tracking

  A column is one (experiment, sweep index) pair, allocated the first time that experiment
  shows that sweep index, so memory grows with the conditions actually shown, not with
  experiments x sweep indices. The *signature* of a slot is the sequence of sweep indices it
  showed, blanks (65535) and error-flagged refreshes left out and consecutive repeats collapsed,
  first ``SIG_LEN`` of them: what ``sweepsort monitor`` compares with a session file's
  presentation order to find the experiment's sweep table.

  A rewrite packs the tables into the buffer (no allocation) and writes it **in place**, as a
  *seqlock*: the header with an odd sequence number first, then the tables, then the header
  again with the next (even) number. A reader reads the whole file, then the sequence number
  again, and keeps what it read only if both are the same even number (else it retries): it
  never uses half of a write. No zip, no ``fsync`` (derived data, rewritten seconds later; an
  fsync can block for tens of ms), and no temporary file + ``os.replace``: on ext4 a rename
  over an existing file (and a truncate to zero) makes the kernel start writing the new file's
  data back at once (``auto_da_alloc``), which cost ~0.9 ms median and up to 6 ms per rewrite
  here, against ~0.1 ms for three in-place writes. The packing is one compiled call
  (:mod:`oe_plugin.outputs.stats_pack`) in one ``process()`` call, and each of the three writes
  (``os.pwrite`` where there is one) goes out in a ``process()`` call of its own (session 16:
  at 64 channels the rewrite's block was the p99; session 23: the numpy packing, 0.09-0.14 ms
  with the audio thread's cold caches, and three writes in one call, ~0.08 ms, were still
  among the costliest blocks). A payload larger than ``chunk_bytes``
  (hour-long sessions with hundreds of units) is written over several ``process()`` calls
  (:meth:`StatsFileWriter.step`); readers retry meanwhile. A crash in the middle of a write
  (a window of three ``process()`` calls) leaves an odd sequence number: :func:`read_stats`
  then says so.

Header words: 0 magic, 1 version, 2 token (= the sidecar's), 3 sequence number (odd while a
write is under way; write k ends at 2k), 4 samples processed, 5 time written (ns since the
epoch), 6 R, 7 n_bins, 8 bin width (samples), 9 C (columns in use), 10 size of this write's
data (bytes; the file may be longer, from an earlier, larger write), 11 S (slots in use),
12 SIG_LEN, 13 experiments seen (START markers), 14 experiments folded into the last slot,
15 refreshes whose sweep got no column (column pool full), 16 spikes dropped from the pending
queue, 17 sample offset (the stream's sample number of the acquisition's first sample, as the
module's :class:`~oe_plugin.online.clock.SampleClock` found it: 0 for sources that restart at 0;
the tables count samples from the acquisition's start); v5: 18 M (motion rows), 19 W (depth
windows), 20 E (samples per motion row), 21 motion estimates rejected (runaway fallback);
22-23 reserved (0). The sidecar's ``motion_depth_um`` gives the W windows' depths.

:func:`read_stats` returns ``(arrays, meta)``: ``arrays`` = ``time_counts``, ``bin_s``,
``units`` and ``experiments`` (a list of :class:`ExperimentStats`, one per slot, dense tables
per sweep index); ``meta`` = the sidecar plus ``samples_processed``, ``written_unix_s``,
``write_seq``, ``experiments_seen``, ``experiments_folded``, ``frames_without_column``,
``pending_dropped`` and ``sample_offset``; v5 adds ``arrays["motion_um"]`` (M, W) float64,
``arrays["motion_time_s"]`` (M,) (each row's start, s since the acquisition's start),
``arrays["motion_depth_um"]`` (W,) and ``meta["motion_rejected"]`` (a v4 file reads with M = 0).
Older versions (v2 had one sweep table for the whole acquisition) are not read:
:class:`StatsFormatError` names the file's version. The file is derived data; replaying the
recording through the pipeline module (``sweepsort replay``) gives one in this format.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oe_plugin.outputs.stats_pack import TablePacker

_PWRITE = getattr(os, "pwrite", None)

FORMAT = "sweepsort-online-stats"
FORMAT_VERSION = 5
READ_VERSIONS = (4, 5)  # v4: the same without the motion table
FILE_NAME = "online_stats.bin"
SIDECAR_NAME = "online_stats.json"
MAGIC_PREFIX = b"SWSTATS"
MAGIC = int.from_bytes(MAGIC_PREFIX + bytes([FORMAT_VERSION]), "little", signed=True)
MAGICS = {v: int.from_bytes(MAGIC_PREFIX + bytes([v]), "little", signed=True)
          for v in READ_VERSIONS}
HEADER_WORDS = 24
(H_MAGIC, H_VERSION, H_TOKEN, H_SEQ, H_SAMPLES, H_WRITTEN_NS, H_ROWS, H_BINS, H_BIN_SAMPLES,
 H_COLUMNS, H_SIZE, H_SLOTS, H_SIG_LEN, H_EXPERIMENTS, H_FOLDED, H_NO_COLUMN,
 H_PENDING_DROPPED, H_SAMPLE_OFFSET, H_MOTION_ROWS, H_MOTION_WINDOWS, H_MOTION_EVERY,
 H_MOTION_REJECTED) = range(22)

# per experiment slot (the ``experiments`` table, int64)
X_NUMBER = 0       # experiment number: 0 = before the first START, k = the k-th START
X_MERGED = 1       # experiments counted in the slot (> 1: later ones folded into the last slot)
X_START = 2        # sample number of the slot's first refresh (-1: none yet)
X_LAST = 3         # sample number of its latest refresh (-1: none yet)
X_FRAMES = 4       # refreshes decoded in it
X_NONE_FRAMES = 5  # of those, refreshes not in a counted sweep (blank, marker, unknown, ...)
X_NO_COLUMN = 6    # of those, refreshes of a sweep index that found no free column
X_SIG_LEN = 7      # length of its signature
X_CODE = 8         # the 24-bit session code decoded from its START block (-1: none / unknown)
EXP_FIELDS = 9


class StatsFormatError(ValueError):
    """The file is not a statistics file this version reads (the message names its version)."""


def stats_path(recording_dir) -> Path:
    return Path(recording_dir) / "sweepsort" / FILE_NAME


def sidecar_path(path) -> Path:
    return Path(path).with_name(SIDECAR_NAME)


@dataclass(frozen=True)
class StatsTables:
    """The count tables a write packs: references to the live arrays, not copies (shapes are
    capacities; the write takes the leading rows/columns in use). All int64, C-contiguous.

    time_counts (R, B); experiments (S, EXP_FIELDS); signatures (S, SIG_LEN); no_sweep (S, R);
    col_exp, col_sweep, col_frames (C,); sweep_counts (R, C).
    """

    time_counts: np.ndarray
    experiments: np.ndarray
    signatures: np.ndarray
    no_sweep: np.ndarray
    col_exp: np.ndarray
    col_sweep: np.ndarray
    col_frames: np.ndarray
    sweep_counts: np.ndarray


@dataclass
class ExperimentStats:
    """One experiment slot's tables, read back (dense per sweep index).

    number : experiment number (0 = refreshes before the first START marker of the acquisition,
        k = from the k-th START to the next); a folded slot holds ``number .. number+n_merged-1``.
    sweep_counts : int64 (R, NS) — spikes per unit row per sweep index (NS = highest index
        shown + 1; indices never shown have zero counts and zero frames).
    sweep_frames : int64 (NS,) — refreshes on screen per sweep index.
    no_sweep_counts : int64 (R,) — spikes not during a counted sweep (blanks, markers, gaps).
    n_frames, none_frames, frames_without_column : refresh counts (see the module docstring).
    start_sample, last_sample : sample numbers of the first / latest refresh (-1: none).
    signature : int64 (n,) — the first sweep indices shown (blanks left out, repeats collapsed).
    session_code : the session code its START block carried (None: none sent, or corrupted).
    """

    number: int
    sweep_counts: np.ndarray
    sweep_frames: np.ndarray
    no_sweep_counts: np.ndarray
    n_merged: int = 1
    n_frames: int = 0
    none_frames: int = 0
    frames_without_column: int = 0
    start_sample: int = -1
    last_sample: int = -1
    signature: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    refresh_hz: float = 200.0
    session_code: int | None = None
    sample_rate_hz: float = 30000.0

    @property
    def sweep_seconds(self) -> np.ndarray:
        """float64 (NS,): time on screen per sweep index, s (frames / refresh rate)."""
        return self.sweep_frames / self.refresh_hz

    @property
    def numbers(self) -> range:
        return range(self.number, self.number + max(self.n_merged, 1))

    @property
    def folded(self) -> bool:
        """Later experiments were counted into this slot (``[stats] max_experiments``)."""
        return self.n_merged > 1

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate_hz if self.start_sample >= 0 else np.nan

    @property
    def end_s(self) -> float:
        return self.last_sample / self.sample_rate_hz if self.last_sample >= 0 else np.nan

    @property
    def label(self) -> str:
        if self.folded:
            return f"experiments {self.number}-{self.number + self.n_merged - 1} (folded)"
        if self.number == 0:
            return "experiment 0 (before the first START)"
        return f"experiment {self.number}"


def pick_experiment(experiments: list[ExperimentStats], number: int | None = None
                    ) -> ExperimentStats:
    """The slot holding experiment ``number``; ``None``: the latest experiment with refreshes
    (else the last slot). ValueError naming the experiments there are if it is not in the file.
    """
    if not experiments:
        raise ValueError("the statistics file has no experiment tables")
    if number is None:
        shown = [e for e in experiments if e.n_frames > 0]
        return shown[-1] if shown else experiments[-1]
    for e in experiments:
        if int(number) in e.numbers:
            return e
    have = f"0..{experiments[-1].numbers[-1]}"
    raise ValueError(f"no experiment {number} in the statistics (experiments {have}; 0 = "
                     "before the first START marker)")


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
    """Writes one recording's statistics file: ``n_rows`` = units + 1, tables at most
    ``max_bins`` time bins, ``max_slots`` experiment slots (signatures ``sig_len`` long) and
    ``max_columns`` sweep columns."""

    def __init__(self, path, n_rows: int, max_bins: int, max_slots: int, max_columns: int,
                 sig_len: int, meta: dict, sample_rate_hz: float, refresh_hz: float,
                 chunk_bytes: int = 1 << 20, max_motion_rows: int = 0,
                 motion_windows: int = 0):
        self.path = Path(path)
        self.rows = int(n_rows)
        self.max_bins = int(max_bins)
        self.max_slots = int(max_slots)
        self.max_columns = int(max_columns)
        self.sig_len = int(sig_len)
        self.max_motion_rows = int(max_motion_rows)
        self.motion_windows = int(motion_windows) if self.max_motion_rows else 0
        self.chunk_bytes = max(4096, int(chunk_bytes))
        self.token = secrets.randbits(62)
        words = (HEADER_WORDS + self.rows * self.max_bins
                 + self.max_slots * (EXP_FIELDS + self.sig_len + self.rows)
                 + self.max_columns * (3 + self.rows)
                 + self.max_motion_rows * self.motion_windows)
        self.buf = np.zeros(words, np.int64)
        self.header = self.buf[:HEADER_WORDS]
        self.header[H_MAGIC] = MAGIC
        self.header[H_VERSION] = FORMAT_VERSION
        self.header[H_TOKEN] = self.token
        self.header[H_ROWS] = self.rows
        self.header[H_SIG_LEN] = self.sig_len
        self._bytes = memoryview(self.buf).cast("B")
        self._head = self._bytes[:HEADER_WORDS * 8]
        self._fd = -1
        self._packer: TablePacker | None = None
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

    def bind(self, tables: StatsTables) -> TablePacker:
        """The packer of ``tables`` into this writer's buffer, built on the first call for these
        tables (it allocates: call it once off the audio thread, e.g. at ``start_recording``).
        ValueError if a table is not C-contiguous int64."""
        packer = self._packer
        if packer is None or packer.tables is not tables:
            packer = self._packer = TablePacker(self.buf, tables, self.motion_windows)
        return packer

    def start(self, tables: StatsTables, n_bins: int, bin_samples: int, n_slots: int,
              n_columns: int, samples_processed: int, *, experiments_seen: int = 0,
              folded: int = 0, no_column: int = 0, pending_dropped: int = 0,
              sample_offset: int = 0, motion: np.ndarray | None = None, motion_rows: int = 0,
              motion_every_samples: int = 0, motion_rejected: int = 0) -> None:
        """Pack the tables (their first ``n_bins`` bins, ``n_slots`` slots, ``n_columns``
        columns; the first ``motion_rows`` rows of ``motion`` (H, W) float64 C-contiguous) in
        one compiled call (:meth:`bind`); the next :meth:`step` calls write them, one system call
        each: the odd header, the tables ``chunk_bytes`` at a time, the even header. A write
        still under way is finished first. ValueError if the tables do not fit the buffer."""
        t0 = time.perf_counter()
        if self._busy:
            self._finish_all()
        if self._fd < 0:
            return
        r, k = self.rows, self.sig_len
        tc = tables.time_counts
        nb = max(0, min(int(n_bins), self.max_bins, tc.shape[1]))
        ns = max(0, min(int(n_slots), self.max_slots, tables.experiments.shape[0]))
        nc = max(0, min(int(n_columns), self.max_columns, tables.sweep_counts.shape[1]))
        h = self.header
        self.seq += 1
        h[H_SEQ] = 2 * self.seq - 1  # odd: under way
        h[H_SAMPLES] = samples_processed
        h[H_WRITTEN_NS] = time.time_ns()
        h[H_BINS] = nb
        h[H_BIN_SAMPLES] = bin_samples
        h[H_COLUMNS] = nc
        h[H_SLOTS] = ns
        h[H_EXPERIMENTS] = experiments_seen
        h[H_FOLDED] = folded
        h[H_NO_COLUMN] = no_column
        h[H_PENDING_DROPPED] = pending_dropped
        h[H_SAMPLE_OFFSET] = sample_offset
        nw = self.motion_windows
        nm = 0
        if (motion is not None and nw and motion.ndim == 2 and motion.shape[1] == nw
                and motion.dtype == np.float64 and motion.flags.c_contiguous):
            nm = max(0, min(int(motion_rows), self.max_motion_rows, motion.shape[0]))
        o = self.bind(tables).pack(r, k, nb, ns, nc, HEADER_WORDS, motion, nm)
        if o < 0:
            raise ValueError(f"stats tables do not fit the file's buffer ({nb} bins, {ns} "
                             f"slots, {nc} columns, {nm} motion rows)")
        h[H_MOTION_ROWS] = nm
        h[H_MOTION_WINDOWS] = nw if nm else 0
        h[H_MOTION_EVERY] = motion_every_samples if nm else 0
        h[H_MOTION_REJECTED] = motion_rejected
        h[H_SIZE] = o * 8
        # the file is untouched until the next call: no process() call pays for the packing
        # and a write, or for two writes
        self._busy = True
        self._pos, self._end = -1, o * 8
        self._cost(t0)

    def step(self) -> bool:
        """Write the next piece of a write under way; True when the file is complete again
        (or no write was under way)."""
        if not self._busy:
            return True
        t0 = time.perf_counter()
        done = self._step()
        self._cost(t0)
        return done

    def _put(self, offset: int, view) -> None:
        if _PWRITE is not None:  # one system call instead of two (not on Windows)
            while view:
                n = _PWRITE(self._fd, view, offset)
                view, offset = view[n:], offset + n
            return
        os.lseek(self._fd, offset, os.SEEK_SET)
        while view:
            view = view[os.write(self._fd, view):]

    def _step(self) -> bool:
        """One system call: the odd header, the next ``chunk_bytes`` of the tables, or (all out)
        the even header; True after the even header."""
        try:
            if self._pos < 0:  # packed by start(): the odd header first
                self._put(0, self._head)
                self._pos = HEADER_WORDS * 8
                return False
            if self._pos < self._end:
                stop = min(self._end, self._pos + self.chunk_bytes)
                self._put(self._pos, self._bytes[self._pos:stop])
                self._pos = stop
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


def tables_from_experiments(time_counts, experiments: list[ExperimentStats], sig_len: int = 32
                            ) -> tuple[StatsTables, int]:
    """Pack read-back (or hand-made) experiments into write tables; returns (tables, columns).
    One column per sweep index with frames or counts, experiment by experiment."""
    tc = np.ascontiguousarray(time_counts, np.int64)
    rows = tc.shape[0]
    n_slots = max(1, len(experiments))
    xt = np.zeros((n_slots, EXP_FIELDS), np.int64)
    sig = np.zeros((n_slots, sig_len), np.int64)
    none = np.zeros((n_slots, rows), np.int64)
    cols: list[tuple[int, int, int, np.ndarray]] = []
    for s, e in enumerate(experiments):
        sc = np.asarray(e.sweep_counts, np.int64).reshape(rows, -1)
        fr = np.asarray(e.sweep_frames, np.int64)
        ns = max(sc.shape[1], fr.size)
        fr = np.r_[fr, np.zeros(ns - fr.size, np.int64)]
        sc = np.c_[sc, np.zeros((rows, ns - sc.shape[1]), np.int64)]
        for w in np.flatnonzero((fr > 0) | (sc.sum(axis=0) > 0)):
            cols.append((s, int(w), int(fr[w]), sc[:, w]))
        sg = np.asarray(e.signature, np.int64)[:sig_len]
        sig[s, :sg.size] = sg
        xt[s] = (e.number, e.n_merged, e.start_sample, e.last_sample, e.n_frames,
                 e.none_frames, e.frames_without_column, sg.size,
                 -1 if e.session_code is None else e.session_code)
        none[s] = np.asarray(e.no_sweep_counts, np.int64)[:rows]
    nc = len(cols)
    tables = StatsTables(
        time_counts=tc, experiments=xt, signatures=sig, no_sweep=none,
        col_exp=np.array([c[0] for c in cols], np.int64),
        col_sweep=np.array([c[1] for c in cols], np.int64),
        col_frames=np.array([c[2] for c in cols], np.int64),
        sweep_counts=(np.stack([c[3] for c in cols], axis=1) if cols
                      else np.zeros((rows, 0), np.int64)))
    return tables, nc


def write_stats(path, arrays: dict, meta: dict) -> float:
    """One-shot write of ``arrays`` (``time_counts``, ``bin_s``, ``experiments`` — a list of
    :class:`ExperimentStats`, as :func:`read_stats` returns; tests, tools) with ``meta`` in the
    sidecar; returns seconds taken."""
    t0 = time.perf_counter()
    experiments = list(arrays.get("experiments") or [])
    tables, nc = tables_from_experiments(arrays["time_counts"], experiments)
    tc = tables.time_counts
    refresh = float(meta.get("refresh_hz", 200.0))
    fs = float(meta.get("sample_rate_hz", 30000.0))
    bin_samples = int(round(float(arrays.get("bin_s", 1.0)) * fs))
    n_slots = tables.experiments.shape[0]
    w = StatsFileWriter(path, tc.shape[0], tc.shape[1], n_slots, nc,
                        tables.signatures.shape[1], meta, fs, refresh)
    w.start(tables, tc.shape[1], bin_samples, n_slots, nc,
            int(meta.get("samples_processed", 0)),
            experiments_seen=max((e.numbers[-1] for e in experiments), default=0),
            folded=sum(max(e.n_merged - 1, 0) for e in experiments))
    w.close()
    return time.perf_counter() - t0


def _find(p: Path) -> Path:
    if p.is_dir():
        from oe_plugin.outputs.location import find_output_folder

        hits = sorted(p.rglob(FILE_NAME), key=lambda q: q.stat().st_mtime)
        if not hits and any(part.startswith("Record Node") for part in p.resolve().parts):
            top = find_output_folder(p)  # a Record Node's folder: the files are above it
            if top is not None:
                hits = sorted(top.rglob(FILE_NAME), key=lambda q: q.stat().st_mtime)
        if not hits:
            raise FileNotFoundError(f"{p}: no {FILE_NAME} (is the pipeline module's [stats] "
                                    "stage on, and recording?)")
        return hits[-1]
    if p.name == SIDECAR_NAME:
        p = p.with_name(FILE_NAME)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (no {FILE_NAME})")
    return p


def _version_error(p: Path, version) -> StatsFormatError:
    return StatsFormatError(
        f"{p}: statistics file format version {version}; this sweepsort reads versions "
        f"{' and '.join(str(v) for v in READ_VERSIONS)} only (per-experiment tables with session "
        "codes; v5 with the live motion estimate). The file is "
        "derived data: replay the "
        "recording through the pipeline module (sweepsort replay RECORDING --module "
        "oe_plugin/modules/pipeline.py --out DIR) for a file in this format")


def _parse(p: Path) -> tuple[dict, dict]:
    side = json.loads(sidecar_path(p).read_text())
    if side.get("format") != FORMAT:
        raise StatsFormatError(f"{p}: not a {FORMAT} file")
    version = side.get("format_version")
    if version not in READ_VERSIONS:
        raise _version_error(p, version)
    with open(p, "rb") as f:
        raw = f.read()
        f.seek(H_SEQ * 8)
        seq_after = int.from_bytes(f.read(8), "little", signed=True)
    if len(raw) < HEADER_WORDS * 8:
        raise ValueError(f"{p}: truncated ({len(raw)} bytes)")
    buf = np.frombuffer(raw[:len(raw) // 8 * 8], "<i8")
    h = buf[:HEADER_WORDS]
    if raw[:len(MAGIC_PREFIX)] != MAGIC_PREFIX:
        raise StatsFormatError(f"{p}: not a {FORMAT} data file")
    if h[H_VERSION] != version or h[H_MAGIC] != MAGICS[version]:
        raise _version_error(p, int(h[H_VERSION]))
    if int(h[H_SEQ]) % 2 or int(h[H_SEQ]) != seq_after:
        raise ValueError(f"{p}: being rewritten (or a write was interrupted)")
    if int(h[H_TOKEN]) != int(side.get("token", -1)):
        raise ValueError(f"{p}: data file and {SIDECAR_NAME} belong to different sessions")
    r, nb, nc = int(h[H_ROWS]), int(h[H_BINS]), int(h[H_COLUMNS])
    ns, k = int(h[H_SLOTS]), int(h[H_SIG_LEN])
    size = int(h[H_SIZE])
    nm, nw = (int(h[H_MOTION_ROWS]), int(h[H_MOTION_WINDOWS])) if version >= 5 else (0, 0)
    want = 8 * (HEADER_WORDS + r * nb + ns * (EXP_FIELDS + k + r) + nc * (3 + r) + nm * nw)
    if size > len(raw) or size != want:
        raise ValueError(f"{p}: size disagrees with its header")
    o = HEADER_WORDS

    def take(n, shape):
        nonlocal o
        a = buf[o:o + n].reshape(shape).astype(np.int64)
        o += n
        return a

    tc = take(r * nb, (r, nb))
    xt = take(ns * EXP_FIELDS, (ns, EXP_FIELDS))
    sig = take(ns * k, (ns, k))
    none = take(ns * r, (ns, r))
    col_exp, col_sweep, col_frames = take(nc, (nc,)), take(nc, (nc,)), take(nc, (nc,))
    sc = take(r * nc, (r, nc))
    motion = buf[o:o + nm * nw].view(np.float64).reshape(nm, nw).copy()
    o += nm * nw
    fs = float(side["sample_rate_hz"])
    every = int(h[H_MOTION_EVERY]) if version >= 5 else 0
    refresh = float(side.get("refresh_hz", 200.0)) or 200.0
    experiments = []
    for s in range(ns):
        mine = np.flatnonzero(col_exp == s)
        width = int(col_sweep[mine].max()) + 1 if mine.size else 0
        counts = np.zeros((r, width), np.int64)
        frames = np.zeros(width, np.int64)
        counts[:, col_sweep[mine]] = sc[:, mine]
        frames[col_sweep[mine]] = col_frames[mine]
        x = xt[s]
        experiments.append(ExperimentStats(
            number=int(x[X_NUMBER]), sweep_counts=counts, sweep_frames=frames,
            no_sweep_counts=none[s], n_merged=int(x[X_MERGED]), n_frames=int(x[X_FRAMES]),
            none_frames=int(x[X_NONE_FRAMES]), frames_without_column=int(x[X_NO_COLUMN]),
            start_sample=int(x[X_START]), last_sample=int(x[X_LAST]),
            signature=sig[s, :min(int(x[X_SIG_LEN]), k)], refresh_hz=refresh,
            sample_rate_hz=fs, session_code=None if x[X_CODE] < 0 else int(x[X_CODE])))
    arrays = {"time_counts": tc, "bin_s": np.float64(int(h[H_BIN_SAMPLES]) / fs),
              "units": np.asarray(side.get("units", list(range(r - 1)) + [-1]), np.int32),
              "experiments": experiments, "motion_um": motion,
              "motion_time_s": np.arange(nm) * (every / fs),
              "motion_depth_um": np.asarray(side.get("motion_depth_um") or [], np.float64)}
    meta = dict(side, samples_processed=int(h[H_SAMPLES]),
                written_unix_s=int(h[H_WRITTEN_NS]) * 1e-9, write_seq=int(h[H_SEQ]) // 2,
                experiments_seen=int(h[H_EXPERIMENTS]), experiments_folded=int(h[H_FOLDED]),
                frames_without_column=int(h[H_NO_COLUMN]),
                pending_dropped=int(h[H_PENDING_DROPPED]),
                sample_offset=int(h[H_SAMPLE_OFFSET]),
                motion_rejected=int(h[H_MOTION_REJECTED]) if version >= 5 else 0,
                motion_every_s=every / fs)
    return arrays, meta


def read_stats(path_or_recording_dir, retries: int = 20) -> tuple[dict, dict]:
    """(arrays, meta) of a stats file (or of the newest one under a recording directory); see
    the module docstring. A write under way is retried (``retries`` x 50 ms); a file of another
    format version raises :class:`StatsFormatError` at once."""
    p = _find(Path(path_or_recording_dir))
    last = None
    for _ in range(max(1, retries)):
        try:
            return _parse(p)
        except StatsFormatError:
            raise
        except (OSError, ValueError, KeyError) as exc:  # a write under way: retry
            last = exc
            time.sleep(0.05)
    raise ValueError(f"{p}: unreadable ({last})")
