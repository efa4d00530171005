"""Auto- and cross-correlograms of many spike trains at once (numba).

Definition (SpikeInterface's and Phy's): ``counts[i, j, k]`` is the number of ordered pairs
(spike a of unit i, spike b of unit j, a != b) whose lag ``t_b - t_a`` falls in bin k. Bins are
centred on whole multiples of ``bin_ms``: bin k (k = -K..K, ``K = round(window_ms / bin_ms)``)
covers ``[(k - 1/2) bin, (k + 1/2) bin)``; lag 0 is the centre bin. Hence
``counts[j, i, k] == counts[i, j, -k]`` (up to lags exactly on a bin edge), and the
autocorrelogram is the diagonal ``counts[i, i]`` (no zero-lag self pairs).

The kernel walks the merged, time-sorted spikes of all units once: for each spike it scans
forward only while the lag is inside the window, and adds the pair to both ``(i, j, +)`` and
``(j, i, -)``. Work is O(n_spikes x spikes within the window), independent of the number of
units; chunks of the spike list run on numba threads, each into its own count array.
"""

from __future__ import annotations

import numba
import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.result import AnalysisResult


@numba.njit(cache=True, nogil=True)
def _ccg_chunk(t, u, start, stop, half_bins, bin_ticks, out):
    """Add the pairs whose first spike is in ``start:stop`` to ``out`` (U, U, 2K+1); returns
    the number of pairs added (int64)."""
    n = t.size
    limit = (half_bins + 0.5) * bin_ticks
    inv = 1.0 / bin_ticks
    total = 0
    for a in range(start, stop):
        ta = t[a]
        ua = u[a]
        b = a + 1
        while b < n:
            dt = t[b] - ta
            if dt > limit:
                break
            k = int(np.floor(dt * inv + 0.5))
            if k <= half_bins:
                out[ua, u[b], half_bins + k] += 1
                total += 1
            k2 = int(np.floor(-dt * inv + 0.5))
            if k2 >= -half_bins:
                out[u[b], ua, half_bins + k2] += 1
                total += 1
            b += 1
    return total


@numba.njit(cache=True, nogil=True, parallel=True)
def _ccg_parallel(t, u, half_bins, bin_ticks, partial):
    """Chunks of the spike list on numba threads, chunk c into ``partial[c]``; returns the
    pairs counted per chunk."""
    n = t.size
    n_chunks = partial.shape[0]
    totals = np.zeros(n_chunks, np.int64)
    for c in numba.prange(n_chunks):
        totals[c] = _ccg_chunk(t, u, c * n // n_chunks, (c + 1) * n // n_chunks, half_bins,
                               bin_ticks, partial[c])
    return totals


