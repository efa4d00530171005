"""Template matching: assign detected events to templates, and peel matched spikes off.

Shared by the offline sorter (``@njit``, :func:`match_events`) and the online sorter (``@cfunc``,
:data:`match_entry`, safe on the GUI's GIL-less audio thread): float32 data, no allocation, no
exceptions (``error_model="numpy"``; bad indices are skipped, never read).

**Data source.** Samples are read *time-major* from ``src`` (R, C) float32: the sample of stream
index ``t`` is row ``(t - row_offset) & mask``. With ``mask = -1`` (all bits set) ``src`` is a
plain array whose row 0 is ``row_offset`` (offline: a chunk's traces transposed); with
``mask = R - 1`` (R a power of two) it is a ring buffer (online: the detector's filtered
history, whose row of stream sample ``t`` is ``t & (R - 1)``, so ``row_offset = 0``). A plain
array's bounds are checked (an event whose window does not fit is left unmatched); a ring's
cannot be: the caller must keep the window's samples in it.

**Templates.** ``templates`` (U, K, W) float32 in the units of ``src``; row ``k`` of template
``u`` is channel ``tpl_chan[u, k]`` (-1 = unused row); template sample ``pre`` lines up with
the event's sample. ``cand_ptr`` (C + 1,) / ``cand_idx`` list, per peak channel, the templates
an event peaking there may belong to (CSR; e.g. templates whose peak channel is a neighbour).

**The fit and the error metric.** For each candidate ``u`` and shift ``s`` in ``[-S, S]``
samples, with ``x`` the event's window on ``u``'s channels starting at ``t + s - pre``:
``a = <x, T_u> / |T_u|^2`` clipped to ``[amp_min, amp_max]`` (0 when ``<x, T_u> <= 0``), and
the *explained energy* ``gain = |x|^2 - |x - a T_u|^2 = 2 a <x, T_u> - a^2 |T_u|^2``. The
winner maximises ``gain`` (matching pursuit: the template that explains most of the event).
Its **error** is the residual energy per sample, ``|x - a T_u|^2 / (n_rows * W)``: on traces
scaled to unit noise (the offline sorter's convention) it is about 1 for the template's own
spikes and larger for anything else, so its distribution over a template's events is bimodal and
the acceptance threshold sits at the trough (chosen per template by the driver). The event is
**accepted** when ``gain > 0`` and ``error <= thresholds[u]``; then, when ``params[P_SUBTRACT]``
is set, ``a T_u`` is subtracted from ``src`` at the matched time (peeling: a spike hidden under
an overlapping one can then be re-detected in the residual).

**Overlaps where neither spike fits alone** (``params[P_PAIR_WINDOW] = L > 0``, with
subtraction on). When the best single fit ``(u1, s1)`` of an event is rejected, the kernel
tries to explain the window as *two* spikes (greedy matching pursuit, then one round of
refits): subtract ``a1 T_u1``; find the template ``u2`` and time (within ``±L`` samples of the
first spike) that explain most of the residual, among the candidates of every channel of
``u1``'s rows; subtract it and add ``u1`` back; refit the event (any candidate) on that
residual -> ``u1'``; subtract it, add ``u2`` back and refit ``u2`` (``±S`` shifts) -> ``u2'``.
Both are accepted only if **each** error (on the window with the *other* spike removed) is
within its template's threshold; then both fits stay subtracted and the second spike is
reported in the ``out_*2`` arrays. Otherwise ``src`` is restored (up to float32 rounding) and
the event stays rejected. Cost: only rejected events pay it, ``~(2L+1) x (candidates)`` fits.
"""

from __future__ import annotations

import numba
import numpy as np

from oe_plugin.kernels._entry import (
    _make_view,
    arg_f32_1d,
    arg_f32_2d,
    arg_f64_1d,
    arg_i32_1d,
    arg_i32_2d,
    arg_i64_1d,
    cfunc_entry,
)

