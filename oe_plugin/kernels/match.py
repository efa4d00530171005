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
``a = (<x, T_u> + l |T_u|^2) / ((1 + l) |T_u|^2)`` clipped to ``[amp_min, amp_max]`` (no fit
when ``<x, T_u> <= 0``), with ``l = params[P_AMP_PRIOR]`` the amplitude prior (0: least squares;
``l`` > 0 pulls the scale toward 1: a unit's spikes have about its template's size), and the
*explained energy* ``gain = |x|^2 - |x - a T_u|^2 - l |T_u|^2 (a - 1)^2``. The winner maximises
``gain`` (matching pursuit: the template that explains most of the event).
Its **error** is the residual energy per sample, ``|x - a T_u|^2 / (n_rows * W)``: on traces
scaled to unit noise (the offline sorter's convention) it is about 1 for the template's own
spikes and larger for anything else, so its distribution over a template's events is bimodal and
the acceptance threshold sits at the trough (chosen per template by the driver). The event is
**accepted** when ``gain > 0`` and ``error <= thresholds[u]``; then, when ``params[P_SUBTRACT]``
is set, ``a T_u`` is subtracted from ``src`` at the matched time (peeling: a spike hidden under
an overlapping one can then be re-detected in the residual).

**Channels off the probe** (drift correction). After a large probe move, the kriging correction
of channels near the probe's end reads the field *outside* the probe and only extrapolates it
(weights summing well below 1, :mod:`oe_plugin.kernels.drift`); a template row there leaves a
residual of several noise variances per sample and fails its unit's spikes. ``valid`` (B, C)
int32 (the last argument of :func:`match_events`: per interpolation bin, 1 where the channel's
correction is interpolated) masks them: an event uses the row of its bin
(``params[P_VALID_BIN_N]``, ``P_VALID_BIN0``), and its fits, norms and errors leave out every
template row on a masked channel (subtraction still removes the whole template); a template that
keeps less than :data:`MIN_KEPT_ENERGY` (a quarter) of its energy is no candidate (its unit has
left the probe). Without a mask (None, or an all-ones one) the results are bit for bit those of
the unmasked matcher. The
offline sorter passes its drift correction's bins (:meth:`offline.sort.preprocess.
DriftCorrection.valid_bins`), the online sorter the rows that corrected each event
(:func:`oe_plugin.kernels.sort_kernel.event_valid`), the causal reference the same rows.

**Overlaps no single template fits** (``params[P_PAIR_WINDOW] = L > 0``, with subtraction
on, ``params[P_MAX_SPIKES] = N >= 2``). When the best single fit ``(u1, s1)`` of an event is
rejected, the kernel explains the window as up to N spikes (:func:`resolve_overlap`):

1. greedy matching pursuit: subtract ``a1 T_u1``, then again and again the template and time
   (within ``±L`` samples of the first spike, among the candidates of every channel of ``u1``)
   that explain most of what is left, until the best pick explains less than a quarter of its
   template's energy or N spikes are kept;
2. one polishing round (each spike's own template refitted, ``±S``, on what the others leave),
   then verification: each spike's error on the window with every *other* kept spike removed; when
   all are within their templates' thresholds, done (the common case: two clean spikes);
3. otherwise three rounds of coordinate descent (each spike in turn put back and its template
   and time re-chosen, same candidates, ``±L``, for what all the others leave: a template
   straddling two spikes, the usual greedy mistake, is corrected; a unit fitted twice within
   ``±S`` keeps its first fit) and a second verification; if a spike still fails, the worst one
   is put back, and the pursuit resumes from 1 with the freed place;
4. with ``params[P_PARTIAL]`` set, the last cycle's pursuit is not undone: the spikes that pass
   their check (each with the failing ones' fits still removed) are kept, and only the failing
   ones are put back (without it, a failing spike is put back first and the others re-checked
   with it in their window, which often rejects the whole overlap).

The kept spikes stay subtracted and are reported (``out_*2`` for all after the first); with
none, ``src`` is restored (up to float32 rounding) and the event stays rejected. Only rejected
events pay for it.

**Effort and budget** (the offline sorter's defaults first; the online sorter's in
:func:`oe_plugin.online.match_model.match_params`): ``P_REFIT_ROUNDS`` coordinate-descent rounds
in step 3 (3), ``P_OVERLAP_ROUNDS`` cycles of steps 1-3 (0: ``2 N``), ``P_PURSUIT_STEP`` the
shift step of step 1's ±L search (1; step 2's polish then refines ±S). ``P_OVERLAP_RATE`` > 0
bounds how many rejected events are tried at all: one try is earned every ``1 / rate`` samples
of stream time and at most ``P_OVERLAP_BURST`` are saved up (state in ``work``, reset by
:func:`reset_overlap_budget`); it depends on the events' times only, so the same events give the
same result in one call or one event per call.

**Speed.** A search (an event's candidates over ``±S``, or the second spike's over ``±L``)
gathers the window rows of the channels its candidates use once into contiguous float32 scratch
and fits each template row as one vectorised float32 product over rows zero-padded to
:data:`PAD` samples (:func:`template_rows`); only the winner's window energy is computed (its
error). 2.2-7.4x faster than the float64 sample loop over the strided ring it replaced, with the
same unit, shift and accepted count for every event of synthetic recordings with distinct
waveforms (``benchmarks/bench_match_kernel.py``; templates that differ only in scale tie in
gain, and rounding then picks among them). The scratch ``work`` / ``iwork`` comes from
:func:`match_tables`.
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
P_PAIR_WINDOW = 7  # L > 0: resolve rejected events as overlapping spikes within ±L samples
P_MAX_SPIKES = 8  # most spikes an overlap resolves into (2: pairs)
P_REFIT_ROUNDS = 9  # coordinate-descent rounds when a resolved overlap fails verification
P_OVERLAP_ROUNDS = 10  # pursue -> verify -> refit -> drop-worst cycles (0: 2 x max spikes)
P_PURSUIT_STEP = 11  # shift step of a pursuit pick's +-L search (polish then refines +-S)
P_OVERLAP_RATE = 12  # overlap attempts earned per stream sample (0: every rejected event tries)
P_OVERLAP_BURST = 13  # most attempts saved up (the budget's capacity)
P_PARTIAL = 14  # 1: an overlap keeps its verified spikes, the others' fits count as explained
P_AMP_PRIOR = 15  # l >= 0: a fit pays l |T|^2 (a - 1)^2 for a scale away from 1
MIN_KEPT_ENERGY = 0.25
"""A template whose rows on unmasked channels keep less than this fraction of its energy is no
candidate (its unit has left the corrected frame). A quarter, not a half: a unit drifting off
the probe's end is still recorded there by its footprint's inner rows (mono64 live benchmark,
seed 101: a unit 20 µm past the last contact kept 25-30 % of its template energy, was 38 µV on
the end contact, and was lost at a half)."""
P_VALID_BIN_N = 16  # > 0: event at stream index t uses mask row t // this - P_VALID_BIN0
P_VALID_BIN0 = 17  # interpolation bin of the mask's row 0
P_ACCEPT_AMP = 18  # > 0: a single fit is accepted only when its scale exceeds this
N_PARAMS = 19

NO_UNIT = -1


def make_params(pre, max_shift, amp_min=0.5, amp_max=2.0, mask=-1, row_offset=0, subtract=True,
                pair_window=0, max_spikes=2, refit_rounds=3, overlap_rounds=0,
                pursuit_step=1, overlap_rate=0.0, overlap_burst=0.0, partial=False,
                amp_prior=0.0, valid_bin_n=0, valid_bin0=0, accept_amp=0.0):
    """The ``params`` array of :func:`match_events` (``pair_window`` 0: no overlap resolution;
    ``max_spikes``: most spikes an overlap resolves into, at most :data:`MAX_SPIKES`)."""
    params = np.zeros(N_PARAMS, dtype=np.float64)
    params[P_PRE] = pre
    params[P_MAX_SHIFT] = max_shift
    params[P_AMP_MIN] = amp_min
    params[P_AMP_MAX] = amp_max
    params[P_MASK] = mask
    params[P_ROW_OFFSET] = row_offset
    params[P_SUBTRACT] = 1.0 if subtract else 0.0
    params[P_PAIR_WINDOW] = pair_window
    params[P_MAX_SPIKES] = max(1, min(int(max_spikes), MAX_SPIKES))
    params[P_REFIT_ROUNDS] = max(0, int(refit_rounds))
    params[P_OVERLAP_ROUNDS] = max(0, int(overlap_rounds))
    params[P_PURSUIT_STEP] = max(1, int(pursuit_step))
    params[P_OVERLAP_RATE] = max(0.0, float(overlap_rate))
    params[P_OVERLAP_BURST] = max(0.0, float(overlap_burst))
    params[P_PARTIAL] = 1.0 if partial else 0.0
    params[P_AMP_PRIOR] = max(0.0, float(amp_prior))
    params[P_VALID_BIN_N] = max(0, int(valid_bin_n))
    params[P_VALID_BIN0] = int(valid_bin0)
    params[P_ACCEPT_AMP] = max(0.0, float(accept_amp))
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


PAD = 16
"""Template rows are zero-padded to a multiple of this many samples (16 float32 = one AVX-512
register) so that every row product is one vectorised loop without a remainder."""
MAX_SPIKES = 8
"""Most spikes one overlap resolves into (``params[P_MAX_SPIKES]`` is capped to it)."""
_BUDGET = 4  # work[4] = overlap attempts saved up, work[5] = stream index they were counted at
_SPIKES = 6  # work[6 : 6 + 5 * MAX_SPIKES]: the spikes of the overlap being resolved
_HEADER = _SPIKES + 5 * MAX_SPIKES  # work[:4] = slot capacity, candidate capacity, reach
# (samples), padded width; then the overlap budget; then the overlap's spike list
_FAST = {"reassoc", "contract"}  # lets LLVM vectorise the row products (the same compiled
# code serves the offline and the online path, and its order does not depend on the data)


def padded_width(width: int) -> int:
    """``width`` rounded up to a multiple of :data:`PAD`."""
    return -(-int(width) // PAD) * PAD


@numba.njit(cache=True, error_model="numpy")
def template_rows(templates, out):
    """``out[u, k, :W] = templates[u, k]``, zero beyond: every template row zero-padded to
    ``Wp = padded_width(W)`` samples (float32 (U, K, Wp)); call once when the templates change."""
    width = templates.shape[2]
    for u in range(templates.shape[0]):
        for k in range(templates.shape[1]):
            for w in range(out.shape[2]):
                out[u, k, w] = templates[u, k, w] if w < width else np.float32(0.0)


def workspace_size(templates_shape, cand_ptr, n_channels, params) -> tuple[int, int]:
    """Lengths of the ``work`` (float64) and ``iwork`` (int32) scratch of :func:`match_events`
    for templates of shape (U, K, W), these candidate lists and ``params``."""
    _, n_k, width = (int(v) for v in templates_shape)
    reach = max(int(params[P_MAX_SHIFT]), int(params[P_PAIR_WINDOW]), 0)
    longest = int(np.max(np.diff(cand_ptr))) if len(cand_ptr) > 1 else 0
    n_cand = max(1, n_k * longest)
    n_slot = max(1, min(int(n_channels), n_cand * n_k))
    end = _layout(n_slot, n_cand, 2 * reach + 1, padded_width(width))[2]
    return int(end), int(2 * n_channels + n_cand)


def match_tables(templates, cand_ptr, n_channels, params):
    """Everything :func:`match_events` needs besides the data, the events and the candidate
    lists: ``(tpl_norm2 (U,) float32, tpl_rows (U, K, Wp) float32, work float64, iwork int32)``
    (:func:`template_rows`; the scratch sized by :func:`workspace_size`, its header written,
    the rest zero)."""
    templates = np.ascontiguousarray(templates, np.float32)
    norm2 = np.zeros(templates.shape[0], np.float32)
    template_norms(templates, norm2)
    wp = padded_width(templates.shape[2])
    rows = np.zeros((*templates.shape[:2], wp), np.float32)
    template_rows(templates, rows)
    nw, ni = workspace_size(templates.shape, cand_ptr, n_channels, params)
    work = np.zeros(nw, np.float64)
    longest = int(np.max(np.diff(cand_ptr))) if len(cand_ptr) > 1 else 0
    n_cand = max(1, templates.shape[1] * longest)
    work[0] = max(1, min(int(n_channels), n_cand * templates.shape[1]))
    work[1] = n_cand
    work[2] = max(int(params[P_MAX_SHIFT]), int(params[P_PAIR_WINDOW]), 0)
    work[3] = wp
    reset_overlap_budget(work, params)
    return norm2, rows, work, np.zeros(ni, np.int32)


def reset_overlap_budget(work, params) -> None:
    """A full overlap budget (``params[P_OVERLAP_BURST]`` attempts), counted from the next
    event: the state before the first sample of a stream."""
    work[_BUDGET] = params[P_OVERLAP_BURST]
    work[_BUDGET + 1] = np.nan


@numba.njit(cache=True, error_model="numpy")
def _take_overlap_attempt(work, params, t):
    """Whether a rejected event at stream index ``t`` may be resolved as an overlap: always
    without a budget (``params[P_OVERLAP_RATE]`` 0); else when an attempt is saved up (one is
    earned every ``1 / rate`` samples, at most ``P_OVERLAP_BURST`` kept), which it spends. The
    count depends on the events' times only, never on how a stream is cut into blocks."""
    rate = params[P_OVERLAP_RATE]
    if rate <= 0.0:
        return True
    tokens = work[_BUDGET]
    last = work[_BUDGET + 1]
    if not np.isnan(last) and t > last:
        tokens = min(params[P_OVERLAP_BURST], tokens + (t - last) * rate)
    if np.isnan(last) or t > last:
        work[_BUDGET + 1] = t
    if tokens < 1.0:
        work[_BUDGET] = tokens
        return False
    work[_BUDGET] = tokens - 1.0
    return True


@numba.njit(cache=True, error_model="numpy")
def _layout(n_slot, n_cand, n_sh, wp):
    """Offsets in ``work`` (float64 units) of the gathered window rows (float32, ``n_sh + wp``
    per slot) and of the candidates' products per shift (``n_sh`` each), and the end."""
    xs = n_sh + wp
    o_x = _HEADER
    o_d = o_x + (n_slot * xs + 1) // 2
    return o_x, o_d, o_d + n_cand * n_sh


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _products(fx, xs, iwork, n_ch, cands, n_cand, tpl_chan, tpl_rows, j_lo, j_hi, n_sh, out,
              vch):
    """``out[q * n_sh + j] = sum_k <fx[slot_k * xs + j :][:Wp], tpl_rows[u, k]>`` for every
    listed candidate ``u = cands[q]`` and shift ``j_lo <= j <= j_hi``: the templates' products
    with the gathered window (float32, vectorised over the padded rows, five shifts a pass;
    ``slot_k = iwork[ch] - 1`` for the row's channel ``ch = tpl_chan[u, k]``, rows with ``ch``
    outside ``0..n_ch-1`` or masked (``vch[ch] == 0``) skipped). The offline and the online
    path run this one compiled loop (same argument types: scratch views and the tables of
    :func:`match_tables`)."""
    wp = tpl_rows.shape[2]
    for q in range(n_cand):
        u = cands[q]
        o_q = q * n_sh
        for j in range(j_lo, j_hi + 1):
            out[o_q + j] = 0.0
        for k in range(tpl_chan.shape[1]):
            ch = tpl_chan[u, k]
            if ch < 0 or ch >= n_ch or not _row_on(vch, ch):
                continue
            t = tpl_rows[u, k]
            o = (iwork[ch] - 1) * xs
            j = j_lo
            while j + 4 <= j_hi:  # five shifts per pass share the template's loads
                x = fx[o + j:o + j + wp + 4]
                a0 = np.float32(0.0)
                a1 = np.float32(0.0)
                a2 = np.float32(0.0)
                a3 = np.float32(0.0)
                a4 = np.float32(0.0)
                for w in range(wp):
                    tw = t[w]
                    a0 += x[w] * tw
                    a1 += x[w + 1] * tw
                    a2 += x[w + 2] * tw
                    a3 += x[w + 3] * tw
                    a4 += x[w + 4] * tw
                out[o_q + j] += a0
                out[o_q + j + 1] += a1
                out[o_q + j + 2] += a2
                out[o_q + j + 3] += a3
                out[o_q + j + 4] += a4
                j += 5
            while j <= j_hi:
                x = fx[o + j:o + j + wp]
                acc = np.float32(0.0)
                for w in range(wp):
                    acc += x[w] * t[w]
                out[o_q + j] += acc
                j += 1


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _products_strided(fx, xs, iwork, n_ch, cands, n_cand, tpl_chan, tpl_rows, j_lo, j_hi, n_sh,
                      out, step, vch):
    """:func:`_products` for shifts ``step`` samples apart: ``out[q * n_sh + j]`` is the
    product at window offset ``j * step``. A loop of its own so that the step-1 loop (every
    offline and online single-spike search) keeps its five-shift pass with constant offsets;
    step 2 (the online overlap search) has a four-shift pass of its own (constant offsets
    again: a runtime step there made it 2x slower), other steps one shift a pass."""
    wp = tpl_rows.shape[2]
    for q in range(n_cand):
        u = cands[q]
        o_q = q * n_sh
        for j in range(j_lo, j_hi + 1):
            out[o_q + j] = 0.0
        for k in range(tpl_chan.shape[1]):
            ch = tpl_chan[u, k]
            if ch < 0 or ch >= n_ch or not _row_on(vch, ch):
                continue
            t = tpl_rows[u, k]
            o = (iwork[ch] - 1) * xs
            j = j_lo
            while step == 2 and j + 3 <= j_hi:  # four shifts a pass share the template's loads
                x = fx[o + 2 * j:o + 2 * j + wp + 6]
                a0 = np.float32(0.0)
                a1 = np.float32(0.0)
                a2 = np.float32(0.0)
                a3 = np.float32(0.0)
                for w in range(wp):
                    tw = t[w]
                    a0 += x[w] * tw
                    a1 += x[w + 2] * tw
                    a2 += x[w + 4] * tw
                    a3 += x[w + 6] * tw
                out[o_q + j] += a0
                out[o_q + j + 1] += a1
                out[o_q + j + 2] += a2
                out[o_q + j + 3] += a3
                j += 4
            while j <= j_hi:
                x = fx[o + j * step:o + j * step + wp]
                acc = np.float32(0.0)
                for w in range(wp):
                    acc += x[w] * t[w]
                out[o_q + j] += acc
                j += 1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _row_on(vch, ch):
    """Whether a template row on channel ``ch`` takes part in the fit: not masked by ``vch``
    (channels at or past ``vch``'s length count as valid; an empty mask masks nothing)."""
    return ch >= vch.shape[0] or vch[ch] != 0


@numba.njit(cache=True, error_model="numpy")
def _fit_norm2(u, tpl_chan, tpl_rows, tpl_norm2, vch):
    """``(n2, ok)``: template ``u``'s energy over the rows the fit uses (``tpl_norm2[u]`` itself
    when no row is masked, so an all-valid mask changes nothing), and whether it keeps at least
    :data:`MIN_KEPT_ENERGY` of its energy (else it is no candidate: its unit has left the
    probe)."""
    n2 = np.float64(tpl_norm2[u])
    masked = False
    for k in range(tpl_chan.shape[1]):
        ch = tpl_chan[u, k]
        if ch >= 0 and not _row_on(vch, ch):
            masked = True
            break
    if not masked:
        return n2, True
    kept = 0.0
    total = 0.0
    for k in range(tpl_chan.shape[1]):
        ch = tpl_chan[u, k]
        acc = 0.0
        for w in range(tpl_rows.shape[2]):
            v = np.float64(tpl_rows[u, k, w])
            acc += v * v
        total += acc
        if ch < 0 or _row_on(vch, ch):
            kept += acc
    return kept, kept > 0.0 and kept >= MIN_KEPT_ENERGY * total


@numba.njit(cache=True, error_model="numpy")
def _no_mask():
    """An empty channel mask (every row valid), for the calls that give none."""
    return np.zeros(0, np.int32)


@numba.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _energy(x, n):
    """``sum(x[:n]^2)`` (float32 terms, float64 result)."""
    acc = np.float32(0.0)
    for i in range(n):
        acc += x[i] * x[i]
    return np.float64(acc)


@numba.njit(cache=True, error_model="numpy")
def _search(src, mask, first, s_lo, s_hi, templates, tpl_rows, tpl_chan, tpl_norm2, n_cand,
            amp_min, amp_max, work, iwork, vch, step=1, prior=0.0):
    """The candidate (listed in ``iwork[2C : 2C + n_cand]``) and shift ``s`` in ``[s_lo, s_hi]``
    (window row 0 at ``first + s``) that explain most of the window: returns ``(gain, q, shift,
    amplitude, error)`` with ``q`` the winner's index in the list, -1 when no fit has a positive
    gain (a plain array's shifts whose window does not fit are skipped). Ties go to the first
    listed candidate, then the first shift.

    The window rows of every channel the candidates use are gathered once (float32, contiguous:
    a slot per channel, ``iwork[ch] = slot + 1`` and ``iwork[C + slot] = ch`` while the search
    runs, so stale values in ``iwork[:C]`` are never taken for slots); a fit is then one
    vectorised float32 product per row and shift (:func:`_products`, rows zero-padded to
    :data:`PAD`), and the winner's error needs its window energy alone (:func:`_energy`).

    ``vch`` (C,) int32: rows on channels with ``vch[ch] == 0`` (their drift correction is
    extrapolated) are left out of the fit, the norm and the error; a candidate keeping less
    than :data:`MIN_KEPT_ENERGY` of its energy is skipped (:func:`_fit_norm2`). Empty: every
    row is used.
    """
    n_ch = src.shape[1]
    n_src = src.shape[0]
    width = templates.shape[2]
    n_k = templates.shape[1]
    wp = tpl_rows.shape[2]
    none = (0.0, -1, 0, 0.0, np.inf)
    if s_hi < s_lo or n_cand <= 0 or step < 1:
        return none
    n_sh = (s_hi - s_lo) // step + 1  # shifts evaluated: s_lo + j * step
    span = (n_sh - 1) * step + 1  # window positions they cover
    slot_cap = np.int64(work[0])
    o_x, o_d, _ = _layout(slot_cap, np.int64(work[1]), span, wp)
    cands = iwork[2 * n_ch:]
    n_slot = 0
    overflow = False
    for q in range(n_cand):
        u = cands[q]
        for k in range(n_k):
            ch = tpl_chan[u, k]
            if ch < 0 or ch >= n_ch or not _row_on(vch, ch):
                continue
            v = iwork[ch]  # a slot of this search only if the slot names this channel back
            if v >= 1 and v <= n_slot and iwork[n_ch + v - 1] == ch:
                continue
            if n_slot >= slot_cap:
                overflow = True
                break
            iwork[ch] = n_slot + 1
            iwork[n_ch + n_slot] = ch
            n_slot += 1
    row0 = first + s_lo
    j_lo = 0
    j_hi = n_sh - 1
    if mask == -1:
        j_lo = max(0, (-row0 + step - 1) // step)
        j_hi = min(n_sh - 1, (n_src - width - row0) // step)
    if overflow or j_lo > j_hi:
        for i in range(n_slot):
            iwork[iwork[n_ch + i]] = 0
        return none
    xs = span + wp
    n_real = span + width - 1  # samples any shift reads; the rest meets zero padding
    fx = work[o_x:o_x + (n_slot * xs + 1) // 2].view(np.float32)
    for i in range(n_slot):
        ch = iwork[n_ch + i]
        o = i * xs
        if mask == -1:
            for p in range(n_real):
                r = row0 + p
                fx[o + p] = src[r, ch] if r >= 0 and r < n_src else np.float32(0.0)
        else:
            for p in range(n_real):
                fx[o + p] = src[(row0 + p) & mask, ch]
        for p in range(n_real, xs):
            fx[o + p] = 0.0
    best_gain = 0.0
    best_q = -1
    best_j = 0
    best_a = 0.0
    if step == 1:
        _products(fx, xs, iwork, n_ch, cands, n_cand, tpl_chan, tpl_rows, j_lo, j_hi, n_sh,
                  work[o_d:], vch)
    else:
        _products_strided(fx, xs, iwork, n_ch, cands, n_cand, tpl_chan, tpl_rows, j_lo, j_hi,
                          n_sh, work[o_d:], step, vch)
    best_n2 = 0.0
    for q in range(n_cand):
        u = cands[q]
        n2, usable = _fit_norm2(u, tpl_chan, tpl_rows, tpl_norm2, vch)
        if n2 <= 0.0 or not usable:
            continue
        for j in range(j_lo, j_hi + 1):
            dot = work[o_d + q * n_sh + j]
            if dot <= 0.0:
                continue
            w = prior * n2
            a = (dot + w) / (n2 + w)
            if a < amp_min:
                a = amp_min
            if a > amp_max:
                a = amp_max
            gain = 2.0 * a * dot - a * a * n2 - w * (a - 1.0) * (a - 1.0)
            if gain > best_gain:
                best_gain = gain
                best_q = q
                best_j = j
                best_a = a
                best_n2 = n2
    best_err = np.inf
    if best_q >= 0:
        u = cands[best_q]
        xx = 0.0
        n_rows = 0
        for k in range(n_k):
            ch = tpl_chan[u, k]
            if ch >= 0 and ch < n_ch and _row_on(vch, ch):
                x = fx[(iwork[ch] - 1) * xs + best_j * step:]
                xx += _energy(x, width)
                n_rows += 1
        dot = work[o_d + best_q * n_sh + best_j]
        fit = 2.0 * best_a * dot - best_a * best_a * best_n2
        best_err = max(xx - fit, 0.0) / (n_rows * width)
    for i in range(n_slot):
        iwork[iwork[n_ch + i]] = 0
    return best_gain, best_q, s_lo + best_j * step, best_a, best_err


@numba.njit(cache=True, error_model="numpy")
def _workspace_ok(n_ch, templates, tpl_rows, params, work, iwork):
    """Whether ``tpl_rows`` and the scratch fit these templates, channels and ``params``."""
    if (params.shape[0] < N_PARAMS or work.shape[0] < _HEADER
            or iwork.shape[0] < 2 * n_ch + 1):
        return False
    n_slot = np.int64(work[0])
    n_cand = np.int64(work[1])
    reach = np.int64(work[2])
    wp = np.int64(work[3])
    need = max(np.int64(params[P_MAX_SHIFT]), np.int64(params[P_PAIR_WINDOW]), 0)
    width = templates.shape[2]
    if (n_slot < 1 or n_cand < 1 or reach < need or wp < width or wp % PAD != 0
            or tpl_rows.shape[0] < templates.shape[0] or tpl_rows.shape[1] < templates.shape[1]
            or tpl_rows.shape[2] != wp or iwork.shape[0] < 2 * n_ch + n_cand):
        return False
    return _layout(n_slot, n_cand, 2 * reach + 1, wp)[2] <= work.shape[0]


@numba.njit(cache=True, error_model="numpy")
def _fill_candidates(cand_ptr, cand_idx, c, n_templates, iwork, n_ch, cap):
    """Copy channel ``c``'s valid candidates to ``iwork[2C:]``; their count, -1 past ``cap``."""
    n = 0
    for q in range(cand_ptr[c], cand_ptr[c + 1]):
        u = cand_idx[q]
        if u < 0 or u >= n_templates:
            continue
        if n >= cap:
            return -1
        iwork[2 * n_ch + n] = u
        n += 1
    return n


@numba.njit(cache=True, error_model="numpy")
def match_one(src, t, c, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr, cand_idx,
              params, work, iwork, vch=None):
    """Best template for one event at stream index ``t`` peaking on channel ``c``.

    Returns ``(unit, shift, amplitude, error)``; ``unit = -1`` when no candidate fits (no
    template for ``c``, window outside a plain array, or no positive correlation). ``vch``
    (C,) int32: the channel mask of :func:`_search` (None: every row is used).
    """
    if vch is None:
        return _match_one(src, t, c, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
                          cand_idx, params, work, iwork, _no_mask())
    return _match_one(src, t, c, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr, cand_idx,
                      params, work, iwork, vch)


@numba.njit(cache=True, error_model="numpy")
def _match_one(src, t, c, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr, cand_idx,
               params, work, iwork, vch):
    pre = np.int64(params[P_PRE])
    max_shift = np.int64(params[P_MAX_SHIFT])
    mask = np.int64(params[P_MASK])
    width = templates.shape[2]
    n_ch = src.shape[1]
    if c < 0 or c + 1 >= cand_ptr.shape[0]:
        return NO_UNIT, 0, 0.0, np.inf
    first = t - np.int64(params[P_ROW_OFFSET]) - pre
    if mask == -1 and (first - max_shift < 0 or first + width + max_shift > src.shape[0]):
        return NO_UNIT, 0, 0.0, np.inf
    cap = min(np.int64(work[1]), iwork.shape[0] - 2 * n_ch)
    n_cand = _fill_candidates(cand_ptr, cand_idx, c, templates.shape[0], iwork, n_ch, cap)
    if n_cand <= 0:
        return NO_UNIT, 0, 0.0, np.inf
    gain, q, s, a, err = _search(src, mask, first, -max_shift, max_shift, templates, tpl_rows,
                                 tpl_chan, tpl_norm2, n_cand, params[P_AMP_MIN],
                                 params[P_AMP_MAX], work, iwork, vch, 1, params[P_AMP_PRIOR])
    if q < 0:
        return NO_UNIT, 0, 0.0, np.inf
    return iwork[2 * n_ch + q], s, a, err


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
def _union_candidates(u1, tpl_chan, cand_ptr, cand_idx, n_templates, iwork, n_ch, cap):
    """The candidates of every channel of template ``u1`` (first-seen order) into
    ``iwork[2C:]``; their count, -1 past ``cap``."""
    n_lists = cand_ptr.shape[0] - 1
    n_cand = 0
    for k in range(tpl_chan.shape[1]):
        ch = tpl_chan[u1, k]
        if ch < 0 or ch >= n_ch or ch >= n_lists:
            continue
        for q in range(cand_ptr[ch], cand_ptr[ch + 1]):
            v = cand_idx[q]
            if v < 0 or v >= n_templates:
                continue
            seen = False
            for i in range(n_cand):
                if iwork[2 * n_ch + i] == v:
                    seen = True
                    break
            if seen:
                continue
            if n_cand >= cap:
                return -1
            iwork[2 * n_ch + n_cand] = v
            n_cand += 1
    return n_cand


@numba.njit(cache=True, error_model="numpy")
def _fit_one(src, mask, t, u, s_lo, s_hi, templates, tpl_rows, tpl_chan, tpl_norm2, amp_min,
             amp_max, row_offset, pre, work, iwork, vch, prior=0.0):
    """Template ``u`` alone at ``t + s``, ``s`` in ``[s_lo, s_hi]``: (gain, shift, a, error)."""
    n_ch = src.shape[1]
    iwork[2 * n_ch] = u
    g, q, s, a, e = _search(src, mask, t - row_offset - pre, s_lo, s_hi, templates, tpl_rows,
                            tpl_chan, tpl_norm2, 1, amp_min, amp_max, work, iwork, vch, 1,
                            prior)
    if q < 0:
        return 0.0, 0, 0.0, np.inf
    return g, s, a, e


@numba.njit(cache=True, error_model="numpy")
def _n_kept(work, n):
    k = 0
    for i in range(n):
        if work[_SPIKES + 5 * i + 4] > 0:
            k += 1
    return k


@numba.njit(cache=True, error_model="numpy")
def _pursue(src, n, n_max, t1, u1, window, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
            cand_idx, params, work, iwork, cap, vch):
    """Greedy picks (subtracted and listed) until ``n_max`` spikes are kept, the list is full,
    or the best pick explains less than a quarter of its template's energy (noise, or a
    clipped-up sliver of a spike). Returns the slots used."""
    pre = np.int64(params[P_PRE])
    mask = np.int64(params[P_MASK])
    row_offset = np.int64(params[P_ROW_OFFSET])
    step = max(np.int64(params[P_PURSUIT_STEP]), 1)
    n_ch = src.shape[1]
    while n < MAX_SPIKES and _n_kept(work, n) < n_max:
        n_cand = _union_candidates(u1, tpl_chan, cand_ptr, cand_idx, templates.shape[0], iwork,
                                   n_ch, cap)
        if n_cand <= 0:
            break
        gain, q, s, a, _ = _search(src, mask, t1 - row_offset - pre, -window, window, templates,
                                   tpl_rows, tpl_chan, tpl_norm2, n_cand, params[P_AMP_MIN],
                                   params[P_AMP_MAX], work, iwork, vch, step,
                                   params[P_AMP_PRIOR])
        if q < 0 or gain < 0.25 * _fit_norm2(iwork[2 * n_ch + q], tpl_chan, tpl_rows,
                                             tpl_norm2, vch)[0]:
            break
        u = iwork[2 * n_ch + q]
        subtract_fit(src, t1 + s, u, a, templates, tpl_chan, params)
        _set_spike(work, n, u, t1 + s, a, np.inf, 1.0)
        n += 1
    return n


@numba.njit(cache=True, error_model="numpy")
def _polish(src, n, max_shift, templates, tpl_chan, tpl_norm2, tpl_rows, params, work, iwork,
            vch):
    """One cheap round: each kept spike put back and its own template refitted (±S shifts,
    scale) on what the others leave."""
    pre = np.int64(params[P_PRE])
    mask = np.int64(params[P_MASK])
    row_offset = np.int64(params[P_ROW_OFFSET])
    for i in range(n):
        if work[_SPIKES + 5 * i + 4] <= 0:
            continue
        u, ti, a = _spike(work, i)
        subtract_fit(src, ti, u, -a, templates, tpl_chan, params)
        g, r, b, _ = _fit_one(src, mask, ti, u, -max_shift, max_shift, templates, tpl_rows,
                              tpl_chan, tpl_norm2, params[P_AMP_MIN], params[P_AMP_MAX],
                              row_offset, pre, work, iwork, vch, params[P_AMP_PRIOR])
        if g > 0.0:
            ti, a = ti + r, b
        subtract_fit(src, ti, u, a, templates, tpl_chan, params)
        _set_spike(work, i, u, ti, a, np.inf, 1.0)


@numba.njit(cache=True, error_model="numpy")
def _worst_spike(src, n, thresholds, templates, tpl_chan, tpl_norm2, tpl_rows, params, work,
                 iwork, vch):
    """Each kept spike's error on the window with every other kept spike removed (stored in the
    list); the slot of the one furthest above its threshold, -1 when all pass."""
    pre = np.int64(params[P_PRE])
    mask = np.int64(params[P_MASK])
    row_offset = np.int64(params[P_ROW_OFFSET])
    worst = -1
    worst_ratio = 1.0
    for i in range(n):
        if work[_SPIKES + 5 * i + 4] <= 0:
            continue
        u, ti, a = _spike(work, i)
        subtract_fit(src, ti, u, -a, templates, tpl_chan, params)
        g, _, _, e = _fit_one(src, mask, ti, u, 0, 0, templates, tpl_rows, tpl_chan, tpl_norm2,
                              params[P_AMP_MIN], params[P_AMP_MAX], row_offset, pre, work, iwork,
                              vch, params[P_AMP_PRIOR])
        subtract_fit(src, ti, u, a, templates, tpl_chan, params)
        work[_SPIKES + 5 * i + 3] = e
        ratio = e / thresholds[u] if thresholds[u] > 0 else np.inf
        if g <= 0.0:
            ratio = np.inf
        if ratio > worst_ratio:
            worst = i
            worst_ratio = ratio
    return worst


@numba.njit(cache=True, error_model="numpy")
def _drop_worst(src, n, thresholds, templates, tpl_chan, tpl_norm2, tpl_rows, params, work,
                iwork, vch):
    """Put back (add to ``src``) the kept spike furthest above its threshold, if any; returns
    whether one was dropped (False: every kept spike is verified)."""
    worst = _worst_spike(src, n, thresholds, templates, tpl_chan, tpl_norm2, tpl_rows, params,
                         work, iwork, vch)
    if worst < 0:
        return False
    u, ti, a = _spike(work, worst)
    subtract_fit(src, ti, u, -a, templates, tpl_chan, params)
    work[_SPIKES + 5 * worst + 4] = 0.0
    return True


@numba.njit(cache=True, error_model="numpy")
def _refit_overlap(src, n, t1, u1, window, max_shift, templates, tpl_chan, tpl_norm2, tpl_rows,
                   cand_ptr, cand_idx, params, work, iwork, cap, vch):
    """Coordinate descent over the kept spikes of the list (three rounds): each in turn is put
    back and its template and time re-chosen within ±window of ``t1`` for what the others
    leave; then a unit fitted twice within ±S keeps its first fit."""
    pre = np.int64(params[P_PRE])
    mask = np.int64(params[P_MASK])
    row_offset = np.int64(params[P_ROW_OFFSET])
    n_templates = templates.shape[0]
    n_ch = src.shape[1]
    for _ in range(np.int64(params[P_REFIT_ROUNDS])):
        for i in range(n):
            if work[_SPIKES + 5 * i + 4] <= 0:
                continue
            u, ti, a = _spike(work, i)
            subtract_fit(src, ti, u, -a, templates, tpl_chan, params)
            n_cand = _union_candidates(u1, tpl_chan, cand_ptr, cand_idx, n_templates, iwork,
                                       n_ch, cap)
            if n_cand > 0:
                g, q, r, b, _ = _search(src, mask, t1 - row_offset - pre, -window, window,
                                        templates, tpl_rows, tpl_chan, tpl_norm2, n_cand,
                                        params[P_AMP_MIN], params[P_AMP_MAX], work, iwork, vch,
                                        1, params[P_AMP_PRIOR])
                if q >= 0:
                    u, ti, a = iwork[2 * n_ch + q], t1 + r, b
            subtract_fit(src, ti, u, a, templates, tpl_chan, params)
            _set_spike(work, i, u, ti, a, np.inf, 1.0)
    for i in range(n):
        if work[_SPIKES + 5 * i + 4] <= 0:
            continue
        ui, ti, ai = _spike(work, i)
        for j in range(i + 1, n):
            uj, tj, aj = _spike(work, j)
            if work[_SPIKES + 5 * j + 4] > 0 and uj == ui and abs(tj - ti) <= max_shift:
                subtract_fit(src, tj, uj, -aj, templates, tpl_chan, params)
                work[_SPIKES + 5 * j + 4] = 0.0


@numba.njit(cache=True, error_model="numpy")
def resolve_overlap(src, t, c, u1, s1, a1, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
                    cand_idx, thresholds, params, work, iwork, n_max, vch=None):
    """Explain a rejected event (best single fit ``u1`` at ``t + s1``, scale ``a1``) as up to
    ``n_max`` overlapping spikes (module docstring). Returns the number of accepted spikes;
    they are listed in ``work`` (:func:`overlap_spike`), each within its template's threshold
    with the others removed. With 0, ``src`` is left as it was (up to float32 rounding).
    ``vch``: the channel mask of :func:`_search` (None: every row is used)."""
    if vch is None:
        return _resolve_overlap(src, t, c, u1, s1, a1, templates, tpl_chan, tpl_norm2,
                                tpl_rows, cand_ptr, cand_idx, thresholds, params, work, iwork,
                                n_max, _no_mask())
    return _resolve_overlap(src, t, c, u1, s1, a1, templates, tpl_chan, tpl_norm2, tpl_rows,
                            cand_ptr, cand_idx, thresholds, params, work, iwork, n_max, vch)


@numba.njit(cache=True, error_model="numpy")
def _resolve_overlap(src, t, c, u1, s1, a1, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
                     cand_idx, thresholds, params, work, iwork, n_max, vch):
    max_shift = np.int64(params[P_MAX_SHIFT])
    window = np.int64(params[P_PAIR_WINDOW])
    n_templates = templates.shape[0]
    n_ch = src.shape[1]
    n_max = min(n_max, MAX_SPIKES)
    if (window <= 0 or n_max < 2 or u1 < 0 or u1 >= n_templates
            or thresholds.shape[0] < n_templates):
        return 0
    cap = min(np.int64(work[1]), iwork.shape[0] - 2 * n_ch)
    t1 = t + s1
    # greedy matching pursuit from the first fit; the list is verified, and refitted only when
    # the verification fails (most overlaps are two clean spikes and pass at once)
    _set_spike(work, 0, u1, t1, a1, np.inf, 1.0)
    subtract_fit(src, t1, u1, a1, templates, tpl_chan, params)
    n = 1  # slots used (a dropped spike keeps its slot, marked not kept)
    rounds = np.int64(params[P_OVERLAP_ROUNDS])
    if rounds <= 0:
        rounds = 2 * n_max
    partial = params[P_PARTIAL] != 0.0
    for r in range(rounds):
        n = _pursue(src, n, n_max, t1, u1, window, templates, tpl_chan, tpl_norm2, tpl_rows,
                    cand_ptr, cand_idx, params, work, iwork, cap, vch)
        _polish(src, n, max_shift, templates, tpl_chan, tpl_norm2, tpl_rows, params, work,
                iwork, vch)
        if _worst_spike(src, n, thresholds, templates, tpl_chan, tpl_norm2, tpl_rows, params,
                        work, iwork, vch) < 0:
            break
        if partial and r == rounds - 1:
            break  # the last round's full explanation goes to the partial check below
        _refit_overlap(src, n, t1, u1, window, max_shift, templates, tpl_chan, tpl_norm2,
                       tpl_rows, cand_ptr, cand_idx, params, work, iwork, cap, vch)
        # the worst one is put back; the others are refitted and verified again
        if not _drop_worst(src, n, thresholds, templates, tpl_chan, tpl_norm2, tpl_rows, params,
                           work, iwork, vch) or _n_kept(work, n) == 0:
            break
    # whatever the rounds left: only verified spikes are kept
    if partial:
        # partial: a failing spike stays subtracted while the others are verified (what it
        # explains is not held against them), then it alone is put back for a later pass
        while _n_kept(work, n) > 0:
            worst = _worst_spike(src, n, thresholds, templates, tpl_chan, tpl_norm2, tpl_rows,
                                 params, work, iwork, vch)
            if worst < 0:
                break
            work[_SPIKES + 5 * worst + 4] = -1.0
        for i in range(n):
            if work[_SPIKES + 5 * i + 4] < 0:
                u, ti, a = _spike(work, i)
                subtract_fit(src, ti, u, -a, templates, tpl_chan, params)
                work[_SPIKES + 5 * i + 4] = 0.0
    while (not partial and _n_kept(work, n) > 0
           and _drop_worst(src, n, thresholds, templates, tpl_chan, tpl_norm2, tpl_rows, params,
                           work, iwork, vch)):
        pass
    # compact the kept spikes to the front of the list
    k = 0
    for i in range(n):
        if work[_SPIKES + 5 * i + 4] > 0:
            for f in range(5):
                work[_SPIKES + 5 * k + f] = work[_SPIKES + 5 * i + f]
            k += 1
    return k


@numba.njit(cache=True, error_model="numpy")
def _set_spike(work, i, u, t, a, err, kept):
    o = _SPIKES + 5 * i
    work[o] = u
    work[o + 1] = t
    work[o + 2] = a
    work[o + 3] = err
    work[o + 4] = kept


@numba.njit(cache=True, error_model="numpy")
def _spike(work, i):
    o = _SPIKES + 5 * i
    return np.int64(work[o]), np.int64(work[o + 1]), work[o + 2]


@numba.njit(cache=True, error_model="numpy")
def overlap_spike(work, i):
    """Spike ``i`` of the last :func:`resolve_overlap`: (unit, stream index, scale, error)."""
    o = _SPIKES + 5 * i
    return np.int64(work[o]), np.int64(work[o + 1]), work[o + 2], work[o + 3]


@numba.njit(cache=True, error_model="numpy")
def match_events(
    src,
    ev_t,
    ev_c,
    templates,
    tpl_chan,
    tpl_norm2,
    tpl_rows,
    cand_ptr,
    cand_idx,
    thresholds,
    params,
    work,
    iwork,
    out_unit,
    out_shift,
    out_amp,
    out_err,
    out_ok,
    out_unit2,
    out_shift2,
    out_amp2,
    out_err2,
    valid=None,
):
    """Match events in the given order (sort them by time for peeling); returns the number of
    accepted spikes (``out_ok.sum()``).

    src (R, C) float32; ev_t (E,) int64 stream index; ev_c (E,) int32 peak channel;
    templates (U, K, W) float32; tpl_chan (U, K) int32; tpl_norm2 (U,) float32
    (:func:`template_norms`); tpl_rows (U, K, Wp) float32 (:func:`template_rows`);
    cand_ptr (C+1,) int32 / cand_idx int32 candidate lists; thresholds (U,) float32 largest
    accepted error per template; params float64 (layout above); work float64 / iwork int32
    scratch (:func:`match_tables`; too short: nothing is matched and -1 is returned).
    Outputs per event (E,): out_unit int32 best template or -1, out_shift int32 samples (the
    spike is at ``ev_t + shift``), out_amp float32 scale of the fit, out_err float32 error,
    out_ok int32 spikes accepted for the event: 0, 1, or up to ``params[P_MAX_SPIKES]`` (an
    overlap). The outputs ``out_*2`` (E * X,) hold each event's X extra spikes: spike ``j`` (1..)
    of event ``e`` is at ``e * X + j - 1``, unit ``out_unit2`` (-1 unused) at ``ev_t +
    out_shift2``, scale ``out_amp2``, error ``out_err2``; X = their length // E, so (E,)
    outputs resolve pairs at most. With a ring (``mask != -1``) the caller must keep
    ``pre + max_shift + pair_window`` samples before and after each event in it.

    valid (B, C) int32, optional: which channels' drift corrections are interpolated (1) or
    extrapolated (0) per interpolation bin (:func:`oe_plugin.kernels.drift.valid_bins`); an
    event at stream index ``t`` uses row ``t // params[P_VALID_BIN_N] - params[P_VALID_BIN0]``
    (clipped to ``0..B-1``; row 0 when ``P_VALID_BIN_N`` is 0), and its fits leave out
    template rows on masked channels (:func:`_search`). None, no rows or no columns: every row
    is used (bit for bit the unmasked matcher).
    """
    if valid is None:
        return _match_events(src, ev_t, ev_c, templates, tpl_chan, tpl_norm2, tpl_rows,
                             cand_ptr, cand_idx, thresholds, params, work, iwork, out_unit,
                             out_shift, out_amp, out_err, out_ok, out_unit2, out_shift2,
                             out_amp2, out_err2, np.zeros((1, 0), np.int32))
    return _match_events(src, ev_t, ev_c, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
                         cand_idx, thresholds, params, work, iwork, out_unit, out_shift,
                         out_amp, out_err, out_ok, out_unit2, out_shift2, out_amp2, out_err2,
                         valid)


@numba.njit(cache=True, error_model="numpy")
def _event_mask(valid, t, params):
    """The channel mask row of an event at stream index ``t`` (empty: no mask)."""
    n_b = valid.shape[0]
    n_c = valid.shape[1] if n_b > 0 else 0
    b = 0
    bin_n = np.int64(params[P_VALID_BIN_N]) if params.shape[0] > P_VALID_BIN0 else 0
    if bin_n > 0 and n_b > 0:
        b = min(max(t // bin_n - np.int64(params[P_VALID_BIN0]), 0), n_b - 1)
    return valid[b, :n_c]


@numba.njit(cache=True, error_model="numpy")
def _match_events(src, ev_t, ev_c, templates, tpl_chan, tpl_norm2, tpl_rows, cand_ptr,
                  cand_idx, thresholds, params, work, iwork, out_unit, out_shift, out_amp,
                  out_err, out_ok, out_unit2, out_shift2, out_amp2, out_err2, valid):
    n_events = min(ev_t.shape[0], ev_c.shape[0], out_unit.shape[0], out_shift.shape[0],
                   out_amp.shape[0], out_err.shape[0], out_ok.shape[0])
    n_extra = min(out_unit2.shape[0], out_shift2.shape[0], out_amp2.shape[0],
                  out_err2.shape[0])
    # extra spikes per event the outputs hold (the overlap's spikes after the first)
    per_event = n_extra // n_events if n_events > 0 else 0
    n_max = min(np.int64(params[P_MAX_SPIKES]), per_event + 1, MAX_SPIKES)
    subtract = params[P_SUBTRACT] != 0.0
    overlaps = subtract and params[P_PAIR_WINDOW] > 0 and n_max >= 2
    accept_amp = params[P_ACCEPT_AMP] if params.shape[0] > P_ACCEPT_AMP else 0.0
    n_ok = 0
    if not _workspace_ok(src.shape[1], templates, tpl_rows, params, work, iwork):
        for e in range(n_events):
            out_unit[e] = NO_UNIT
            out_ok[e] = 0
        for i in range(n_extra):
            out_unit2[i] = NO_UNIT
        return -1
    for e in range(n_events):
        vch = _event_mask(valid, ev_t[e], params)
        u, s, a, err = _match_one(src, ev_t[e], ev_c[e], templates, tpl_chan, tpl_norm2,
                                  tpl_rows, cand_ptr, cand_idx, params, work, iwork, vch)
        for j in range(per_event):
            i = e * per_event + j
            out_unit2[i] = NO_UNIT
            out_shift2[i] = 0
            out_amp2[i] = 0.0
            out_err2[i] = np.inf
        ok = u >= 0 and u < thresholds.shape[0] and err <= thresholds[u] and a > accept_amp
        n_spikes = 1 if ok else 0
        if ok and subtract:
            subtract_fit(src, ev_t[e] + s, u, a, templates, tpl_chan, params)
        elif not ok and overlaps and u >= 0 and _take_overlap_attempt(work, params, ev_t[e]):
            found = _resolve_overlap(src, ev_t[e], ev_c[e], u, s, a, templates, tpl_chan,
                                     tpl_norm2, tpl_rows, cand_ptr, cand_idx, thresholds,
                                     params, work, iwork, n_max, vch)
            if found > 0:
                u, t_k, a, err = overlap_spike(work, 0)
                s = t_k - ev_t[e]
                for j in range(1, found):
                    v, t_k, b, e_k = overlap_spike(work, j)
                    i = e * per_event + j - 1
                    out_unit2[i] = v
                    out_shift2[i] = t_k - ev_t[e]
                    out_amp2[i] = b
                    out_err2[i] = e_k
                n_spikes = found
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
        arg_f32_3d(addresses, shapes, 6),
        arg_i32_1d(addresses, shapes, 7),
        arg_i32_1d(addresses, shapes, 8),
        arg_f32_1d(addresses, shapes, 9),
        arg_f64_1d(addresses, shapes, 10),
        arg_f64_1d(addresses, shapes, 11),
        arg_i32_1d(addresses, shapes, 12),
        arg_i32_1d(addresses, shapes, 13),
        arg_i32_1d(addresses, shapes, 14),
        arg_f32_1d(addresses, shapes, 15),
        arg_f32_1d(addresses, shapes, 16),
        arg_i32_1d(addresses, shapes, 17),
        arg_i32_1d(addresses, shapes, 18),
        arg_i32_1d(addresses, shapes, 19),
        arg_f32_1d(addresses, shapes, 20),
        arg_f32_1d(addresses, shapes, 21),
        arg_i32_2d(addresses, shapes, 22),
    )


match_entry = cfunc_entry(_match_entry)
"""C entry over :func:`match_events`, arguments in its order through an ArgTable. Online, set
argument 0 to the ring, 1/2 to the block's events (``ArgTable.set`` with the event count as the
length), and read the outputs' first ``n`` entries. Argument 22 is the channel mask ``valid``
(B, C) int32 (a (1, 0) array: no mask)."""
