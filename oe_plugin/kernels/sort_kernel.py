"""Online sorting of one block: scale -> detect -> keep a filtered ring -> match ready events.

One kernel, :func:`sort_block`, drives two shared kernels over a block of raw samples:
:func:`oe_plugin.kernels.detect_kernel.detect_block` (band-pass, threshold, lockout) and
:func:`oe_plugin.kernels.match.match_events` (the offline sorter's template matching). It adds no
signal processing of its own, only the bookkeeping that makes the stream look like one array:

0. with a drift stage (``sparams[SP_DRIFT_BIN_N] > 0``), each sub-chunk of raw µV is first
   drift-corrected into ``dbuf`` (C, S) by :func:`oe_plugin.kernels.drift.correct_columns`
   (interpolation bin of stream sample ``t``: ``t // bin_n``, the detector's sample count;
   the bins' kriging rows in ``bin_grid``), *before* the causal band-pass (both are linear);
1. the block is processed in sub-chunks of at most ``scratch.shape[0]`` samples; each sub-chunk
   is scaled to **noise units** (``x * inv_noise[c]``, the sort's fixed per-channel noise, as the
   offline sorter scales its traces) into a sample-major scratch and detected (fixed threshold in
   noise units, as offline);
2. the detector's freshly filtered rows are copied into the *match ring* ``mring`` (R, C),
   R a power of two, row of stream sample ``t`` = ``t & (R - 1)`` (the detector's own ring is
   too short for a matching window and must not be modified by peeling);
3. detected events wait in a FIFO until the ring holds every sample their match may read or
   peel (``t + need_after`` samples written); then each is matched **in detection order** by
   :func:`match_events` with ``mask = R - 1`` (accepted fits are subtracted from the ring, and
   rejected events may be resolved as overlapping pairs, exactly as offline); with a drift stage,
   template rows on channels whose correction was extrapolated at the event's time are left out
   of its fit (:func:`event_valid`, the matcher's channel mask).

Because events are matched in the same global order and each one sees exactly the samples (and
earlier subtractions) it would see in one array, the labels do not depend on the block sizes:
the offline causal path (:mod:`offline.online_match`) runs the same two kernels on the whole
recording as plain arrays and gets identical spikes.

Outputs per call (``scount[S_OUT_N]`` records): ``out_t`` int64 spike sample (event time plus
the fit's shift), ``out_c`` int32 detection channel, ``out_a`` float32 µV (detection amplitude;
for the second spike of a pair the fit scale times the template's peak), ``out_u`` int32 unit
(-1: detected, no template accepted it).
"""

from __future__ import annotations

import numba
import numpy as np

from oe_plugin.kernels import detect_kernel as D
from oe_plugin.kernels import drift as DR
from oe_plugin.kernels import match as M
from oe_plugin.kernels import motion_track as TR
from oe_plugin.kernels._entry import (
    arg_f32_1d,
    arg_f32_2d,
    arg_f64_1d,
    arg_f64_2d,
    arg_f64_3d,
    arg_i32_1d,
    arg_i32_2d,
    arg_i64_1d,
    arg_i64_2d,
    cfunc_entry,
)
from oe_plugin.kernels.bandpass import clean_rows, columns_to_rows, sos_rows
from oe_plugin.kernels.match import arg_f32_3d

# sparams (float64) layout
SP_NEED_AFTER = 0  # samples that must be written after an event before it is matched
SP_MATCH = 1  # 1: match events; 0: emit every detection at once, unit -1
SP_WRITE_DOWNSTREAM = 2  # 1: replace the block by the filtered signal (µV)
SP_DRIFT_BIN_N = 3  # > 0: drift-correct raw samples first, interpolation bins of this many samples
SP_WHITE_DETECT = 4  # with whitening: 1 = detect on the whitened samples, 0 = on the plain ones
N_SPARAMS = 5

# scount (int64) layout
S_OUT_N = 0  # records written by the current call
S_Q_HEAD = 1
S_Q_COUNT = 2
S_Q_DROPPED = 3  # events lost to a full FIFO (never expected)
S_OUT_DROPPED = 4  # records lost to a full output (never expected)
S_MATCHED = 5  # events matched since the start
S_ACCEPTED = 6  # spikes accepted (a pair counts 2)
S_VKEY = 7  # which mask ``vmask`` holds (:func:`event_mask`): key + 1; 0: none (recompute)
N_SCOUNT = 8