arg_f32_3d = _make_view(np.float32, 3)

# params (float64 array) layout
P_PRE = 0  # template sample aligned with the event sample
P_MAX_SHIFT = 1  # samples searched on each side
P_AMP_MIN = 2
P_AMP_MAX = 3
P_MASK = 4  # -1: plain array; R - 1: ring of R rows
P_ROW_OFFSET = 5  # stream index of row 0 (plain array) / subtracted before masking (ring)
P_SUBTRACT = 6  # 1: subtract accepted fits from src
P_PAIR_WINDOW = 7  # L > 0: resolve rejected events as two overlapping spikes within ±L samples
N_PARAMS = 8

NO_UNIT = -1


def make_params(pre, max_shift, amp_min=0.5, amp_max=2.0, mask=-1, row_offset=0, subtract=True,
                pair_window=0):
    """The ``params`` array of :func:`match_events` (``pair_window`` 0: no pair resolution)."""
    params = np.zeros(N_PARAMS, dtype=np.float64)
    params[P_PRE] = pre
    params[P_MAX_SHIFT] = max_shift
    params[P_AMP_MIN] = amp_min
    params[P_AMP_MAX] = amp_max
    params[P_MASK] = mask
    params[P_ROW_OFFSET] = row_offset
    params[P_SUBTRACT] = 1.0 if subtract else 0.0
    params[P_PAIR_WINDOW] = pair_window
    return params


@numba.njit(cache=True, error_model="numpy")
def template_norms(templates, out):
    """``out[u] = |T_u|^2`` (float32 (U,)); call once when the templates change."""
    for u in range(templates.shape[0]):
        acc = 0.0
        for k in range(templates.shape[1]):
            for w in range(templates.shape[2]):
                v = np.float64(templates[u, k, w])
                acc += v * v
        out[u] = acc


@numba.njit(cache=True, error_model="numpy")
def _fit(src, mask, first_row, templates, tpl_chan, u, norm2, amp_min, amp_max):
    """Fit template ``u`` at rows ``first_row..``; returns (gain, amplitude, residual, n_rows)."""
    n_channels = src.shape[1]
    width = templates.shape[2]
    dot = 0.0
    xx = 0.0
    n_rows = 0
    for k in range(templates.shape[1]):
        ch = tpl_chan[u, k]
        if ch < 0 or ch >= n_channels:
            continue
        n_rows += 1
        for w in range(width):
            x = np.float64(src[(first_row + w) & mask, ch])
            dot += x * templates[u, k, w]
            xx += x * x
    if n_rows == 0 or norm2 <= 0.0 or dot <= 0.0:
        return -np.inf, 0.0, xx, n_rows
    a = dot / norm2
    if a < amp_min:
        a = amp_min
    if a > amp_max:
        a = amp_max
    gain = 2.0 * a * dot - a * a * norm2
    return gain, a, xx - gain, n_rows


@numba.njit(cache=True, error_model="numpy")
def _best_shift(src, mask, first, s_lo, s_hi, templates, tpl_chan, u, norm2, amp_min, amp_max):
    """Best shift in ``[s_lo, s_hi]`` of template ``u`` whose row 0 is at ``first + s``.

    Returns ``(gain, shift, amplitude, error)``; gain 0 and shift 0 when nothing fits (a plain
    array's windows that do not fit are skipped)."""
    width = templates.shape[2]
    best_gain = 0.0
    best_s = 0
    best_a = 0.0
    best_err = np.inf
    for s in range(s_lo, s_hi + 1):
        row = first + s
        if mask == -1 and (row < 0 or row + width > src.shape[0]):
            continue
        gain, a, resid, n_rows = _fit(src, mask, row, templates, tpl_chan, u, norm2,
                                      amp_min, amp_max)
        if gain > best_gain:
            best_gain = gain
            best_s = s
            best_a = a
            best_err = resid / (n_rows * width)
    return best_gain, best_s, best_a, best_err


