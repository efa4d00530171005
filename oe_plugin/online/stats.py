"""Online statistics: per unit, spike counts per time bin and per stimulus sweep index.

:class:`OnlineStats` keeps preallocated count tables and updates them once per block through a
GIL-free ``@cfunc`` (:func:`stats_update`), so the pipeline's ``process()`` pays microseconds:

- ``time_counts`` (U + 1, B) int64: spikes per unit (row U = unsorted, unit -1) per time bin of
  ``bin_samples``; when a recording outgrows the B bins, neighbouring bins are merged in place and
  the bin width doubles (so an hour-long session still fits, nothing is allocated);
- ``sweep_counts`` (U + 1, NS) int64: spikes per unit per sweep index, the sweep being the one
  of the last decoded frame at or before the spike (within ``max_gap`` samples, else the spike
  counts in ``no_sweep``); spikes wait in a small FIFO until the decoder has passed their time
  (frames are decoded about one refresh late), or ``timeout`` samples (no TTL at all);
- ``sweep_frames`` (NS,) int64: decoded refreshes per sweep index (exposure; seconds =
  frames / refresh rate), counted in Python as frames arrive (a few per block).

The tables are written to the recording directory by :mod:`oe_plugin.outputs.stats_file`
(:meth:`OnlineStats.write_start` packs them into its preallocated buffer: no copies here).
"""

from __future__ import annotations

import numba
import numpy as np

from oe_plugin.kernels._entry import (
    ArgTable,
    arg_f64_1d,
    arg_i32_1d,
    arg_i64_1d,
    arg_i64_2d,
    cfunc_entry,
    entry_caller,
)

# state (int64) layout
F_HEAD, F_COUNT, P_HEAD, P_COUNT, N_BINS, BIN_SAMPLES, NOW, P_DROPPED, LAST_FRAME = range(9)
N_STATE = 9
# params (float64)
PR_MAX_GAP, PR_TIMEOUT, PR_SWEEPS = range(3)


@numba.njit(cache=True, error_model="numpy")
def _count_sweep(t, row, frm_s, frm_w, state, sweep_counts, no_sweep, max_gap):
    cap = frm_s.shape[0]
    n_f = state[F_COUNT]
    for k in range(n_f):
        j = (state[F_HEAD] + n_f - 1 - k) % cap
        s = frm_s[j]
        if s <= t:
            w = frm_w[j]
            if t - s <= max_gap and 0 <= w < sweep_counts.shape[1]:
                sweep_counts[row, w] += 1
            else:
                no_sweep[row] += 1
            return
    no_sweep[row] += 1


@numba.njit(cache=True, error_model="numpy")
def stats_update(spk_t, spk_u, frm_s, frm_w, pend_t, pend_u, time_counts, sweep_counts,
                 no_sweep, state, params):
    """Count the block's spikes (``spk_t``/``spk_u``, this call's length) and resolve pending
    spikes against the frames seen so far. Returns the pending count."""
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
        if state[F_COUNT] > 0 and t <= state[LAST_FRAME]:
            _count_sweep(t, row, frm_s, frm_w, state, sweep_counts, no_sweep, max_gap)
        elif state[NOW] - t > timeout:
            no_sweep[row] += 1
        else:
            break
        state[P_HEAD] = (h + 1) % pcap
        state[P_COUNT] -= 1
    return state[P_COUNT]


def _stats_entry(addresses, shapes):
    return stats_update(
        arg_i64_1d(addresses, shapes, 0), arg_i32_1d(addresses, shapes, 1),
        arg_i64_1d(addresses, shapes, 2), arg_i64_1d(addresses, shapes, 3),
        arg_i64_1d(addresses, shapes, 4), arg_i32_1d(addresses, shapes, 5),
        arg_i64_2d(addresses, shapes, 6), arg_i64_2d(addresses, shapes, 7),
        arg_i64_1d(addresses, shapes, 8), arg_i64_1d(addresses, shapes, 9),
        arg_f64_1d(addresses, shapes, 10))


stats_entry = cfunc_entry(_stats_entry)
_STATS_CALLER = entry_caller(stats_entry)


