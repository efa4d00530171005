"""Live probe-motion tracking inside the online sort kernel: no allocation, no GIL, never raises.

The online sorter (:func:`oe_plugin.kernels.sort_kernel.sort_block`) calls two things here:

- :func:`push_peak`, for every event it classifies, *before* matching it (the match ring still
  holds the event's own waveform; earlier events' fits are already peeled): the peak is
  localized by the offline kernel (:func:`oe_plugin.kernels.localize.localize_event`) on the
  drift-*corrected* noise-unit ring and moved back to the **probe (uncorrected) frame** by
  adding the displacement that corrected it (the grid value of its channel in the row that was
  live at its time). Its (time, depth, amplitude) go into a preallocated ring ``pk_t`` /
  ``pk_v`` (oldest overwritten).
- :func:`track_step`, at the top of every sub-chunk. Updates happen at **stream sample times**
  ``k * every_n`` (the sort kernel cuts its sub-chunks there), never at block boundaries, so any
  cut of the stream into blocks gives the same estimates and the same corrected samples:

  * at boundary ``U_k``: the estimate computed since ``U_{k-1}`` (finished now if it is not
    yet) is applied — the live ``bin_grid`` row is rewritten in place and the values are
    appended to the history ``hist`` (row ``k``: the displacement used on samples
    ``[k every_n, (k+1) every_n)``) — and the next window is frozen: the peaks with
    ``U_k - window_n - lag_n <= t < U_k - lag_n``. ``lag_n`` is longer than any event waits to
    be classified, so every peak of the window is in the ring by then, whatever the blocks.
  * between boundaries, at most **one piece** of that estimate per ``sort_block`` call: (0)
    the depth raster of the window's peaks (the binning of
    :func:`oe_plugin.kernels.motion.fill_raster`), (1..A) its depth smoothing as offline, one
    amplitude class per piece, then its rigid registration against the reference raster and
    (non-rigid sorts) one per depth window, each by the offline correlation core
    (:func:`oe_plugin.kernels.motion.best_lag`, here in parts of ``TS_LAG_CHUNK`` lags,
    ~50 k multiply-adds each: :func:`~oe_plugin.kernels.motion.lag_correlations`, then
    :func:`~oe_plugin.kernels.motion.best_of`), so that no block pays for a whole registration
    of a long probe. The last part decides.

  Events are localized within a budget (``TS_PEAK_RATE`` per sample, a token bucket counted on
  their stream times: block invariant); the correction reads the live row's kriging taps from a
  compact copy (:func:`live_taps`) rewritten at each applied update.

The reference raster is the sort's own peaks (the last ``track_reference_s`` of the sort, moved
to its reference frame by its motion estimate), so that a registration gives the **absolute**
displacement in the sort's convention (:mod:`oe_plugin.kernels.motion`): online peaks (probe
frame) at ``y0 + d`` against reference peaks at ``y0``.

Decision (all in µm): the rigid estimate is **rejected** — the last good values kept, counters
``TS_REJ_*`` raised, the Python side reporting the first one — when its correlation is below
``min_corr``, when it jumps more than ``max_step_um`` from the last good rigid value, or when it
leaves ``±max_um`` (the drift tables' range; a lag at the search's edge counts as outside).
Windows with too few peaks (``< min_peaks``) are skipped (counted, not an error). An accepted
estimate is smoothed exponentially: ``p <- p + alpha (estimate - p)``. Non-rigid: each depth
window takes its own registration when that one is good (correlation, within ``max_step_um`` of
the rigid estimate, inside the range), else its last value moved by the rigid change.

Channels get their displacement by linear interpolation between the depth windows
(:func:`grid_row`, shared with the offline reconstruction in
:func:`oe_plugin.online.motion_tracker.tracked_bin_grid`, so that a replay's causal reference
rebuilds the same rows bit for bit).
"""

from __future__ import annotations

import numba
import numpy as np

from oe_plugin.kernels import motion as MO
from oe_plugin.kernels.localize import WORK_SIZE, localize_event