@numba.njit(cache=True, error_model="numpy")
def match_one(src, t, c, templates, tpl_chan, tpl_norm2, cand_ptr, cand_idx, params):
    """Best template for one event at stream index ``t`` peaking on channel ``c``.

    Returns ``(unit, shift, amplitude, error)``; ``unit = -1`` when no candidate fits (no
    template for ``c``, window outside a plain array, or no positive correlation).
    """
    pre = np.int64(params[P_PRE])
    max_shift = np.int64(params[P_MAX_SHIFT])
    amp_min = params[P_AMP_MIN]
    amp_max = params[P_AMP_MAX]
    mask = np.int64(params[P_MASK])
    row_offset = np.int64(params[P_ROW_OFFSET])
    width = templates.shape[2]
    best_u = NO_UNIT
    best_s = 0
    best_a = 0.0
    best_err = np.inf
    best_gain = 0.0
    if c < 0 or c + 1 >= cand_ptr.shape[0]:
        return best_u, best_s, best_a, best_err
    first = t - row_offset - pre - max_shift
    if mask == -1 and (first < 0 or first + width + 2 * max_shift > src.shape[0]):
        return best_u, best_s, best_a, best_err
    n_templates = templates.shape[0]
    for q in range(cand_ptr[c], cand_ptr[c + 1]):
        u = cand_idx[q]
        if u < 0 or u >= n_templates:
            continue
        gain, s, a, err = _best_shift(src, mask, first + max_shift, -max_shift, max_shift,
                                      templates, tpl_chan, u, tpl_norm2[u], amp_min, amp_max)
        if gain > best_gain:
            best_gain = gain
            best_u = u
            best_s = s
            best_a = a
            best_err = err
    return best_u, best_s, best_a, best_err


@numba.njit(cache=True, error_model="numpy")
def subtract_fit(src, t, u, amplitude, templates, tpl_chan, params):
    """``src -= amplitude * T_u`` with template sample ``pre`` at stream index ``t`` (a negative
    amplitude adds the fit back)."""
    pre = np.int64(params[P_PRE])
    mask = np.int64(params[P_MASK])
    first = t - np.int64(params[P_ROW_OFFSET]) - pre
    width = templates.shape[2]
    if mask == -1 and (first < 0 or first + width > src.shape[0]):
        return
    n_channels = src.shape[1]
    if u < 0 or u >= templates.shape[0]:
        return
    for k in range(templates.shape[1]):
        ch = tpl_chan[u, k]
        if ch < 0 or ch >= n_channels:
            continue
        for w in range(width):
            src[(first + w) & mask, ch] -= amplitude * templates[u, k, w]


@numba.njit(cache=True, error_model="numpy")
def _listed(cand_ptr, cand_idx, ch, u):
    for q in range(cand_ptr[ch], cand_ptr[ch + 1]):
        if cand_idx[q] == u:
            return True
    return False