class OnlineStats:
    """Count tables for ``n_units`` units (+ unsorted) at ``sample_rate_hz``.

    bin_s : initial time bin (s); max_bins : B; max_sweeps : NS; refresh_hz : stimulus refresh
    (frame exposure -> seconds; the frame gap beyond which a spike has no sweep is 1.5 frames).
    """

    def __init__(self, n_units: int, sample_rate_hz: float, bin_s: float = 1.0,
                 max_bins: int = 4096, max_sweeps: int = 4096, refresh_hz: float = 200.0,
                 sweeps: bool = True, timeout_s: float = 0.5):
        self.n_units = int(n_units)
        self.sample_rate_hz = float(sample_rate_hz)
        self.refresh_hz = float(refresh_hz)
        rows = self.n_units + 1
        self.bin_samples0 = max(1, int(round(bin_s * sample_rate_hz)))
        self.time_counts = np.zeros((rows, int(max_bins) & ~1), np.int64)
        self.sweep_counts = np.zeros((rows, int(max_sweeps)), np.int64)
        self.sweep_frames = np.zeros(int(max_sweeps), np.int64)
        self.no_sweep = np.zeros(rows, np.int64)
        self.frm_s = np.zeros(2048, np.int64)
        self.frm_w = np.zeros(2048, np.int64)
        self.pend_t = np.zeros(65536, np.int64)
        self.pend_u = np.zeros(65536, np.int32)
        self.state = np.zeros(N_STATE, np.int64)
        self.params = np.zeros(3, np.float64)
        self.params[PR_MAX_GAP] = 1.5 * sample_rate_hz / self.refresh_hz
        self.params[PR_TIMEOUT] = timeout_s * sample_rate_hz
        self.params[PR_SWEEPS] = 1.0 if sweeps else 0.0
        self._empty_t = np.zeros(1, np.int64)
        self._empty_u = np.zeros(1, np.int32)
        self._table = ArgTable([self._empty_t, self._empty_u, self.frm_s, self.frm_w,
                                self.pend_t, self.pend_u, self.time_counts, self.sweep_counts,
                                self.no_sweep, self.state, self.params])
        self.reset()
        self._warm_up()

    def reset(self) -> None:
        for a in (self.time_counts, self.sweep_counts, self.sweep_frames, self.no_sweep,
                  self.state):
            a[...] = 0
        self.state[BIN_SAMPLES] = self.bin_samples0
        self.state[LAST_FRAME] = -1
        self.n_sweeps_seen = 0  # highest sweep index decoded + 1 (the file's table width)

    def _warm_up(self) -> None:
        self.update_online(self._empty_t, self._empty_u, 0, 0)
        stats_update(self._empty_t[:0], self._empty_u[:0], self.frm_s, self.frm_w, self.pend_t,
                     self.pend_u, self.time_counts, self.sweep_counts, self.no_sweep,
                     self.state, self.params)
        self.reset()

    def add_frame(self, sample_number: int, sweep_index: int) -> None:
        """One decoded refresh (in time order)."""
        st = self.state
        cap = self.frm_s.shape[0]
        if st[F_COUNT] == cap:
            st[F_HEAD] = (st[F_HEAD] + 1) % cap
            st[F_COUNT] -= 1
        j = (st[F_HEAD] + st[F_COUNT]) % cap
        self.frm_s[j] = sample_number
        self.frm_w[j] = sweep_index
        st[F_COUNT] += 1
        st[LAST_FRAME] = sample_number
        if 0 <= sweep_index < self.sweep_frames.shape[0]:
            self.sweep_frames[sweep_index] += 1
            if sweep_index >= self.n_sweeps_seen:
                self.n_sweeps_seen = sweep_index + 1

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

    def write_start(self, writer, samples_processed: int) -> None:
        """Start writing the tables (bins and sweep indices in use) with a
        :class:`~oe_plugin.outputs.stats_file.StatsFileWriter` (no allocation)."""
        st = self.state
        writer.start(self.time_counts, max(int(st[N_BINS]), 1), int(st[BIN_SAMPLES]),
                     self.sweep_counts, self.sweep_frames, self.n_sweeps_seen, self.no_sweep,
                     samples_processed)

    def snapshot(self) -> dict:
        """Copies of the tables (for the stats file)."""
        nb = max(int(self.state[N_BINS]), 1)
        used = np.flatnonzero(self.sweep_frames)  # only up to the highest sweep index seen
        ns = int(used[-1]) + 1 if used.size else 0
        return {
            "time_counts": self.time_counts[:, :nb].copy(),
            "bin_s": np.float64(self.state[BIN_SAMPLES] / self.sample_rate_hz),
            "sweep_counts": self.sweep_counts[:, :ns].copy(),
            "sweep_seconds": self.sweep_frames[:ns] / self.refresh_hz,
            "no_sweep_counts": self.no_sweep.copy(),
            "units": np.r_[np.arange(self.n_units), -1].astype(np.int32),
        }