# tstate (float64) layout: settings (set once) ...
TS_ON = 0  # 1: tracking
TS_EVERY_N = 1  # samples between updates
TS_LAG_N = 2  # the window ends this many samples before the update
TS_WINDOW_N = 3  # window length (samples)
TS_BIN_UM = 4  # depth bin of the raster
TS_EDGE_UM = 5  # depth of the raster's first bin's lower edge
TS_MAX_STEP_UM = 6
TS_MIN_CORR = 7
TS_MAX_UM = 8  # |displacement| allowed (the drift tables' range)
TS_GRID0_UM = 9  # the drift tables' first displacement
TS_GRID_STEP_UM = 10
TS_HALF_WINDOW = 11  # localize: a channel's amplitude within ±this many samples
TS_MONOPOLAR = 12  # localize: 1 monopolar fit, 0 centre of mass
TS_MIN_PEAKS = 13
TS_ALPHA = 14  # exponential smoothing weight of a new estimate (1: none)
TS_MAX_LAG = 15  # lag search ±bins
TS_LOC_WIDTH = 16  # widest localization neighbour list
TS_PEAK_RATE = 17  # peaks localized per sample at most (token bucket on stream time)
TS_PEAK_BURST = 18  # ... and at most this many in a row
TS_LAG_CHUNK = 19  # lags correlated per piece
# ... and state
TS_NEXT_N = 20  # next update boundary (stream sample)
TS_CUR_START = 21  # sample where the live row began
TS_PK_HEAD = 22  # next write index of the peak ring
TS_PK_COUNT = 23  # peaks in the ring
TS_PHASE = 24  # -1 idle; 0 raster; 1 rigid; 1 + w window w; (work frozen at a boundary)
TS_WIN_END = 25  # the frozen window: peaks with TS_WIN_END - window_n <= t < TS_WIN_END
TS_PENDING = 26  # 1: an accepted estimate waits in pval[1] for the next boundary
TS_UPDATES = 27  # estimates accepted
TS_REJECTED = 28  # estimates rejected (any reason)
TS_REJ_CORR = 29
TS_REJ_JUMP = 30
TS_REJ_RANGE = 31
TS_SKIPPED = 32  # windows with too few peaks
TS_LAST_CORR = 33  # correlation of the latest rigid registration
TS_LAST_EST_UM = 34  # the latest rigid estimate (accepted or not)
TS_RIGID_UM = 35  # the last good rigid value
TS_HIST_N = 36  # history rows written
TS_HIST_LOST = 37  # rows not kept (history full)
TS_PEAKS = 38  # peaks pushed since reset
TS_WIN_PEAKS = 39  # peaks in the frozen window
TS_PIECE_DONE = 40  # a piece ran in this sort_block call (reset per call)
TS_LAST_REASON = 41  # 1 corr, 2 jump, 3 range of the latest rejection
TS_TOKENS = 42  # the localization budget's tokens
TS_TOKENS_T = 43  # stream sample of the last budget update
TS_PEAKS_OVER = 44  # events not localized (over the budget)
N_TSTATE = 48

REASONS = {1: "weak registration (correlation below track_min_corr)",
           2: "a jump larger than track_max_step_um",
           3: "outside the drift tables' range (track_max_um)"}

# pval rows (float64, (4, W)): applied values, the pending estimate, this window's estimates,
# their correlations
PV_GOOD, PV_NEXT, PV_EST, PV_CORR = 0, 1, 2, 3


@numba.njit(cache=True, error_model="numpy", nogil=True)
def grid_row(p, ch_map, ch_frac, grid0_um, step_um, n_grid, out_row, out_um):
    """Each channel's drift-table row for depth-window displacements ``p`` (W,) µm.

    ch_map : (C, 2) int32 windows (lo, hi) around each channel's depth, ch_frac : (C,) float64:
    ``d = p[lo] + frac (p[hi] - p[lo])`` (lo = hi, frac = 0 beyond the end windows);
    row ``rint((d - grid0_um) / step_um)`` clipped to ``0 .. n_grid - 1`` -> ``out_row`` (C,)
    int32, and that row's displacement ``grid0_um + row step_um`` -> ``out_um`` (C,) float64.
    """
    for c in range(out_row.shape[0]):
        lo = ch_map[c, 0]
        hi = ch_map[c, 1]
        d = p[lo] + ch_frac[c] * (p[hi] - p[lo])
        g = np.rint((d - grid0_um) / step_um)
        if not g >= 0.0:  # also NaN
            g = 0.0
        if g > n_grid - 1:
            g = n_grid - 1.0
        out_row[c] = np.int32(g)
        out_um[c] = grid0_um + g * step_um


