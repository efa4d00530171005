"""Online statistics: per unit, spike counts per time bin, and per stimulus experiment and sweep.

:class:`OnlineStats` keeps preallocated count tables and updates them through two GIL-free
``@cfunc`` entries, so the pipeline's ``process()`` pays microseconds and allocates nothing:
:func:`frames_update` takes the decoder's refreshes of the block, :func:`stats_update` its
spikes.

**Experiments.** A lab often runs several stimulus sessions in one acquisition; their sweep
indices are unrelated conditions, so the sweep tables are kept per experiment. Experiment
``k`` (k >= 1) starts at the k-th START marker of the acquisition (the first refresh flagged
``EXPERIMENT_START`` after one that is not: the decoder's own ``n_experiments`` rule, and the
offline analysis's) and lasts until the next START — its END markers and the pause after them
included (those refreshes carry no sweep index). Refreshes before the first START, and spikes
before the first refresh, are experiment 0. Experiment numbers restart with every acquisition
(as the GUI's sample numbers do). Experiments 1..``max_experiments`` get their own slot; later
ones are **folded** into the last slot (its ``X_MERGED`` counts them, ``folded`` in the file
says so, and :attr:`OnlineStats.note` carries a message that the pipeline logs once).

Tables (R = units + 1 rows, row R-1 = unsorted spikes, unit -1; S = max_experiments + 1 slots):

- ``time_counts`` (R, B) int64: spikes per unit per time bin of ``bin_samples``, the whole
  acquisition; when it outgrows the B bins, neighbouring bins are merged in place and the bin
  width doubles (an hour-long session still fits, nothing is allocated);
- ``sweep_counts`` (R, C) int64 and ``col_exp`` / ``col_sweep`` / ``col_frames`` (C,): a pool
  of C *columns*, one per (experiment slot, sweep index) pair, taken the first time that
  experiment shows that index (``col_of`` (S, max_sweeps) int32 maps the pair to its column, -1
  none). A spike counts in the column of the last decoded refresh at or before it (within
  ``max_gap`` samples = 1.5 refreshes; else, or when the refresh shows no sweep, in its slot's
  ``no_sweep``); spikes wait in a small FIFO until the decoder has passed their time (frames are
  decoded about one refresh late), or ``timeout`` samples (the TTL stopped or never came: the
  same lookup then, so the result does not depend on when the next refresh arrives — only a
  refresh the decoder has not finished by then is missed; no refresh at all: experiment 0's
  ``no_sweep``). ``col_frames`` = refreshes shown (exposure; seconds =
  frames / refresh rate). When the pool is full, refreshes of new (experiment, sweep) pairs count as
  ``X_NO_COLUMN`` (and their spikes in ``no_sweep``), also noted once;
- ``experiments`` (S, EXP_FIELDS) int64 and ``signatures`` (S, SIG_LEN): per slot the fields of
  :mod:`oe_plugin.outputs.stats_file` (number, merged, first/last refresh sample, refresh
  counts, the session code of its START block, ``X_CODE``, -1 if none) and the first sweep
  indices shown, for matching a session file to the experiment (by code first);
- ``no_sweep`` (S, R) int64.

The tables are written to the recording directory by :mod:`oe_plugin.outputs.stats_file`
(:meth:`OnlineStats.write_start` hands them to its preallocated buffer: no copies here).
"""

from __future__ import annotations

import numba
import numpy as np

from oe_plugin.kernels._entry import (
    ArgTable,
    arg_f64_1d,
    arg_i32_1d,
    arg_i32_2d,
    arg_i64_1d,
    arg_i64_2d,
    cfunc_entry,
    entry_caller,
)
from oe_plugin.outputs.stats_file import (
    EXP_FIELDS,
    X_CODE,
    X_FRAMES,
    X_LAST,
    X_MERGED,
    X_NO_COLUMN,
    X_NONE_FRAMES,
    X_NUMBER,
    X_SIG_LEN,
    X_START,
    StatsTables,
)
from oe_plugin.protocol.spec import ERROR_MASK, EXPERIMENT_START, MAX_SWEEP_INDEX

# state (int64) layout
(F_HEAD, F_COUNT, P_HEAD, P_COUNT, N_BINS, BIN_SAMPLES, NOW, P_DROPPED, LAST_FRAME, SLOT,
 N_EXP, IN_START, N_COLS, FOLDED, NO_COLUMN, F_WRAPPED) = range(16)
N_STATE = 16
# params (float64)
PR_MAX_GAP, PR_TIMEOUT, PR_SWEEPS = range(3)
SIG_LEN = 32
"""Sweep indices kept per experiment for matching it to a session file."""