@numba.njit(cache=True, error_model="numpy")
def resolve_pair(src, t, c, u1, s1, a1, templates, tpl_chan, tpl_norm2, cand_ptr, cand_idx,
                 thresholds, params):
    """Explain a rejected event (best single fit ``u1`` at ``t + s1``, scale ``a1``) as two
    overlapping spikes (module docstring). Returns ``(ok, u1, s1, a1, e1, u2, s2, a2, e2)``
    with both shifts relative to ``t``; when ``ok`` is False ``src`` is left as it was."""
    pre = np.int64(params[P_PRE])
    max_shift = np.int64(params[P_MAX_SHIFT])
    pair_window = np.int64(params[P_PAIR_WINDOW])
    amp_min = params[P_AMP_MIN]
    amp_max = params[P_AMP_MAX]
    mask = np.int64(params[P_MASK])
    row_offset = np.int64(params[P_ROW_OFFSET])
    n_templates = templates.shape[0]
    n_ch = src.shape[1]
    n_lists = cand_ptr.shape[0] - 1
    fail = (False, u1, s1, a1, np.inf, NO_UNIT, 0, 0.0, np.inf)
    if (pair_window <= 0 or u1 < 0 or u1 >= n_templates or u1 >= thresholds.shape[0]
            or thresholds.shape[0] < n_templates):
        return fail
    t1 = t + s1
    subtract_fit(src, t1, u1, a1, templates, tpl_chan, params)
    # the template and time that explain most of what u1 left, within ±pair_window
    best_gain = 0.0
    u2 = NO_UNIT
    s2 = 0
    a2 = 0.0
    base = t1 - row_offset - pre
    for k in range(tpl_chan.shape[1]):
        ch = tpl_chan[u1, k]
        if ch < 0 or ch >= n_ch or ch >= n_lists:
            continue
        for q in range(cand_ptr[ch], cand_ptr[ch + 1]):
            v = cand_idx[q]
            if v < 0 or v >= n_templates:
                continue
            seen = False
            for k2 in range(k):
                ch2 = tpl_chan[u1, k2]
                if ch2 >= 0 and ch2 < n_ch and ch2 < n_lists and _listed(cand_ptr, cand_idx,
                                                                         ch2, v):
                    seen = True
                    break
            if seen:
                continue
            g, sv, av, _ = _best_shift(src, mask, base, -pair_window, pair_window, templates,
                                       tpl_chan, v, tpl_norm2[v], amp_min, amp_max)
            if g > best_gain:
                best_gain = g
                u2 = v
                s2 = sv
                a2 = av
    if u2 < 0:
        subtract_fit(src, t1, u1, -a1, templates, tpl_chan, params)
        return fail
    t2 = t1 + s2
    # refit the event with the second spike removed (any candidate may win now)
    subtract_fit(src, t2, u2, a2, templates, tpl_chan, params)
    subtract_fit(src, t1, u1, -a1, templates, tpl_chan, params)
    v1, r1, b1, e1 = match_one(src, t, c, templates, tpl_chan, tpl_norm2, cand_ptr, cand_idx,
                               params)
    if v1 < 0:
        subtract_fit(src, t2, u2, -a2, templates, tpl_chan, params)
        return fail
    # refit the second spike with the first removed
    subtract_fit(src, t + r1, v1, b1, templates, tpl_chan, params)
    subtract_fit(src, t2, u2, -a2, templates, tpl_chan, params)
    g2, r2, b2, e2 = _best_shift(src, mask, t2 - row_offset - pre, -max_shift, max_shift,
                                 templates, tpl_chan, u2, tpl_norm2[u2], amp_min, amp_max)
    t2 = t2 + r2
    same = v1 == u2 and abs(t2 - (t + r1)) <= max_shift  # one spike fitted twice
    if g2 > 0.0 and not same and e1 <= thresholds[v1] and e2 <= thresholds[u2]:
        subtract_fit(src, t2, u2, b2, templates, tpl_chan, params)
        return True, v1, r1, b1, e1, u2, t2 - t, b2, e2
    subtract_fit(src, t + r1, v1, -b1, templates, tpl_chan, params)
    return fail