@numba.njit(cache=True, error_model="numpy", nogil=True)
def used_displacement(tstate, chd, t, c):
    """The displacement (µm, grid value) that corrected channel ``c`` at stream sample ``t``
    (the live row, or the one before it for a sample before the last update)."""
    if c < 0 or c >= chd.shape[1]:
        return np.nan
    if t < np.int64(tstate[TS_CUR_START]):
        return chd[1, c]
    return chd[0, c]


@numba.njit(cache=True, error_model="numpy", nogil=True)
def push_peak(tstate, mring, mmask, t, c, loc_ptr, loc_idx, positions_um, loc_work, chd,
              pk_t, pk_v):
    """Localize the event (t, c) on the match ring and push (t, probe-frame depth, amplitude).
    At most ``TS_PEAK_RATE`` events per sample are localized (a token bucket of
    ``TS_PEAK_BURST`` counted on the events' stream times, so any blocks give the same choice);
    the rest only counted."""
    if tstate[TS_ON] == 0.0 or c < 0 or c >= positions_um.shape[0]:
        return
    dt = t - tstate[TS_TOKENS_T]
    if dt > 0:
        tstate[TS_TOKENS] = min(tstate[TS_PEAK_BURST], tstate[TS_TOKENS]
                                + dt * tstate[TS_PEAK_RATE])
        tstate[TS_TOKENS_T] = t
    if tstate[TS_TOKENS] < 1.0:
        tstate[TS_PEAKS_OVER] += 1.0
        return
    tstate[TS_TOKENS] -= 1.0
    w = np.int64(tstate[TS_LOC_WIDTH])
    if loc_work.shape[0] < 3 * w + 5 + WORK_SIZE or loc_ptr.shape[0] != positions_um.shape[0] + 1:
        return
    amp = loc_work[0:w]
    px = loc_work[w:2 * w]
    py = loc_work[2 * w:3 * w]
    fit = loc_work[3 * w:3 * w + 2]
    res = loc_work[3 * w + 2:3 * w + 5]
    work = loc_work[3 * w + 5:3 * w + 5 + WORK_SIZE]
    localize_event(mring, True, mmask, t, c, loc_ptr, loc_idx, positions_um,
                   np.int64(tstate[TS_HALF_WINDOW]), tstate[TS_MONOPOLAR] != 0.0, amp, px, py,
                   fit, work, res)
    if not res[2] > 0.0:
        return
    cap = pk_t.shape[0]
    h = np.int64(tstate[TS_PK_HEAD])
    pk_t[h] = t
    pk_v[h, 0] = res[1] + used_displacement(tstate, chd, t, c)
    pk_v[h, 1] = res[2]
    tstate[TS_PK_HEAD] = (h + 1) % cap
    tstate[TS_PK_COUNT] = min(tstate[TS_PK_COUNT] + 1.0, float(cap))
    tstate[TS_PEAKS] += 1.0


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _fill(tstate, pk_t, pk_v, cls_edges, rast):
    """Piece 0: the frozen window's depth raster, smoothed along depth, into rast[0]."""
    raw = rast[1]
    raw[:, :] = 0.0
    n_a, n_d = raw.shape
    end = np.int64(tstate[TS_WIN_END])
    start = end - np.int64(tstate[TS_WINDOW_N])
    bin_um = tstate[TS_BIN_UM]
    edge = tstate[TS_EDGE_UM]
    cap = pk_t.shape[0]
    cnt = np.int64(tstate[TS_PK_COUNT])
    head = np.int64(tstate[TS_PK_HEAD])
    n = 0
    for i in range(cnt):
        j = (head - cnt + i) % cap
        t = pk_t[j]
        if t < start or t >= end:
            continue
        a = pk_v[j, 1]
        d = np.int64(np.floor((pk_v[j, 0] - edge) / bin_um))
        la = np.log(a)
        k = 0
        while k < n_a - 1 and k < cls_edges.shape[0] and la > cls_edges[k]:
            k += 1
        if 0 <= d < n_d:
            raw[k, d] += 1.0
            n += 1
    tstate[TS_WIN_PEAKS] = n
    return n


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _register_part(tstate, rast, ref, win_g, cc, w, q, n_chunks):
    """Part ``q`` of ``n_chunks`` of registration ``w``: the smoothed raster weighted by
    ``win_g[w]`` (prepared into rast[2] at part 0) against ``ref[w]`` (row 0 rigid), over a
    chunk of lags. The last part returns (estimate µm, correlation); the others (nan, nan)."""
    tmp = rast[2]
    if q == 0:
        src = rast[0]
        n_a, n_d = tmp.shape
        for a in range(n_a):
            for d in range(n_d):
                tmp[a, d] = src[a, d] * win_g[w, d]
        MO.normalise_raster(tmp)
    max_lag = np.int64(tstate[TS_MAX_LAG])
    n_lag = 2 * max_lag + 1
    chunk = max(np.int64(tstate[TS_LAG_CHUNK]), np.int64(1))
    li0 = min(q * chunk, n_lag)
    li1 = n_lag if q >= n_chunks - 1 else min((q + 1) * chunk, n_lag)
    MO.lag_correlations(tmp, ref[w], max_lag, li0, li1, cc)
    if q < n_chunks - 1:
        return np.nan, np.nan
    lag, corr = MO.best_of(cc, max_lag)
    est = lag * tstate[TS_BIN_UM]
    if abs(lag) >= max_lag:
        est = np.inf  # the search's edge: treat as outside the range
    return est, corr


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _decide(tstate, pval, n_win):
    """After the registrations: accept (pval[PV_NEXT], TS_PENDING) or reject (counters)."""
    est = tstate[TS_LAST_EST_UM]
    corr = tstate[TS_LAST_CORR]
    rigid = tstate[TS_RIGID_UM]
    max_step = tstate[TS_MAX_STEP_UM]
    max_um = tstate[TS_MAX_UM]
    reason = 0
    if not corr >= tstate[TS_MIN_CORR]:
        reason = 1
    elif not abs(est) <= max_um:
        reason = 3
    elif not abs(est - rigid) <= max_step:
        reason = 2
    if reason > 0:
        tstate[TS_REJECTED] += 1.0
        tstate[TS_REJ_CORR + reason - 1] += 1.0
        tstate[TS_LAST_REASON] = reason
        tstate[TS_PENDING] = 0.0
        return
    alpha = tstate[TS_ALPHA]
    new_rigid = rigid + alpha * (est - rigid)
    for w in range(n_win):
        good = pval[PV_GOOD, w]
        if n_win == 1:
            e = est
        else:
            e = pval[PV_EST, w]
            if not (pval[PV_CORR, w] >= tstate[TS_MIN_CORR] and abs(e) <= max_um
                    and abs(e - est) <= max_step):
                e = good + (est - rigid)
        v = good + alpha * (e - good)
        pval[PV_NEXT, w] = min(max(v, -max_um), max_um)
    tstate[TS_RIGID_UM] = new_rigid
    tstate[TS_UPDATES] += 1.0
    tstate[TS_PENDING] = 1.0


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _piece(tstate, pk_t, pk_v, cls_edges, rast, ref, win_g, skern, cc, pval):
    """One bounded piece of the frozen window's estimate (see the module docstring): phase 0
    the raster; phases 1..A its depth smoothing, one amplitude class each; phase
    1 + A + r n_chunks + q part q of registration r (r = 0 rigid, then each depth window of a
    non-rigid sort); the last part decides."""
    phase = np.int64(tstate[TS_PHASE])
    if phase < 0:
        return
    n_win = pval.shape[1]
    n_reg = 1 if n_win == 1 else 1 + n_win  # rigid, then each depth window
    n_a = rast.shape[1]
    if phase == 0:
        n = _fill(tstate, pk_t, pk_v, cls_edges, rast)
        if n < tstate[TS_MIN_PEAKS]:
            tstate[TS_SKIPPED] += 1.0
            tstate[TS_PHASE] = -1.0
            return
        tstate[TS_PHASE] = 1.0
        return
    if phase <= n_a:  # depth smoothing, one amplitude class per piece
        a = phase - 1
        MO.smooth_depth(rast[1, a:a + 1], skern, rast[0, a:a + 1])
        tstate[TS_PHASE] = phase + 1.0
        return
    n_lag = 2 * np.int64(tstate[TS_MAX_LAG]) + 1
    chunk = max(np.int64(tstate[TS_LAG_CHUNK]), np.int64(1))
    n_chunks = (n_lag + chunk - 1) // chunk
    r = (phase - 1 - n_a) // n_chunks
    q = (phase - 1 - n_a) % n_chunks
    est, corr = _register_part(tstate, rast, ref, win_g, cc, r, q, n_chunks)
    if q == n_chunks - 1:
        if r == 0:
            tstate[TS_LAST_EST_UM] = est
            tstate[TS_LAST_CORR] = corr
        else:
            pval[PV_EST, r - 1] = est
            pval[PV_CORR, r - 1] = corr
        if r >= n_reg - 1:
            _decide(tstate, pval, n_win)
            tstate[TS_PHASE] = -1.0
            return
    tstate[TS_PHASE] = phase + 1.0