@numba.njit(cache=True, error_model="numpy")
def frames_update(fr_s, fr_w, fr_f, frm_s, frm_w, frm_e, col_of, col_exp, col_sweep,
                  col_frames, experiments, signatures, state):
    """Account the block's decoded refreshes (``fr_s`` sample numbers, ``fr_w`` sweep indices,
    ``fr_f`` flags; this call's length, in time order): experiment boundaries, exposure per
    column, signatures, and the ring of recent refreshes (``frm_s`` sample, ``frm_w`` column or
    -1, ``frm_e`` slot) that spikes are looked up in. Returns the number of experiments seen."""
    cap = frm_s.shape[0]
    n_slots = experiments.shape[0]
    max_sweeps = col_of.shape[1]
    max_cols = col_exp.shape[0]
    k_sig = signatures.shape[1]
    n = min(fr_s.shape[0], fr_w.shape[0], fr_f.shape[0])
    for i in range(n):
        s = fr_s[i]
        w = np.int64(fr_w[i])
        f = np.int64(fr_f[i])
        start = (f & EXPERIMENT_START) != 0
        if start and state[IN_START] == 0:  # a new experiment
            state[N_EXP] += 1
            k = state[N_EXP]
            if k < n_slots:
                slot = k
                experiments[slot, X_NUMBER] = k
                experiments[slot, X_MERGED] = 1
                experiments[slot, X_START] = s
            else:  # beyond max_experiments: fold into the last slot
                slot = n_slots - 1
                experiments[slot, X_MERGED] += 1
                state[FOLDED] += 1
            state[SLOT] = slot
        state[IN_START] = 1 if start else 0
        slot = state[SLOT]
        if experiments[slot, X_MERGED] == 0:  # slot 0's first refresh
            experiments[slot, X_MERGED] = 1
            experiments[slot, X_START] = s
        experiments[slot, X_FRAMES] += 1
        experiments[slot, X_LAST] = s
        col = np.int64(-1)
        if 0 <= w <= MAX_SWEEP_INDEX:
            m = experiments[slot, X_SIG_LEN]
            if (f & ERROR_MASK) == 0 and m < k_sig and (m == 0 or signatures[slot, m - 1] != w):
                signatures[slot, m] = w
                experiments[slot, X_SIG_LEN] = m + 1
            if w < max_sweeps:
                col = np.int64(col_of[slot, w])
                if col < 0:
                    if state[N_COLS] < max_cols:
                        col = state[N_COLS]
                        state[N_COLS] += 1
                        col_of[slot, w] = col
                        col_exp[col] = slot
                        col_sweep[col] = w
                    else:
                        experiments[slot, X_NO_COLUMN] += 1
                        state[NO_COLUMN] += 1
        if col >= 0:
            col_frames[col] += 1
        else:
            experiments[slot, X_NONE_FRAMES] += 1
        if state[F_COUNT] == cap:
            state[F_HEAD] = (state[F_HEAD] + 1) % cap
            state[F_COUNT] -= 1
            state[F_WRAPPED] = 1
        j = (state[F_HEAD] + state[F_COUNT]) % cap
        frm_s[j] = s
        frm_w[j] = col
        frm_e[j] = slot
        state[F_COUNT] += 1
        state[LAST_FRAME] = s
    return state[N_EXP]


@numba.njit(cache=True, error_model="numpy")
def _count_sweep(t, row, frm_s, frm_w, frm_e, state, sweep_counts, no_sweep, max_gap):
    cap = frm_s.shape[0]
    n_f = state[F_COUNT]
    for k in range(n_f):
        j = (state[F_HEAD] + n_f - 1 - k) % cap
        s = frm_s[j]
        if s <= t:
            col = frm_w[j]
            if t - s <= max_gap and 0 <= col < sweep_counts.shape[1]:
                sweep_counts[row, col] += 1
            else:
                no_sweep[frm_e[j], row] += 1
            return
    # before every refresh in the ring: experiment 0 unless the ring has forgotten older ones
    slot = frm_e[state[F_HEAD]] if state[F_WRAPPED] != 0 and n_f > 0 else 0
    no_sweep[slot, row] += 1