@numba.njit(cache=True, error_model="numpy")
def match_events(
    src,
    ev_t,
    ev_c,
    templates,
    tpl_chan,
    tpl_norm2,
    cand_ptr,
    cand_idx,
    thresholds,
    params,
    out_unit,
    out_shift,
    out_amp,
    out_err,
    out_ok,
    out_unit2,
    out_shift2,
    out_amp2,
    out_err2,
):
    """Match events in the given order (sort them by time for peeling); returns the number of
    accepted spikes (``out_ok.sum()``).

    src (R, C) float32; ev_t (E,) int64 stream index; ev_c (E,) int32 peak channel;
    templates (U, K, W) float32; tpl_chan (U, K) int32; tpl_norm2 (U,) float32
    (:func:`template_norms`); cand_ptr (C+1,) int32 / cand_idx int32 candidate lists;
    thresholds (U,) float32 largest accepted error per template; params float64 (layout above).
    Outputs per event (E,): out_unit int32 best template or -1, out_shift int32 samples (the
    spike is at ``ev_t + shift``), out_amp float32 scale of the fit, out_err float32 error,
    out_ok int32 spikes accepted for the event: 0, 1, or 2 (an overlapping pair: the second
    spike is ``out_unit2`` at ``ev_t + out_shift2``, scale ``out_amp2``, error ``out_err2``;
    ``out_unit2 = -1`` otherwise). With a ring (``mask != -1``) the caller must keep
    ``pre + max_shift + pair_window`` samples before and after each event in it.
    """
    n_events = min(
        ev_t.shape[0],
        ev_c.shape[0],
        out_unit.shape[0],
        out_shift.shape[0],
        out_amp.shape[0],
        out_err.shape[0],
        out_ok.shape[0],
        out_unit2.shape[0],
        out_shift2.shape[0],
        out_amp2.shape[0],
        out_err2.shape[0],
    )
    subtract = params[P_SUBTRACT] != 0.0
    pairs = subtract and params[P_PAIR_WINDOW] > 0
    n_ok = 0
    for e in range(n_events):
        u, s, a, err = match_one(
            src, ev_t[e], ev_c[e], templates, tpl_chan, tpl_norm2, cand_ptr, cand_idx, params
        )
        out_unit2[e] = NO_UNIT
        out_shift2[e] = 0
        out_amp2[e] = 0.0
        out_err2[e] = np.inf
        ok = u >= 0 and u < thresholds.shape[0] and err <= thresholds[u]
        n_spikes = 1 if ok else 0
        if ok and subtract:
            subtract_fit(src, ev_t[e] + s, u, a, templates, tpl_chan, params)
        elif not ok and pairs and u >= 0:
            found, v1, r1, b1, e1, v2, r2, b2, e2 = resolve_pair(
                src, ev_t[e], ev_c[e], u, s, a, templates, tpl_chan, tpl_norm2, cand_ptr,
                cand_idx, thresholds, params)
            if found:
                u, s, a, err = v1, r1, b1, e1
                out_unit2[e] = v2
                out_shift2[e] = r2
                out_amp2[e] = b2
                out_err2[e] = e2
                n_spikes = 2
        out_unit[e] = u
        out_shift[e] = s
        out_amp[e] = a
        out_err[e] = err
        out_ok[e] = n_spikes
        n_ok += n_spikes
    return n_ok


def _match_entry(addresses, shapes):
    return match_events(
        arg_f32_2d(addresses, shapes, 0),
        arg_i64_1d(addresses, shapes, 1),
        arg_i32_1d(addresses, shapes, 2),
        arg_f32_3d(addresses, shapes, 3),
        arg_i32_2d(addresses, shapes, 4),
        arg_f32_1d(addresses, shapes, 5),
        arg_i32_1d(addresses, shapes, 6),
        arg_i32_1d(addresses, shapes, 7),
        arg_f32_1d(addresses, shapes, 8),
        arg_f64_1d(addresses, shapes, 9),
        arg_i32_1d(addresses, shapes, 10),
        arg_i32_1d(addresses, shapes, 11),
        arg_f32_1d(addresses, shapes, 12),
        arg_f32_1d(addresses, shapes, 13),
        arg_i32_1d(addresses, shapes, 14),
        arg_i32_1d(addresses, shapes, 15),
        arg_i32_1d(addresses, shapes, 16),
        arg_f32_1d(addresses, shapes, 17),
        arg_f32_1d(addresses, shapes, 18),
    )


match_entry = cfunc_entry(_match_entry)
"""C entry over :func:`match_events`, arguments in its order through an ArgTable. Online, set
argument 0 to the ring, 1/2 to the block's events (``ArgTable.set`` with the event count as the
length), and read the outputs' first ``n`` entries."""