@numba.njit(cache=True, error_model="numpy", nogil=True)
def live_taps(bin_grid, d_index, d_weight, l_index, l_weight):
    """Copy each channel's kriging taps of its live row ``bin_grid[0]`` into the compact
    (C, 1, K) ``l_index`` / ``l_weight`` (what the correction reads every block: a few KiB
    instead of rows scattered over the full tables)."""
    n_c = min(bin_grid.shape[1], d_index.shape[0], l_index.shape[0])
    n_g = d_index.shape[1]
    n_k = min(d_index.shape[2], l_index.shape[2])
    for c in range(n_c):
        g = min(max(bin_grid[0, c], 0), n_g - 1)
        for k in range(n_k):
            l_index[c, 0, k] = d_index[c, g, k]
            l_weight[c, 0, k] = d_weight[c, g, k]


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _apply(tstate, pval, ch_map, ch_frac, n_grid, bin_grid, chd, hist, boundary):
    """At a boundary: the pending estimate becomes the live row; the history gets its row.
    Returns True when the live row changed."""
    n_win = pval.shape[1]
    n_ch = chd.shape[1]
    for c in range(n_ch):
        chd[1, c] = chd[0, c]
    changed = False
    if tstate[TS_PENDING] != 0.0:
        for w in range(n_win):
            pval[PV_GOOD, w] = pval[PV_NEXT, w]
        tstate[TS_PENDING] = 0.0
        grid_row(pval[PV_GOOD], ch_map, ch_frac, tstate[TS_GRID0_UM], tstate[TS_GRID_STEP_UM],
                 n_grid, bin_grid[0], chd[0])
        changed = True
    tstate[TS_CUR_START] = boundary
    k = np.int64(tstate[TS_HIST_N])
    if k < hist.shape[0]:
        for w in range(n_win):
            hist[k, w] = pval[PV_GOOD, w]
        tstate[TS_HIST_N] = k + 1.0
    else:
        tstate[TS_HIST_LOST] += 1.0
    return changed


