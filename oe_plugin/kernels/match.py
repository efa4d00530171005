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
N_PARAMS = 7

NO_UNIT = -1


def make_params(pre, max_shift, amp_min=0.5, amp_max=2.0, mask=-1, row_offset=0, subtract=True):
    """The ``params`` array of :func:`match_events`."""
    params = np.zeros(N_PARAMS, dtype=np.float64)
    params[P_PRE] = pre
    params[P_MAX_SHIFT] = max_shift
    params[P_AMP_MIN] = amp_min
    params[P_AMP_MAX] = amp_max
    params[P_MASK] = mask
    params[P_ROW_OFFSET] = row_offset
    params[P_SUBTRACT] = 1.0 if subtract else 0.0
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
        for s in range(-max_shift, max_shift + 1):
            gain, a, resid, n_rows = _fit(
                src,
                mask,
                first + max_shift + s,
                templates,
                tpl_chan,
                u,
                tpl_norm2[u],
                amp_min,
                amp_max,
            )
            if gain > best_gain:
                best_gain = gain
                best_u = u
                best_s = s
                best_a = a
                best_err = resid / (n_rows * width)
    return best_u, best_s, best_a, best_err


@numba.njit(cache=True, error_model="numpy")
def subtract_fit(src, t, u, amplitude, templates, tpl_chan, params):
    """``src -= amplitude * T_u`` with template sample ``pre`` at stream index ``t``."""
    pre = np.int64(params[P_PRE])
    mask = np.int64(params[P_MASK])
    first = t - np.int64(params[P_ROW_OFFSET]) - pre
    width = templates.shape[2]
    if mask == -1 and (first < 0 or first + width > src.shape[0]):
        return
    n_channels = src.shape[1]
    for k in range(templates.shape[1]):
        ch = tpl_chan[u, k]
        if ch < 0 or ch >= n_channels:
            continue
        for w in range(width):
            src[(first + w) & mask, ch] -= amplitude * templates[u, k, w]


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
):
    """Match events in the given order (sort them by time for peeling); returns # accepted.

    src (R, C) float32; ev_t (E,) int64 stream index; ev_c (E,) int32 peak channel;
    templates (U, K, W) float32; tpl_chan (U, K) int32; tpl_norm2 (U,) float32
    (:func:`template_norms`); cand_ptr (C+1,) int32 / cand_idx int32 candidate lists;
    thresholds (U,) float32 largest accepted error per template; params float64 (layout above).
    Outputs per event (E,): out_unit int32 best template or -1, out_shift int32 samples (the
    spike is at ``ev_t + shift``), out_amp float32 scale of the fit, out_err float32 error,
    out_ok int32 1 when accepted (and subtracted if P_SUBTRACT).
    """
    n_events = min(
        ev_t.shape[0],
        ev_c.shape[0],
        out_unit.shape[0],
        out_shift.shape[0],
        out_amp.shape[0],
        out_err.shape[0],
        out_ok.shape[0],
    )
    subtract = params[P_SUBTRACT] != 0.0
    n_ok = 0
    for e in range(n_events):
        u, s, a, err = match_one(
            src, ev_t[e], ev_c[e], templates, tpl_chan, tpl_norm2, cand_ptr, cand_idx, params
        )
        out_unit[e] = u
        out_shift[e] = s
        out_amp[e] = a
        out_err[e] = err
        ok = u >= 0 and u < thresholds.shape[0] and err <= thresholds[u]
        out_ok[e] = 1 if ok else 0
        if ok:
            n_ok += 1
            if subtract:
                subtract_fit(src, ev_t[e] + s, u, a, templates, tpl_chan, params)
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
    )


match_entry = cfunc_entry(_match_entry)
"""C entry over :func:`match_events`, arguments in its order through an ArgTable. Online, set
argument 0 to the ring, 1/2 to the block's events (``ArgTable.set`` with the event count as the
length), and read the outputs' first ``n`` entries."""
