"""Chunk task 2: match every event of a chunk to the templates, peel, re-detect, repeat.

Per chunk (plus context on both sides, so spikes near the edges see their neighbours):

1. the chunk's traces (noise units), transposed to the time-major layout of the matching
   kernel (:mod:`oe_plugin.kernels.match`);
2. the detected events, in time order, each matched to its best template (explained energy,
   ±``max_shift_samples``); accepted fits (error <= the template's threshold) are subtracted;
3. ``peel_passes`` times: detect again in the residual (spikes hidden by an overlapping, larger
   one now cross on their own), at ``peel_threshold_factor`` (0.78) x the detection threshold,
   skip what was already tried at the same place, match and subtract the new events. Events
   that cross the full threshold are matched first, as in step 2; the weaker ones (a small
   unit's spikes that noise kept under the threshold) then get single fits only (no overlap
   resolution), accepted only above the lowest scale ``amplitude_min`` (a fit pinned there is
   a noise crossing or a larger spike's residue that only half resembles the template);
4. with ``template_detect_z`` > 0, the matched-filter pass (:func:`template_events`): each
   weak template's response peaks in the residual become events, matched as the weak ones
   of step 3 (a unit near the threshold loses the spikes noise keeps under it).

An event whose best single fit is rejected is resolved as up to ``max_overlap_spikes``
overlapping spikes within ``pair_window_us`` (greedy matching pursuit with refits and a
per-spike check, :func:`oe_plugin.kernels.match.resolve_overlap`); every accepted spike after
the first is reported on the event's channel with ``pair`` set. A rejected event is matched
again when a later pass re-detects it (its neighbours may have been peeled off since).

Only spikes whose matched time lies inside the chunk are returned. In calibration mode nothing
is subtracted and every event's best unit and error are returned (for the thresholds).
"""

from __future__ import annotations

import numpy as np

from oe_plugin.kernels.match import (
    P_ACCEPT_AMP,
    P_PAIR_WINDOW,
    make_params,
    match_events,
    match_tables,
)
from oe_plugin.kernels.matched_filter import (
    RESPONSE_TILE,
    response_peaks,
    template_response,
    template_rows_for_response,
)
from offline.sort.detection import detect_traces, detection_context, make_detector
from offline.sort.job import SortJob, window_samples
from offline.sort.templates import TemplateSet