@numba.njit(cache=True, error_model="numpy")
def stats_update(spk_t, spk_u, frm_s, frm_w, frm_e, pend_t, pend_u, time_counts, sweep_counts,
                 no_sweep, state, params):
    """Count the block's spikes (``spk_t``/``spk_u``, this call's length) and resolve pending
    spikes against the refreshes seen so far. Returns the pending count."""
    n_rows = time_counts.shape[0]
    n_bins = time_counts.shape[1]
    sweeps = params[PR_SWEEPS] != 0.0
    max_gap = np.int64(params[PR_MAX_GAP])
    timeout = np.int64(params[PR_TIMEOUT])
    pcap = pend_t.shape[0]
    n = min(spk_t.shape[0], spk_u.shape[0])
    for i in range(n):
        t = spk_t[i]
        u = spk_u[i]
        row = u if 0 <= u < n_rows - 1 else n_rows - 1
        if t < 0:
            continue
        b = t // state[BIN_SAMPLES]
        while b >= n_bins:  # merge neighbouring bins, double the width
            half = n_bins // 2
            for r in range(n_rows):
                for j in range(half):
                    time_counts[r, j] = time_counts[r, 2 * j] + time_counts[r, 2 * j + 1]
                for j in range(half, n_bins):
                    time_counts[r, j] = 0
            state[BIN_SAMPLES] *= 2
            state[N_BINS] = (state[N_BINS] + 1) // 2
            b = t // state[BIN_SAMPLES]
        time_counts[row, b] += 1
        if b + 1 > state[N_BINS]:
            state[N_BINS] = b + 1
        if sweeps:
            if state[P_COUNT] < pcap:
                j = (state[P_HEAD] + state[P_COUNT]) % pcap
                pend_t[j] = t
                pend_u[j] = row
                state[P_COUNT] += 1
            else:
                state[P_DROPPED] += 1
    while state[P_COUNT] > 0:
        h = state[P_HEAD]
        t = pend_t[h]
        row = pend_u[h]
        if (state[F_COUNT] > 0 and t <= state[LAST_FRAME]) or state[NOW] - t > timeout:
            # a refresh after it has been decoded (so the one before it is known), or none
            # will come in time: the same lookup either way (block and timing invariant)
            _count_sweep(t, row, frm_s, frm_w, frm_e, state, sweep_counts, no_sweep, max_gap)
        else:
            break
        state[P_HEAD] = (h + 1) % pcap
        state[P_COUNT] -= 1
    return state[P_COUNT]


def _stats_entry(addresses, shapes):
    return stats_update(
        arg_i64_1d(addresses, shapes, 0), arg_i32_1d(addresses, shapes, 1),
        arg_i64_1d(addresses, shapes, 2), arg_i64_1d(addresses, shapes, 3),
        arg_i64_1d(addresses, shapes, 4), arg_i64_1d(addresses, shapes, 5),
        arg_i32_1d(addresses, shapes, 6), arg_i64_2d(addresses, shapes, 7),
        arg_i64_2d(addresses, shapes, 8), arg_i64_2d(addresses, shapes, 9),
        arg_i64_1d(addresses, shapes, 10), arg_f64_1d(addresses, shapes, 11))


def _frames_entry(addresses, shapes):
    return frames_update(
        arg_i64_1d(addresses, shapes, 0), arg_i32_1d(addresses, shapes, 1),
        arg_i64_1d(addresses, shapes, 2), arg_i64_1d(addresses, shapes, 3),
        arg_i64_1d(addresses, shapes, 4), arg_i64_1d(addresses, shapes, 5),
        arg_i32_2d(addresses, shapes, 6), arg_i64_1d(addresses, shapes, 7),
        arg_i64_1d(addresses, shapes, 8), arg_i64_1d(addresses, shapes, 9),
        arg_i64_2d(addresses, shapes, 10), arg_i64_2d(addresses, shapes, 11),
        arg_i64_1d(addresses, shapes, 12))


stats_entry = cfunc_entry(_stats_entry)
frames_entry = cfunc_entry(_frames_entry)
_STATS_CALLER = entry_caller(stats_entry)
_FRAMES_CALLER = entry_caller(frames_entry)