def _ccg_counts(t, u, n_units, half_bins, bin_ticks, n_chunks) -> np.ndarray:
    """Counts (U, U, 2K+1) int64. Chunks count into int32 (half the cache footprint of
    int64); if any chunk counted 2^31 pairs or more (a bin could have overflowed), the work is
    redone in int64."""
    shape = (n_chunks, n_units, n_units, 2 * half_bins + 1)
    partial = np.zeros(shape, np.int32)
    totals = _ccg_parallel(t, u, half_bins, bin_ticks, partial)
    if totals.size and totals.max() >= 2**31 - 1:
        partial = np.zeros(shape, np.int64)
        _ccg_parallel(t, u, half_bins, bin_ticks, partial)
    return partial.sum(axis=0, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _acg_one(t, half_bins, bin_ticks, out):
    """Autocorrelogram of one sorted train into ``out`` (2K+1,) int64."""
    n = t.size
    limit = (half_bins + 0.5) * bin_ticks
    inv = 1.0 / bin_ticks
    for a in range(n):
        b = a + 1
        while b < n:
            dt = t[b] - t[a]
            if dt > limit:
                break
            k = int(np.floor(dt * inv + 0.5))
            if k <= half_bins:
                out[half_bins + k] += 1
            k2 = int(np.floor(-dt * inv + 0.5))
            if k2 >= -half_bins:
                out[half_bins + k2] += 1
            b += 1


def _as_ticks(trains, sample_rate_hz):
    """Spike trains -> list of int64 arrays in ticks, and the tick rate (Hz)."""
    if sample_rate_hz is None:
        tick_hz = 1e6  # µs resolution for float seconds
        return [np.round(np.asarray(t, np.float64) * tick_hz).astype(np.int64)
                for t in trains], tick_hz
    return [np.asarray(t).astype(np.int64) for t in trains], float(sample_rate_hz)


def _bin_ticks(bin_ms: float, tick_hz: float) -> float:
    """Bin width in ticks, snapped to an integer when within rounding error of one (so lags
    of whole samples on a bin edge fall on the documented side)."""
    b = bin_ms * 1e-3 * tick_hz
    return float(round(b)) if abs(b - round(b)) < 1e-9 * max(b, 1.0) else b


def _normalise_trains(trains, unit_ids):
    if isinstance(trains, dict):
        ids = list(trains) if unit_ids is None else list(unit_ids)
        return [trains[i] for i in ids], ids
    trains = list(trains)
    ids = list(range(len(trains))) if unit_ids is None else list(unit_ids)
    if len(ids) != len(trains):
        raise ValueError(f"{len(ids)} unit ids for {len(trains)} spike trains")
    return trains, ids


class CorrelogramResult(AnalysisResult):
    """Correlograms of U units.

    Attributes
    ----------
    counts : int64 (U, U, 2K+1) — pair counts (see the module docstring); ACGs on the diagonal.
    lags_ms : float64 (2K+1,) — bin centres, ms.
    unit_ids : list — the units, in matrix order.
    n_spikes : int64 (U,)
    """

    compute = staticmethod(lambda **kw: compute_correlograms(**kw))

    def index(self, unit) -> int:
        return self.unit_ids.index(unit)

    def acg(self, unit) -> np.ndarray:
        i = self.index(unit)
        return self.counts[i, i]

    def ccg(self, unit_i, unit_j) -> np.ndarray:
        """Counts of unit j's spikes at each lag after unit i's spikes."""
        return self.counts[self.index(unit_i), self.index(unit_j)]

    def rate_hz(self) -> np.ndarray:
        """Conditional rates (U, U, 2K+1): counts / (n_spikes of the reference unit x bin)."""
        bin_s = self.settings["bin_ms"] * 1e-3
        return self.counts / np.maximum(self.n_spikes, 1)[:, None, None] / bin_s

    def plot_pair(self, unit_i, unit_j=None, ax=None):
        """One correlogram as bars (an ACG when ``unit_j`` is None or equal)."""
        ax = new_axes(ax, figsize=(3, 2.2))
        j = unit_i if unit_j is None else unit_j
        y = self.ccg(unit_i, j)
        half = self.settings["bin_ms"] / 2
        ax.stairs(y, np.r_[self.lags_ms - half, self.lags_ms[-1] + half], fill=True,
                  color="0.25", linewidth=0)  # one artist, not a bar per bin
        ax.set_xlim(self.lags_ms[0] - self.settings["bin_ms"] / 2,
                    self.lags_ms[-1] + self.settings["bin_ms"] / 2)
        ax.set_xlabel("lag (ms)")
        ax.set_ylabel("count")
        ax.set_title(f"ACG {unit_i}" if j == unit_i else f"CCG {unit_i} → {j}", fontsize=9)
        return ax

    def plot(self, ax=None, max_units: int = 8):
        """A grid of the first ``max_units`` units (ACGs on the diagonal)."""
        n = min(len(self.unit_ids), max_units)
        if ax is None:
            axes = new_axes(None, nrows=n, ncols=n, figsize=(1.4 * n + 1, 1.2 * n + 1))
        else:
            axes = np.asarray(ax).reshape(n, n)
        for a in range(n):
            for b in range(n):
                x = axes[a, b]
                half = self.settings["bin_ms"] / 2
                x.stairs(self.counts[a, b], np.r_[self.lags_ms - half, self.lags_ms[-1] + half],
                         fill=True, color="0.1" if a == b else "C0", linewidth=0)
                x.set_xticks([])
                x.set_yticks([])
                if a == 0:
                    x.set_title(str(self.unit_ids[b]), fontsize=8)
                if b == 0:
                    x.set_ylabel(str(self.unit_ids[a]), fontsize=8)
        return axes


def compute_correlograms(trains, *, bin_ms: float = 1.0, window_ms: float = 50.0,
                         unit_ids=None, sample_rate_hz: float | None = None,
                         n_threads: int | None = None) -> CorrelogramResult:
    """All auto- and cross-correlograms of a set of spike trains.

    Parameters
    ----------
    trains : list of arrays, or dict unit_id -> array — spike times: seconds (float), or
        sample numbers (int) when ``sample_rate_hz`` is given (exact integer lags).
    bin_ms : bin width, ms. window_ms : half-width, ms: lags from -window to +window.
    unit_ids : labels in matrix order (default: dict keys or 0..U-1).
    n_threads : numba threads (default: numba's setting).

    Returns
    -------
    CorrelogramResult — ``counts`` (U, U, 2K+1) int64.
    """
    arrays, ids = _normalise_trains(trains, unit_ids)
    ticks, tick_hz = _as_ticks(arrays, sample_rate_hz)
    n_units = len(ticks)
    half = int(round(window_ms / bin_ms))
    bin_ticks = _bin_ticks(bin_ms, tick_hz)
    t = np.concatenate(ticks) if ticks else np.zeros(0, np.int64)
    u = np.concatenate([np.full(x.size, i, np.int32) for i, x in enumerate(ticks)]) \
        if ticks else np.zeros(0, np.int32)
    order = np.argsort(t, kind="stable")
    t, u = np.ascontiguousarray(t[order]), np.ascontiguousarray(u[order])
    threads = n_threads or numba.get_num_threads()
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        counts = _ccg_counts(t, u, n_units, half, bin_ticks, max(1, threads))
    finally:
        numba.set_num_threads(old)
    settings = dict(bin_ms=bin_ms, window_ms=window_ms, unit_ids=unit_ids,
                    sample_rate_hz=sample_rate_hz, n_threads=n_threads)
    return CorrelogramResult({"trains": trains}, settings, counts=counts,
                             lags_ms=np.arange(-half, half + 1) * bin_ms, unit_ids=ids,
                             n_spikes=np.array([x.size for x in ticks], np.int64))


class AutocorrelogramResult(CorrelogramResult):
    """Autocorrelograms only: ``counts`` (U, 2K+1) int64; ``acg(unit)``."""

    compute = staticmethod(lambda **kw: compute_autocorrelograms(**kw))

    def acg(self, unit) -> np.ndarray:
        return self.counts[self.index(unit)]

    def ccg(self, unit_i, unit_j):
        if unit_i != unit_j:
            raise ValueError("autocorrelograms only: use compute_correlograms for pairs")
        return self.acg(unit_i)

    def plot(self, ax=None, unit=None):
        return self.plot_pair(self.unit_ids[0] if unit is None else unit, ax=ax)


def compute_autocorrelograms(trains, *, bin_ms: float = 1.0, window_ms: float = 50.0,
                             unit_ids=None, sample_rate_hz: float | None = None
                             ) -> AutocorrelogramResult:
    """Autocorrelograms of each train (cheaper than the full matrix); as
    :func:`compute_correlograms` but ``counts`` is (U, 2K+1)."""
    arrays, ids = _normalise_trains(trains, unit_ids)
    ticks, tick_hz = _as_ticks(arrays, sample_rate_hz)
    half = int(round(window_ms / bin_ms))
    counts = np.zeros((len(ticks), 2 * half + 1), np.int64)
    for i, x in enumerate(ticks):
        _acg_one(np.sort(x), half, _bin_ticks(bin_ms, tick_hz), counts[i])
    settings = dict(bin_ms=bin_ms, window_ms=window_ms, unit_ids=unit_ids,
                    sample_rate_hz=sample_rate_hz)
    return AutocorrelogramResult({"trains": trains}, settings, counts=counts,
                                 lags_ms=np.arange(-half, half + 1) * bin_ms, unit_ids=ids,
                                 n_spikes=np.array([x.size for x in ticks], np.int64))