def match_chunk(job: SortJob, index: int, templates: TemplateSet, thresholds: np.ndarray,
                ev_t: np.ndarray, ev_c: np.ndarray, calibrate: bool = False,
                wide_rows: np.ndarray | None = None) -> dict:
    """Spikes of chunk ``index``.

    ev_t, ev_c : the detected events (sorting-rate sample index, peak channel) that fall in the
        chunk's extended range (the driver slices them; extra ones are ignored).
    Returns arrays ``t`` int64, ``unit`` int32 (-1: no template fits), ``accepted`` bool,
    ``amplitude`` float32 (fit scale), ``error`` float32, ``channel`` int32, ``pass_`` int8
    (0 = first detection, k = k-th re-detection, ``peel_passes`` + 1 = the matched-filter pass),
    ``pair`` bool (the second spike of a pair).

    wide_rows : (U, K2) int32 channels (-1 unused), given when rebuilding templates: then also
        ``sum`` (U, K2, W) float32 and ``count`` (U,) int64 — per template, the sum over its
        accepted first-detection, single-fit spikes inside the chunk of their windows (on
        ``wide_rows[u]``) of the traces as they were *before* any subtraction. (Summing "residual +
        own fit" instead was tried: it removes overlapping neighbours, but a wrong fit of a
        neighbour template to the far part of a unit's footprint is then subtracted from that unit's
        mean too and the error reinforces itself; on the raw traces neighbours are uncorrelated and
        average out.)
    """
    s = job.settings.sort
    prep = job.preprocessor()
    g = prep.geometry
    start, stop = g.bounds(index)
    pre, post = window_samples(job, g.sample_rate_hz)
    detector = make_detector(job, prep.n_channels, g.sample_rate_hz, 1024,
                             s.peel_threshold_factor)
    pair = int(round(s.pair_window_us * 1e-6 * g.sample_rate_hz))
    ctx = detection_context(detector) + pre + post + 2 * s.max_shift_samples + 2 * pair
    lo, hi = max(0, start - ctx), min(g.n_samples, stop + ctx)
    src = np.ascontiguousarray(prep.traces(lo, hi).T)  # (n, C) time-major
    original = src.copy() if wide_rows is not None else None
    cand_ptr, cand_idx = templates.candidates(prep.n_channels)
    thr = (np.full(templates.n_units, np.inf, np.float32) if calibrate
           else np.asarray(thresholds, np.float32))
    # drift-corrected traces: template rows on channels whose correction is extrapolated (off
    # the probe's end after a large move) are left out of the fits, per interpolation bin
    valid, valid_bin_n, valid_bin0 = (prep.drift.valid_bins(lo, hi, g.sample_rate_hz)
                                      if prep.drift is not None
                                      else (np.zeros((1, 0), np.int32), 0, 0))
    params = make_params(pre, s.max_shift_samples, s.amplitude_min, s.amplitude_max,
                         mask=-1, row_offset=lo, subtract=not calibrate,
                         pair_window=pair, max_spikes=s.max_overlap_spikes,
                         refit_rounds=s.overlap_refit_rounds, overlap_rounds=s.overlap_cycles,
                         partial=s.overlap_partial, amp_prior=s.amplitude_prior,
                         valid_bin_n=valid_bin_n, valid_bin0=valid_bin0)
    extra = max(1, s.max_overlap_spikes - 1)  # extra spikes per event the outputs hold
    norms, tpl_rows, work, iwork = match_tables(templates.waveforms, cand_ptr,
                                                 prep.n_channels, params)
    sel = (ev_t >= lo) & (ev_t < hi)
    t = np.asarray(ev_t[sel], np.int64)
    c = np.asarray(ev_c[sel], np.int32)
    order = np.lexsort((c, t))
    t, c = t[order], c[order]
    parts = []
    tried = set()
    factor = s.peel_threshold_factor
    passes = 0 if calibrate else s.peel_passes
    # below-threshold re-detections: single fits only, not at the lowest scale
    weak_params = params.copy()
    weak_params[P_PAIR_WINDOW] = 0
    weak_params[P_ACCEPT_AMP] = s.amplitude_min
    # the matched-filter pass (after the peel passes; its events are matched as weak ones)
    last = passes + (1 if s.template_detect_z > 0 and not calibrate else 0)
    p = 0
    while p <= last:
        groups = [(t, c, params)]
        if 0 < p <= passes:
            ev = detect_traces(detector, np.ascontiguousarray(src.T))
            t = ev["sample_index"] + lo
            c = ev["channel_index"].astype(np.int32)
            new = np.array([(int(a), int(b)) not in tried for a, b in zip(t, c, strict=True)],
                           bool)
            # below the full threshold (only when the pass detects at a lower one)
            weak = np.abs(ev["amplitude"]) < detector.thr_uv[c] / factor
            groups = [(t[new & ~weak], c[new & ~weak], params),
                      (t[new & weak], c[new & weak], weak_params)]
            if not new.any():
                p = passes + 1  # nothing new: on to the matched-filter pass, if any
                continue
        elif p > passes:
            t, c = template_events(src, templates, detector.thr_uv / factor, s, pre)
            t = t + lo
            new = np.array([(int(a), int(b)) not in tried for a, b in zip(t, c, strict=True)],
                           bool)
            groups = [(t[new], c[new], weak_params)]
        p += 1
        for t, c, prm in groups:
            if len(t) == 0:
                continue
            n = len(t)
            unit = np.zeros(n, np.int32)
            shift = np.zeros(n, np.int32)
            amp = np.zeros(n, np.float32)
            err = np.zeros(n, np.float32)
            ok = np.zeros(n, np.int32)
            unit2 = np.zeros(n * extra, np.int32)
            shift2 = np.zeros(n * extra, np.int32)
            amp2 = np.zeros(n * extra, np.float32)
            err2 = np.zeros(n * extra, np.float32)
            match_events(src, t, c, templates.waveforms, templates.channels, norms, tpl_rows,
                         cand_ptr, cand_idx, thr, prm, work, iwork, unit, shift, amp, err, ok,
                         unit2, shift2, amp2, err2, valid)
            # an event whose spike was accepted is done; a rejected one is tried again if a
            # later pass re-detects it (the spikes around it may have been subtracted since)
            done = ok > 0
            tried.update(zip(t[done].tolist(), c[done].tolist(), strict=True))
            parts.append((t + shift, unit, done, amp, err, c, np.full(n, p - 1, np.int8),
                          np.zeros(n, bool), t))
            more = (np.arange(extra)[None, :] < (ok[:, None] - 1)).ravel()  # (n * extra,)
            if more.any():
                k = int(more.sum())
                ev_i = np.repeat(np.arange(n), extra)[more]
                parts.append((t[ev_i] + shift2[more], unit2[more], np.ones(k, bool),
                              amp2[more], err2[more], c[ev_i], np.full(k, p - 1, np.int8),
                              np.ones(k, bool), np.full(k, -1, np.int64)))
    cols = [np.concatenate(x) for x in zip(*parts, strict=True)] if parts else [
        np.zeros(0, d) for d in (np.int64, np.int32, bool, np.float32, np.float32, np.int32,
                                 np.int8, bool, np.int64)]
    keep = (cols[0] >= start) & (cols[0] < stop) & _last_try(cols[8], cols[5], cols[6])
    cols = cols[:8]
    names = ("t", "unit", "accepted", "amplitude", "error", "channel", "pass_", "pair")
    out = {k: v[keep] for k, v in zip(names, cols, strict=True)}
    if wide_rows is not None:
        out.update(_accumulate(original, lo, pre, templates.waveforms.shape[2], out, wide_rows,
                               s.rebuild_clip))
    return out