class OnlineStats:
    """Count tables for ``n_units`` units (+ unsorted) at ``sample_rate_hz``.

    bin_s : initial time bin (s); max_bins : B; max_sweeps : sweep indices counted per
    experiment (0 .. max_sweeps-1; higher ones count as no sweep); refresh_hz : stimulus refresh
    (frame exposure -> seconds; the frame gap beyond which a spike has no sweep is 1.5 frames);
    sweeps : False without a decoder (time bins only); timeout_s : how long a spike waits for
    refreshes; max_experiments : experiments with their own tables (later ones fold into the
    last); max_conditions : C, (experiment, sweep index) columns in all; frame_chunk : refreshes
    handed to the C entry per call (a larger batch is cut into pieces).
    """

    def __init__(self, n_units: int, sample_rate_hz: float, bin_s: float = 1.0,
                 max_bins: int = 4096, max_sweeps: int = 4096, refresh_hz: float = 200.0,
                 sweeps: bool = True, timeout_s: float = 0.5, max_experiments: int = 16,
                 max_conditions: int = 4096, frame_chunk: int = 1024):
        self.n_units = int(n_units)
        self.sample_rate_hz = float(sample_rate_hz)
        self.refresh_hz = float(refresh_hz)
        self.max_experiments = int(max_experiments)
        rows = self.n_units + 1
        slots = self.max_experiments + 1
        self.bin_samples0 = max(1, int(round(bin_s * sample_rate_hz)))
        self.time_counts = np.zeros((rows, int(max_bins) & ~1), np.int64)
        self.sweep_counts = np.zeros((rows, int(max_conditions)), np.int64)
        self.col_exp = np.zeros(int(max_conditions), np.int64)
        self.col_sweep = np.zeros(int(max_conditions), np.int64)
        self.col_frames = np.zeros(int(max_conditions), np.int64)
        self.col_of = np.zeros((slots, int(max_sweeps)), np.int32)
        self.experiments = np.zeros((slots, EXP_FIELDS), np.int64)
        self.signatures = np.zeros((slots, SIG_LEN), np.int64)
        self.no_sweep = np.zeros((slots, rows), np.int64)
        self.frm_s = np.zeros(2048, np.int64)
        self.frm_w = np.zeros(2048, np.int64)
        self.frm_e = np.zeros(2048, np.int64)
        self.pend_t = np.zeros(65536, np.int64)
        self.pend_u = np.zeros(65536, np.int32)
        self.state = np.zeros(N_STATE, np.int64)
        self.params = np.zeros(3, np.float64)
        self.params[PR_MAX_GAP] = 1.5 * sample_rate_hz / self.refresh_hz
        self.params[PR_TIMEOUT] = timeout_s * sample_rate_hz
        self.params[PR_SWEEPS] = 1.0 if sweeps else 0.0
        chunk = max(1, int(frame_chunk))
        self._fr_s = np.zeros(chunk, np.int64)
        self._fr_w = np.zeros(chunk, np.int32)
        self._fr_f = np.zeros(chunk, np.int64)
        self._empty_t = np.zeros(1, np.int64)
        self._empty_u = np.zeros(1, np.int32)
        self.tables = StatsTables(self.time_counts, self.experiments, self.signatures,
                                  self.no_sweep, self.col_exp, self.col_sweep, self.col_frames,
                                  self.sweep_counts)
        self._table = ArgTable([self._empty_t, self._empty_u, self.frm_s, self.frm_w,
                                self.frm_e, self.pend_t, self.pend_u, self.time_counts,
                                self.sweep_counts, self.no_sweep, self.state, self.params])
        self._ftable = ArgTable([self._fr_s, self._fr_w, self._fr_f, self.frm_s, self.frm_w,
                                 self.frm_e, self.col_of, self.col_exp, self.col_sweep,
                                 self.col_frames, self.experiments, self.signatures,
                                 self.state])
        self.reset()
        self._warm_up()

    def reset(self) -> None:
        """Forget everything (a new acquisition: sample numbers and experiments restart)."""
        for a in (self.time_counts, self.sweep_counts, self.col_exp, self.col_sweep,
                  self.col_frames, self.experiments, self.signatures, self.no_sweep,
                  self.state):
            a[...] = 0
        self.col_of[...] = -1
        self.experiments[:, X_START] = -1
        self.experiments[:, X_CODE] = -1
        self.experiments[:, X_LAST] = -1
        self.state[BIN_SAMPLES] = self.bin_samples0
        self.state[LAST_FRAME] = -1
        self.note: str | None = None
        """A message for the log (set once per acquisition per kind; the owner clears it)."""
        self._noted_fold = False
        self._noted_pool = False

    def _warm_up(self) -> None:
        """Run both C entries and both njit kernels once (compile or load from the cache)."""
        self._fr_s[0], self._fr_w[0], self._fr_f[0] = 0, 0, EXPERIMENT_START
        self._ftable.shapes[0] = self._ftable.shapes[3] = self._ftable.shapes[6] = 1
        self._ftable.call(_FRAMES_CALLER)
        self.update_online(self._empty_t, self._empty_u, 0, 0)
        frames_update(self._fr_s[:1], self._fr_w[:1], self._fr_f[:1], self.frm_s, self.frm_w,
                      self.frm_e, self.col_of, self.col_exp, self.col_sweep, self.col_frames,
                      self.experiments, self.signatures, self.state)
        stats_update(self._empty_t[:0], self._empty_u[:0], self.frm_s, self.frm_w, self.frm_e,
                     self.pend_t, self.pend_u, self.time_counts, self.sweep_counts,
                     self.no_sweep, self.state, self.params)
        self.reset()

    # -- the audio thread ---------------------------------------------------------------------
    def add_frames(self, sample_number, sweep_index, flags, n: int, offset: int = 0) -> None:
        """The first ``n`` decoded refreshes of these arrays (in time order; e.g. the decoder's
        ``frames`` fields): GIL-free C entry, no allocation beyond slice views. ``offset`` is
        subtracted from the sample numbers (the stream's absolute numbers -> samples since the
        acquisition's start, the spikes' time base)."""
        chunk = self._fr_s.shape[0]
        tab = self._ftable
        done = 0
        while done < n:
            m = min(chunk, n - done)
            self._fr_s[:m] = sample_number[done:done + m]
            if offset:
                self._fr_s[:m] -= offset
            self._fr_w[:m] = sweep_index[done:done + m]
            self._fr_f[:m] = flags[done:done + m]
            tab.shapes[0] = tab.shapes[3] = tab.shapes[6] = m
            tab.call(_FRAMES_CALLER)
            done += m
        self._check_limits()

    def _check_limits(self) -> None:
        st = self.state
        if st[FOLDED] and not self._noted_fold:
            self._noted_fold = True
            self.note = (f"more than {self.max_experiments} stimulus experiments in this "
                         f"acquisition ([stats] max_experiments): experiment "
                         f"{self.max_experiments + 1} and later are counted together with "
                         f"experiment {self.max_experiments} (flagged 'folded' in the "
                         "statistics file)")
        elif st[NO_COLUMN] and not self._noted_pool:
            self._noted_pool = True
            self.note = (f"all {self.col_exp.shape[0]} sweep columns are in use ([stats] "
                         "max_conditions): refreshes of new (experiment, sweep index) pairs "
                         "and their spikes now count as 'no sweep'")

    def update_online(self, spk_t: np.ndarray, spk_u: np.ndarray, n: int, now: int) -> int:
        """Count ``spk_t/spk_u[:n]`` (GIL-free cfunc; no allocation)."""
        self.state[NOW] = now
        tab = self._table
        tab.set(0, spk_t)
        tab.set(1, spk_u)
        tab.shapes[0] = n
        tab.shapes[3] = n
        return tab.call(_STATS_CALLER)

    def flush(self) -> None:
        """Resolve every pending spike now (end of acquisition: no more frames will come)."""
        self.update_online(self._empty_t, self._empty_u, 0, np.iinfo(np.int64).max // 2)

    def set_session_code(self, number: int, code: int | None) -> None:
        """Experiment ``number``'s session code (from the decoder's START block; None: none
        or corrupted). A folded slot (several experiments) keeps -1. Plain int stores: safe on
        the audio thread."""
        if 1 <= number <= self.max_experiments and code is not None:
            self.experiments[number, X_CODE] = int(code)

    # -- reading ------------------------------------------------------------------------------
    @property
    def n_experiments(self) -> int:
        """START markers seen this acquisition (folded ones included)."""
        return int(self.state[N_EXP])

    @property
    def n_slots(self) -> int:
        """Experiment slots in use (slot 0 + one per experiment, at most max_experiments)."""
        return min(int(self.state[N_EXP]), self.max_experiments) + 1

    @property
    def n_columns(self) -> int:
        return int(self.state[N_COLS])

    def write_start(self, writer, samples_processed: int, sample_offset: int = 0,
                    tracker=None) -> None:
        """Start writing the tables (bins, slots and columns in use) with a
        :class:`~oe_plugin.outputs.stats_file.StatsFileWriter` (no allocation); with a live
        :class:`~oe_plugin.online.motion_tracker.Tracker`, its motion history too."""
        st = self.state
        motion = dict(motion=None)
        if tracker is not None and tracker.on:
            motion = dict(motion=tracker.hist, motion_rows=tracker.n_history,
                          motion_every_samples=tracker.every_n,
                          motion_rejected=int(tracker.stats_rejected))
        writer.start(self.tables, max(int(st[N_BINS]), 1), int(st[BIN_SAMPLES]), self.n_slots,
                     int(st[N_COLS]), samples_processed, experiments_seen=int(st[N_EXP]),
                     folded=int(st[FOLDED]), no_column=int(st[NO_COLUMN]),
                     pending_dropped=int(st[P_DROPPED]), sample_offset=int(sample_offset),
                     **motion)