@numba.njit(cache=True, error_model="numpy", nogil=True)
def track_step(tstate, n0, pk_t, pk_v, cls_edges, rast, ref, win_g, skern, cc, pval, ch_map,
               ch_frac, bin_grid, chd, hist, d_index, d_weight, l_index, l_weight):
    """Called before the sub-chunk that starts at stream sample ``n0``: at a boundary
    (``n0 >= TS_NEXT_N``) finish + apply the pending estimate and freeze the next window;
    otherwise run one piece if none ran in this ``sort_block`` call. Returns the next boundary
    (the caller ends its sub-chunk there)."""
    nxt = np.int64(tstate[TS_NEXT_N])
    every = max(np.int64(tstate[TS_EVERY_N]), np.int64(1))
    if n0 >= nxt:
        while tstate[TS_PHASE] >= 0.0:
            _piece(tstate, pk_t, pk_v, cls_edges, rast, ref, win_g, skern, cc, pval)
        if _apply(tstate, pval, ch_map, ch_frac, d_index.shape[1], bin_grid, chd, hist, nxt):
            live_taps(bin_grid, d_index, d_weight, l_index, l_weight)
        tstate[TS_WIN_END] = nxt - tstate[TS_LAG_N]
        tstate[TS_PHASE] = 0.0 if tstate[TS_WIN_END] > 0 else -1.0
        nxt += every
        tstate[TS_NEXT_N] = nxt
    elif tstate[TS_PIECE_DONE] == 0.0 and tstate[TS_PHASE] >= 0.0:
        _piece(tstate, pk_t, pk_v, cls_edges, rast, ref, win_g, skern, cc, pval)
        tstate[TS_PIECE_DONE] = 1.0
    return nxt