def template_events(src: np.ndarray, templates: TemplateSet, full_thr: np.ndarray, s,
                    pre: int) -> tuple[np.ndarray, np.ndarray]:
    """The matched-filter pass's events in ``src`` (n, C) time-major residual traces (noise
    units): for each template whose peak-channel trough is under ``template_detect_max_trough``
    x that channel's full detection threshold (``full_thr`` (C,), src units), the peaks of its
    response (:func:`oe_plugin.kernels.matched_filter.template_response`, over the rows holding
    95 % of its energy, at most ``template_detect_rows``) above ``template_detect_z`` x the
    response's robust spread (median |y| / 0.6745), at most one per half template width.
    Returns (t, c): local samples of the window position ``pre`` (the trough) and the
    template's peak channel, sorted by (t, c), unique."""
    n = src.shape[0]
    width = templates.waveforms.shape[2]
    col = np.empty(s.template_detect_rows * min(n, RESPONSE_TILE + width), np.float32)
    y = np.empty(n, np.float32)
    peaks = np.empty(n // (width // 2 + 1) + 1, np.int64)
    ts, cs = [], []
    for u in range(templates.n_units):
        pc = int(templates.peak_channel[u])
        on_peak = templates.channels[u] == pc
        if not on_peak.any() or not 0 <= pc < len(full_thr):
            continue
        trough = float(np.abs(templates.waveforms[u][on_peak]).max())
        if trough >= s.template_detect_max_trough * float(full_thr[pc]):
            continue
        chans, rows = template_rows_for_response(templates.waveforms[u], templates.channels[u],
                                                 s.template_detect_rows, 0.95)
        m = template_response(src, chans, rows, col, y)
        if m <= 0:
            continue
        spread = float(np.median(np.abs(y[:m]))) / 0.6745
        if not spread > 0:
            continue
        k = response_peaks(y, m, s.template_detect_z * spread, width // 2, peaks)
        ts.append(peaks[:k] + pre)
        cs.append(np.full(k, pc, np.int32))
    if not ts:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    t = np.concatenate(ts)
    c = np.concatenate(cs)
    key = np.unique(np.stack([t, c.astype(np.int64)], axis=1), axis=0)
    return key[:, 0].astype(np.int64), key[:, 1].astype(np.int32)


def _last_try(event_t, channel, pass_) -> np.ndarray:
    """False for the rows of an event (``event_t`` >= 0, ``channel``) that a later pass matched
    again (a rejected event is retried when re-detected): each event is reported once, as its
    last try left it. Rows with ``event_t`` -1 (extra spikes of an overlap) are kept."""
    keep = np.ones(len(event_t), bool)
    first = np.flatnonzero(event_t >= 0)
    if len(first) == 0:
        return keep
    order = first[np.lexsort((pass_[first], channel[first], event_t[first]))]
    same_next = (event_t[order][1:] == event_t[order][:-1]) & \
        (channel[order][1:] == channel[order][:-1])
    keep[order[:-1][same_next]] = False
    return keep


CLIP_MIN_SPIKES = 5
"""Fewer spikes of a unit in a chunk: their plain sum (a median of 1-4 windows is no reference)."""


def _accumulate(src, lo, pre, width, spikes, wide_rows, clip: float = 0.0) -> dict:
    """Per-template sums of the spikes' windows on ``wide_rows`` (see match_chunk).

    ``clip`` > 0 (noise units): a robust sum, for templates with at least :data:`CLIP_MIN_SPIKES`
    spikes in the chunk: each window's deviation from the chunk's per-sample median window is
    clipped to ``+-clip`` (``n * median + sum(clip(x - median))``, Huber's idea). A neighbour's
    big spike overlapping a few of a unit's windows then moves the unit's mean by at most
    ``clip / n`` per window instead of its whole size; unit noise is barely clipped."""
    n_units, k2 = wide_rows.shape
    sums = np.zeros((n_units, k2, width), np.float64)
    count = np.zeros(n_units, np.int64)
    # spikes found in a residual (peel passes, second spikes of pairs) are left out: a loose
    # template's fit to what a big neighbour left behind would drag its mean towards that unit
    ok = spikes["accepted"] & (spikes["unit"] >= 0) & (spikes["pass_"] == 0) & ~spikes["pair"]
    first = spikes["t"][ok] - lo - pre
    unit = spikes["unit"][ok]
    inside = (first >= 0) & (first + width <= len(src))
    first, unit = first[inside], unit[inside]
    offs = np.arange(width)
    for u in np.unique(unit):
        sel = unit == u
        rows = wide_rows[u]
        valid = rows >= 0
        win = src[(first[sel][:, None] + offs)[:, :, None], rows[valid][None, None, :]]
        if clip > 0 and len(win) >= CLIP_MIN_SPIKES:
            ref = np.median(win, axis=0)
            total = len(win) * ref + np.clip(win - ref, -clip, clip).sum(axis=0)
        else:
            total = win.sum(axis=0)
        sums[u, valid] = total.T
        count[u] = int(sel.sum())
    return {"sum": sums.astype(np.float32), "count": count}