@numba.njit(cache=True, error_model="numpy", inline="always")
def _emit(out_t, out_c, out_a, out_u, out_d, scount, t, c, a, u, d):
    n = scount[S_OUT_N]
    if n < out_t.shape[0]:
        out_t[n] = t
        out_c[n] = c
        out_a[n] = a
        out_u[n] = u
        if n < out_d.shape[0]:
            out_d[n] = d
        scount[S_OUT_N] = n + 1
    else:
        scount[S_OUT_DROPPED] += 1


@numba.njit(cache=True, error_model="numpy", inline="always")
def displacement_used(t, c, sparams, bin_grid, tstate, chd):
    """µm the drift stage shifted channel ``c`` by at stream sample ``t`` (its drift-table grid
    value); NaN without a drift stage."""
    if tstate[TR.TS_ON] != 0.0:
        return TR.used_displacement(tstate, chd, t, c)
    bin_n = np.int64(sparams[SP_DRIFT_BIN_N])
    n_b = bin_grid.shape[0]
    if bin_n <= 0 or n_b == 0 or c < 0 or c >= bin_grid.shape[1]:
        return np.nan
    b = min(max(t // bin_n, 0), n_b - 1)
    return tstate[TR.TS_GRID0_UM] + bin_grid[b, c] * tstate[TR.TS_GRID_STEP_UM]


@numba.njit(cache=True, error_model="numpy")
def event_valid(t, sparams, bin_grid, tstate, chd, d_valid, vmask):
    """``vmask[0, c]`` <- whether channel ``c``'s drift correction at stream sample ``t`` was
    interpolated (``d_valid[c, g]`` of the grid row ``g`` that corrected it: the bin's row, or
    with tracking the live row / the one before it, :func:`displacement_used`): the matcher's
    channel mask for the event. Without a drift stage all ones; a (1, 0) ``vmask`` is left
    empty (no mask)."""
    if vmask.shape[0] == 0:
        return
    n_c = vmask.shape[1]
    bin_n = np.int64(sparams[SP_DRIFT_BIN_N])
    n_b = bin_grid.shape[0]
    n_g = d_valid.shape[1]
    if bin_n <= 0 or n_b == 0 or n_g == 0 or d_valid.shape[0] < n_c:
        for c in range(n_c):
            vmask[0, c] = 1
        return
    tracking = tstate[TR.TS_ON] != 0.0
    step = tstate[TR.TS_GRID_STEP_UM]
    b = min(max(t // bin_n, 0), n_b - 1)
    for c in range(n_c):
        g = 0
        if tracking:
            if step > 0.0 and c < chd.shape[1]:
                d = TR.used_displacement(tstate, chd, t, c)
                g = np.int64(np.rint((d - tstate[TR.TS_GRID0_UM]) / step))
        elif c < bin_grid.shape[1]:
            g = bin_grid[b, c]
        g = min(max(g, 0), n_g - 1)
        vmask[0, c] = d_valid[c, g]


@numba.njit(cache=True, error_model="numpy", inline="always")
def event_mask(t, sparams, bin_grid, tstate, chd, d_valid, vmask, scount):
    """:func:`event_valid`, computed only when the event's mask differs from the one ``vmask``
    holds (``scount[S_VKEY]``). Within a sub-chunk of :func:`sort_block` the mask of an event
    depends on its time only through which grid rows corrected it: with tracking, whether
    ``t`` lies before the live row's start (``TS_CUR_START``: the row before it, else the live
    one); otherwise its interpolation bin. :func:`sort_block` forgets the key at every
    sub-chunk's start (the tracker may have changed its rows there, Python between calls), so
    the mask is bit for bit the one :func:`event_valid` would compute for every event."""
    if vmask.shape[0] == 0:
        return
    bin_n = np.int64(sparams[SP_DRIFT_BIN_N])
    n_b = bin_grid.shape[0]
    if tstate[TR.TS_ON] != 0.0:
        key = np.int64(1) if t < np.int64(tstate[TR.TS_CUR_START]) else np.int64(0)
    elif bin_n > 0 and n_b > 0:
        key = min(max(t // bin_n, 0), n_b - 1)
    else:
        key = np.int64(0)
    if scount[S_VKEY] == key + 1:
        return
    event_valid(t, sparams, bin_grid, tstate, chd, d_valid, vmask)
    scount[S_VKEY] = key + 1


@numba.njit(cache=True, error_model="numpy")
def drain_ready(written, mring, noise, q_t, q_c, q_a, templates, tpl_chan, tpl_norm2,
                tpl_rows, cand_ptr, cand_idx, thresholds, tpl_peak_uv, mparams, work, iwork,
                e_t, e_c, o_unit, o_shift, o_amp, o_err, o_ok, o_unit2, o_shift2, o_amp2, o_err2,
                out_t, out_c, out_a, out_u, sparams, scount, out_d, bin_grid, tstate, pk_t, pk_v,
                positions, loc_ptr, loc_idx, loc_work, chd, d_valid, vmask):
    """Match, in FIFO order, every queued event whose window is complete (``written`` samples
    are in the ring); with motion tracking on, each is first localized into the peak ring
    (:func:`oe_plugin.kernels.motion_track.push_peak`). Each is matched with the channel mask
    of its time (:func:`event_valid`, through the cache of :func:`event_mask`)."""
    mmask = mring.shape[0] - 1
    need_after = np.int64(sparams[SP_NEED_AFTER])
    cap = q_t.shape[0]
    n_ch = noise.shape[0]
    n_units = tpl_peak_uv.shape[0]
    while scount[S_Q_COUNT] > 0:
        h = scount[S_Q_HEAD]
        t = q_t[h]
        if t + need_after > written:
            break
        c = q_c[h]
        amp_uv = q_a[h]
        if c >= 0 and c < n_ch:
            amp_uv = amp_uv * noise[c]
        e_t[0] = t
        e_c[0] = c
        d_um = displacement_used(t, c, sparams, bin_grid, tstate, chd)
        if tstate[TR.TS_ON] != 0.0:
            TR.push_peak(tstate, mring, mmask, t, c, loc_ptr, loc_idx, positions, loc_work, chd,
                         pk_t, pk_v)
        event_mask(t, sparams, bin_grid, tstate, chd, d_valid, vmask, scount)
        M.match_events(mring, e_t, e_c, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
                       cand_idx, thresholds, mparams, work, iwork, o_unit, o_shift, o_amp, o_err,
                       o_ok, o_unit2, o_shift2, o_amp2, o_err2, vmask)
        ok = o_ok[0]
        scount[S_MATCHED] += 1
        if ok >= 1:
            scount[S_ACCEPTED] += ok
            _emit(out_t, out_c, out_a, out_u, out_d, scount, t + o_shift[0], c, amp_uv,
                  o_unit[0], d_um)
            if ok == 2:
                u2 = o_unit2[0]
                peak = tpl_peak_uv[u2] if u2 >= 0 and u2 < n_units else np.float32(0.0)
                _emit(out_t, out_c, out_a, out_u, out_d, scount, t + o_shift2[0], c,
                      o_amp2[0] * peak, u2, d_um)
        else:
            _emit(out_t, out_c, out_a, out_u, out_d, scount, t, c, amp_uv, M.NO_UNIT, d_um)
        scount[S_Q_HEAD] = (h + 1) % cap
        scount[S_Q_COUNT] -= 1


@numba.njit(cache=True, error_model="numpy")
def sort_block(data, noise, inv_noise, scratch,
               sos, zi, ring, tmp, noise_ring, noise_counts, noise_bin_uv, noise_hist,
               noise_sched, noise_uv, noise_scratch, thr_uv, nb_ptr, nb_idx, cand_t, cand_a,
               cand_n, det_t, det_c, det_a, det_params, det_counters,
               mring, q_t, q_c, q_a, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
               cand_idx, thresholds, tpl_peak_uv, mparams, work, iwork, e_t, e_c, o_unit,
               o_shift, o_amp, o_err, o_ok, o_unit2, o_shift2, o_amp2, o_err2, out_t, out_c,
               out_a, out_u, sparams, scount, dbuf, bin_grid, d_index, d_weight, out_d, tstate,
               pk_t, pk_v, positions, loc_ptr, loc_idx, loc_work, cls_edges, rast, ref, win_g,
               skern, cc, pval, ch_map, ch_frac, chd, hist, l_index, l_weight, l_grid, d_valid,
               vmask, wbuf, w_index, w_weight, w_grid, wzi):
    """Process one block ``data`` (C, N) float32 µV; returns the records written to ``out_*``.

    The detector state (``sos`` .. ``det_counters``) is :class:`SpikeDetector`'s, with
    ``det_params[P_SAMPLE_MAJOR] = 1`` and write-back off; ``scratch`` (S, C) float32.
    Drift stage (used when ``sparams[SP_DRIFT_BIN_N] > 0``): ``dbuf`` (C, >= S) float32 scratch,
    ``bin_grid`` (B, C) int32, ``d_index`` / ``d_weight`` (C, G, K) the kriging tables.
    ``out_d`` (like ``out_t``) float32 <- the displacement (µm) that corrected each spike's
    channel at its event time (NaN: no drift stage).
    Motion tracking (``tstate[TS_ON] = 1``, with ``bin_grid`` one live row): ``tstate`` ..
    ``hist`` are :mod:`oe_plugin.kernels.motion_track`'s state (see
    :class:`oe_plugin.online.motion_tracker.Tracker`); sub-chunks end at its update samples;
    the correction then reads the live row's taps from ``l_index`` / ``l_weight`` (C, 1, K)
    through ``l_grid`` (1, C) zeros.
    Channel mask of the matcher: ``d_valid`` (C, G) int32 the tables' valid flags
    (:attr:`oe_plugin.kernels.drift.DriftTables.valid`), ``vmask`` (1, C) int32 scratch
    rewritten per event (:func:`event_valid`); a (1, 0) ``vmask``: no mask.
    Spatial whitening (the sort's ``[preprocess] whiten``; used when ``wbuf`` is (C, >= S) and
    ``w_index`` has C rows): ``w_index`` / ``w_weight`` (C, 1, K) its mix, ``w_grid`` (C,)
    zeros; each sub-chunk is mixed into ``wbuf`` after the drift stage (raw µV, before the
    band-pass: both are linear and the mix does not change in time). With
    ``sparams[SP_WHITE_DETECT]`` the detector runs on the whitened samples and its filtered
    rows fill the match ring as without whitening (the default sort); without it the detector
    runs on the plain samples, and the whitened ones are scaled into the match ring's rows,
    cleaned and band-passed there in place with their own filter state ``wzi`` (like the
    detector's ``zi``; the detector's ``sos`` and ``tmp``).
    """
    n_ch = data.shape[0]
    n = data.shape[1]
    sub = scratch.shape[0]
    dmask = ring.shape[0] - 1
    mmask = mring.shape[0] - 1
    matching = sparams[SP_MATCH] != 0.0
    downstream = sparams[SP_WRITE_DOWNSTREAM] != 0.0
    qcap = q_t.shape[0]
    bin_n = np.int64(sparams[SP_DRIFT_BIN_N])
    drift = bin_n > 0 and dbuf.shape[0] == n_ch and dbuf.shape[1] >= sub
    whiten = (wbuf.shape[0] == n_ch and wbuf.shape[1] >= sub and w_index.shape[0] == n_ch
              and w_grid.shape[0] == n_ch)
    white_detect = sparams[SP_WHITE_DETECT] != 0.0
    white_rows = (whiten and not white_detect and matching and mring.shape[1] == n_ch
                  and wzi.shape[0] == zi.shape[0] and wzi.shape[2] == n_ch)
    scount[S_OUT_N] = 0
    if n_ch != inv_noise.shape[0] or n_ch != scratch.shape[1]:
        return 0
    tracking = drift and matching and tstate[TR.TS_ON] != 0.0 and bin_grid.shape[0] == 1
    tstate[TR.TS_PIECE_DONE] = 0.0
    c_index, c_weight, c_grid = d_index, d_weight, bin_grid
    if tracking and l_index.shape[0] == n_ch and l_grid.shape[1] == n_ch:
        c_index, c_weight, c_grid = l_index, l_weight, l_grid
    pos = 0
    while pos < n:
        m = min(sub, n - pos)
        n0 = det_counters[D.C_PROCESSED]
        scount[S_VKEY] = 0  # the channel mask is computed again (event_mask)
        if tracking:
            nxt = TR.track_step(tstate, n0, pk_t, pk_v, cls_edges, rast, ref, win_g, skern, cc,
                                pval, ch_map, ch_frac, bin_grid, chd, hist, d_index, d_weight,
                                l_index, l_weight)
            if nxt > n0:
                m = min(m, nxt - n0)
        plain, p0 = (dbuf, 0) if drift else (data, pos)
        if drift:
            DR.correct_columns(data, pos, dbuf, 0, m, n0, bin_n, c_grid, c_index, c_weight)
        if whiten:
            DR.mix_columns(plain, p0, wbuf, 0, m, w_index, w_weight, w_grid)
        if whiten and white_detect:
            columns_to_rows(wbuf, 0, m, inv_noise, True, scratch, 0, -1)
        else:
            columns_to_rows(plain, p0, m, inv_noise, True, scratch, 0, -1)
        if white_rows:  # the matcher's whitened rows, filtered in place in the match ring
            columns_to_rows(wbuf, 0, m, inv_noise, True, mring, n0, mmask)
            clean_rows(mring, n0, m, n_ch)
            sos_rows(sos, wzi, mring, n0, m, tmp)
        k = D.detect_block(scratch[:m], sos, zi, ring, tmp, noise_ring, noise_counts,
                           noise_bin_uv, noise_hist, noise_sched, noise_uv, noise_scratch,
                           thr_uv, nb_ptr, nb_idx, cand_t, cand_a, cand_n, det_t, det_c, det_a,
                           det_params, det_counters)
        written = det_counters[D.C_PROCESSED]
        for s in range(n0, written if not white_rows else n0):
            src = ring[s & dmask]
            dst = mring[s & mmask]
            for c in range(n_ch):
                dst[c] = src[c]
        if downstream:
            for i in range(m):
                src = ring[(n0 + i) & dmask]
                for c in range(n_ch):
                    data[c, pos + i] = src[c] * noise[c]
        if matching:
            for e in range(k):
                if scount[S_Q_COUNT] >= qcap:
                    scount[S_Q_DROPPED] += 1
                    continue
                j = (scount[S_Q_HEAD] + scount[S_Q_COUNT]) % qcap
                q_t[j] = det_t[e]
                q_c[j] = det_c[e]
                q_a[j] = det_a[e]
                scount[S_Q_COUNT] += 1
            drain_ready(written, mring, noise, q_t, q_c, q_a, templates, tpl_chan, tpl_norm2,
                        tpl_rows, cand_ptr, cand_idx, thresholds, tpl_peak_uv, mparams, work,
                        iwork, e_t, e_c, o_unit, o_shift, o_amp, o_err, o_ok, o_unit2, o_shift2,
                        o_amp2, o_err2, out_t, out_c, out_a, out_u, sparams, scount, out_d,
                        bin_grid, tstate, pk_t, pk_v, positions, loc_ptr, loc_idx, loc_work,
                        chd, d_valid, vmask)
        else:
            for e in range(k):
                c = det_c[e]
                a = det_a[e] * noise[c] if c >= 0 and c < n_ch else det_a[e]
                _emit(out_t, out_c, out_a, out_u, out_d, scount, det_t[e], c, a, M.NO_UNIT,
                      displacement_used(det_t[e], c, sparams, bin_grid, tstate, chd))
        pos += m
    return scount[S_OUT_N]


def _sort_entry(addresses, shapes):
    return sort_block(
        arg_f32_2d(addresses, shapes, 0),
        arg_f32_1d(addresses, shapes, 1),
        arg_f32_1d(addresses, shapes, 2),
        arg_f32_2d(addresses, shapes, 3),
        # detector state
        arg_f64_2d(addresses, shapes, 4),
        arg_f64_3d(addresses, shapes, 5),
        arg_f32_2d(addresses, shapes, 6),
        arg_f64_1d(addresses, shapes, 7),
        arg_f32_2d(addresses, shapes, 8),
        arg_i32_2d(addresses, shapes, 9),
        arg_f32_1d(addresses, shapes, 10),
        arg_f32_2d(addresses, shapes, 11),
        arg_i64_2d(addresses, shapes, 12),
        arg_f32_1d(addresses, shapes, 13),
        arg_f32_1d(addresses, shapes, 14),
        arg_f32_1d(addresses, shapes, 15),
        arg_i32_1d(addresses, shapes, 16),
        arg_i32_1d(addresses, shapes, 17),
        arg_i64_2d(addresses, shapes, 18),
        arg_f32_2d(addresses, shapes, 19),
        arg_i64_1d(addresses, shapes, 20),
        arg_i64_1d(addresses, shapes, 21),
        arg_i32_1d(addresses, shapes, 22),
        arg_f32_1d(addresses, shapes, 23),
        arg_f64_1d(addresses, shapes, 24),
        arg_i64_1d(addresses, shapes, 25),
        # match ring, FIFO, templates and matching scratch
        arg_f32_2d(addresses, shapes, 26),
        arg_i64_1d(addresses, shapes, 27),
        arg_i32_1d(addresses, shapes, 28),
        arg_f32_1d(addresses, shapes, 29),
        arg_f32_3d(addresses, shapes, 30),
        arg_i32_2d(addresses, shapes, 31),
        arg_f32_1d(addresses, shapes, 32),
        arg_f32_3d(addresses, shapes, 33),
        arg_i32_1d(addresses, shapes, 34),
        arg_i32_1d(addresses, shapes, 35),
        arg_f32_1d(addresses, shapes, 36),
        arg_f32_1d(addresses, shapes, 37),
        arg_f64_1d(addresses, shapes, 38),
        arg_f64_1d(addresses, shapes, 39),
        arg_i32_1d(addresses, shapes, 40),
        # one-event scratch for match_events
        arg_i64_1d(addresses, shapes, 41),
        arg_i32_1d(addresses, shapes, 42),
        arg_i32_1d(addresses, shapes, 43),
        arg_i32_1d(addresses, shapes, 44),
        arg_f32_1d(addresses, shapes, 45),
        arg_f32_1d(addresses, shapes, 46),
        arg_i32_1d(addresses, shapes, 47),
        arg_i32_1d(addresses, shapes, 48),
        arg_i32_1d(addresses, shapes, 49),
        arg_f32_1d(addresses, shapes, 50),
        arg_f32_1d(addresses, shapes, 51),
        # outputs
        arg_i64_1d(addresses, shapes, 52),
        arg_i32_1d(addresses, shapes, 53),
        arg_f32_1d(addresses, shapes, 54),
        arg_i32_1d(addresses, shapes, 55),
        arg_f64_1d(addresses, shapes, 56),
        arg_i64_1d(addresses, shapes, 57),
        # drift stage
        arg_f32_2d(addresses, shapes, 58),
        arg_i32_2d(addresses, shapes, 59),
        DR.arg_i32_3d(addresses, shapes, 60),
        DR.arg_f32_3d(addresses, shapes, 61),
        # displacement per spike, motion tracking
        arg_f32_1d(addresses, shapes, 62),
        arg_f64_1d(addresses, shapes, 63),
        arg_i64_1d(addresses, shapes, 64),
        arg_f32_2d(addresses, shapes, 65),
        arg_f64_2d(addresses, shapes, 66),
        arg_i32_1d(addresses, shapes, 67),
        arg_i32_1d(addresses, shapes, 68),
        arg_f64_1d(addresses, shapes, 69),
        arg_f64_1d(addresses, shapes, 70),
        arg_f64_3d(addresses, shapes, 71),
        arg_f64_3d(addresses, shapes, 72),
        arg_f64_2d(addresses, shapes, 73),
        arg_f64_1d(addresses, shapes, 74),
        arg_f64_1d(addresses, shapes, 75),
        arg_f64_2d(addresses, shapes, 76),
        arg_i32_2d(addresses, shapes, 77),
        arg_f64_1d(addresses, shapes, 78),
        arg_f64_2d(addresses, shapes, 79),
        arg_f64_2d(addresses, shapes, 80),
        DR.arg_i32_3d(addresses, shapes, 81),
        DR.arg_f32_3d(addresses, shapes, 82),
        arg_i32_2d(addresses, shapes, 83),
        # the matcher's channel mask
        arg_i32_2d(addresses, shapes, 84),
        arg_i32_2d(addresses, shapes, 85),
        # spatial whitening
        arg_f32_2d(addresses, shapes, 86),
        DR.arg_i32_3d(addresses, shapes, 87),
        DR.arg_f32_3d(addresses, shapes, 88),
        arg_i32_1d(addresses, shapes, 89),
        arg_f64_3d(addresses, shapes, 90),
    )


sort_entry = cfunc_entry(_sort_entry)
"""C entry over :func:`sort_block` (arguments in its order, through an ArgTable)."""
