"""Spike detection: band-pass -> noise -> threshold peaks -> spatio-temporal lockout, streaming.

One kernel, :func:`detect_block`, consumes a block of raw samples (n_channels, n_samples)
float32 µV and emits the spikes it can decide so far. All state lives in preallocated arrays
(see :mod:`oe_plugin.kernels.detector`), and every decision depends only on absolute sample
numbers, so any partition of the input into blocks gives exactly the same events in the same
order (*block invariance*).

The stages, per sample (sample-major, channels in the inner loop so they vectorise):

1. clean (NaN/inf -> 0), causal SOS band-pass (:mod:`bandpass`), store in a ring (R, C);
2. candidate peaks: sample ``p`` of channel ``c`` is a candidate when it is a local extremum
   beyond the channel's threshold in an allowed polarity (negative: ``y[p] <= -thr``,
   ``y[p] < y[p-1]``, ``y[p] <= y[p+1]``; positive mirrored) — it is known once ``p+1`` arrives;
3. noise update (:mod:`noise`), which may change the thresholds of later samples.

Every ``SUBSTEP`` samples, candidates old enough to be final are decided:

- **lockout** (locally exclusive): a candidate survives unless a candidate on a neighbouring
  channel (same group, within the lockout radius; the channel itself included) within
  ±``lockout`` samples is larger in |amplitude| (ties: the earlier, then the lower channel wins).
  So one spike seen on many channels and phases yields one event, at the peak of its largest
  channel, and nothing else is detected near it within the lockout window;
- **multiphasic** (``METHOD_MULTIPHASIC``): the survivor must also have an opposite-sign
  excursion within ±``phase_window`` samples whose size is at least ``phase2_fraction`` of its
  own amplitude (the second threshold set from the first phase; rejects monophasic artefacts);
- accepted events of the sub-step are sorted by (sample, channel) and appended to the output.

A candidate at ``t`` is decided once sample ``t + decision_delay`` has been processed
(``decision_delay = max(lockout + 2, phase_window + 1)``), i.e. events come out about half a
millisecond after their peak.
"""

from __future__ import annotations

import numba
import numpy as np

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
from oe_plugin.kernels.bandpass import load_rows, sos_rows, store_rows
from oe_plugin.kernels.noise import noise_push

SUBSTEP = 256
"""Samples between two decision passes (bounds the candidate buffer and the ring)."""

METHOD_BIPOLAR = 0
METHOD_MULTIPHASIC = 1

# params (float64 array) layout
P_METHOD = 0
P_POLARITY = 1  # -1 negative, +1 positive, 0 both
P_THRESHOLD_MAD = 2
P_THRESHOLD_FIXED = 3  # > 0: fixed threshold in the input's units, overrides the MAD rule
P_THRESHOLD_FLOOR = 4  # lowest threshold the MAD rule may give, input units
P_LOCKOUT = 5  # samples
P_PHASE_WINDOW = 6  # samples
P_PHASE2_FRACTION = 7
P_NOISE_DECIMATE = 8
P_NOISE_INIT_LEN = 9
P_NOISE_CHUNK_LEN = 10
P_WRITE_BACK = 11
P_DECISION_DELAY = 12
P_SAMPLE_MAJOR = 13  # set per call: data is (N, C) instead of (C, N)
N_PARAMS = 14

# counters (int64 array) layout
C_PROCESSED = 0  # samples processed since the start
C_HORIZON = 1  # candidates with t <= horizon are decided
C_NONFINITE = 2  # NaN/inf input samples replaced by 0
C_CAND_DROPPED = 3  # candidates lost to a full buffer (never expected)
C_EVENTS_DROPPED = 4  # events lost to a full output buffer
C_EVENTS_TOTAL = 5  # events emitted since the start
C_OUT_N = 6  # events written by the current call
N_COUNTERS = 7


@numba.njit(cache=True, inline="always", error_model="numpy")
def _threshold(noise, params):
    fixed = params[P_THRESHOLD_FIXED]
    if fixed > 0:
        return fixed
    if noise <= 0:
        return np.inf
    thr = params[P_THRESHOLD_MAD] * noise
    floor = params[P_THRESHOLD_FLOOR]
    return thr if thr > floor else floor


@numba.njit(cache=True, inline="always", error_model="numpy")
def _wins(a2, t2, c2, a, t, c):
    """Does candidate (a2 at t2 on c2) beat candidate (a at t on c)? a, a2 are |amplitudes|."""
    if a2 > a:
        return True
    if a2 < a:
        return False
    if t2 != t:
        return t2 < t
    return c2 < c


@numba.njit(cache=True, error_model="numpy")
def _is_multiphasic(ring, c, t, amp, params, oldest):
    mask = ring.shape[0] - 1
    window = np.int64(params[P_PHASE_WINDOW])
    need = params[P_PHASE2_FRACTION] * abs(amp)
    lo = t - window
    if lo < oldest:
        lo = oldest
    best = 0.0
    for s in range(lo, t + window + 1):
        v = ring[s & mask, c]
        if amp < 0:
            if v > best:
                best = v
        elif -v > best:
            best = -v
    return best >= need and best > 0.0


@numba.njit(cache=True, error_model="numpy")
def _sort_events(out_t, out_c, out_a, lo, hi):
    """Heap-sort out[lo:hi] in place by (sample, channel)."""
    n = hi - lo
    if n < 2:
        return
    for start in range((n - 2) // 2, -1, -1):
        _sift(out_t, out_c, out_a, lo, start, n)
    for end in range(n - 1, 0, -1):
        _swap(out_t, out_c, out_a, lo, lo + end)
        _sift(out_t, out_c, out_a, lo, 0, end)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _swap(out_t, out_c, out_a, i, j):
    t = out_t[i]
    out_t[i] = out_t[j]
    out_t[j] = t
    c = out_c[i]
    out_c[i] = out_c[j]
    out_c[j] = c
    a = out_a[i]
    out_a[i] = out_a[j]
    out_a[j] = a


@numba.njit(cache=True, inline="always", error_model="numpy")
def _less(out_t, out_c, i, j):
    return out_t[i] < out_t[j] or (out_t[i] == out_t[j] and out_c[i] < out_c[j])


@numba.njit(cache=True, error_model="numpy")
def _sift(out_t, out_c, out_a, lo, root, n):
    while True:
        child = 2 * root + 1
        if child >= n:
            return
        if child + 1 < n and _less(out_t, out_c, lo + child, lo + child + 1):
            child += 1
        if _less(out_t, out_c, lo + root, lo + child):
            _swap(out_t, out_c, out_a, lo + root, lo + child)
            root = child
        else:
            return


@numba.njit(cache=True, error_model="numpy")
def _decide(ring, nb_ptr, nb_idx, cand_t, cand_a, cand_n, out_t, out_c, out_a, params, counters):
    """Decide every candidate with prev_horizon < t <= processed - decision_delay."""
    n_channels = cand_n.shape[0]
    lockout = np.int64(params[P_LOCKOUT])
    multiphasic = params[P_METHOD] == METHOD_MULTIPHASIC
    processed = counters[C_PROCESSED]
    prev_horizon = counters[C_HORIZON]
    horizon = processed - np.int64(params[P_DECISION_DELAY])
    if horizon <= prev_horizon:
        return
    oldest = processed - ring.shape[0] + 1
    if oldest < 0:
        oldest = 0
    capacity = out_t.shape[0]
    first_out = counters[C_OUT_N]
    for c in range(n_channels):
        for k in range(cand_n[c]):
            t = cand_t[c, k]
            if t <= prev_horizon:
                continue
            if t > horizon:
                break
            amp = cand_a[c, k]
            size = abs(amp)
            accepted = True
            for q in range(nb_ptr[c], nb_ptr[c + 1]):
                c2 = nb_idx[q]
                for j in range(cand_n[c2]):
                    t2 = cand_t[c2, j]
                    if t2 < t - lockout:
                        continue
                    if t2 > t + lockout:
                        break
                    if c2 == c and j == k:
                        continue
                    if _wins(abs(cand_a[c2, j]), t2, c2, size, t, c):
                        accepted = False
                        break
                if not accepted:
                    break
            if accepted and multiphasic:
                accepted = _is_multiphasic(ring, c, t, amp, params, oldest)
            if accepted:
                n = counters[C_OUT_N]
                if n < capacity:
                    out_t[n] = t
                    out_c[n] = c
                    out_a[n] = amp
                    counters[C_OUT_N] = n + 1
                    counters[C_EVENTS_TOTAL] += 1
                else:
                    counters[C_EVENTS_DROPPED] += 1
    _sort_events(out_t, out_c, out_a, first_out, counters[C_OUT_N])
    counters[C_HORIZON] = horizon
    # forget candidates that can no longer compete with an undecided one (t <= horizon - lockout)
    keep_after = horizon - lockout
    for c in range(n_channels):
        n = cand_n[c]
        drop = 0
        while drop < n and cand_t[c, drop] <= keep_after:
            drop += 1
        if drop > 0:
            for k in range(n - drop):
                cand_t[c, k] = cand_t[c, k + drop]
                cand_a[c, k] = cand_a[c, k + drop]
            cand_n[c] = n - drop


@numba.njit(cache=True, error_model="numpy")
def detect_block(
    data,
    sos,
    zi,
    ring,
    tmp,
    noise_ring,
    noise_counts,
    noise_bin_uv,
    noise_hist,
    noise_sched,
    noise_uv,
    noise_scratch,
    thr_uv,
    nb_ptr,
    nb_idx,
    cand_t,
    cand_a,
    cand_n,
    out_t,
    out_c,
    out_a,
    params,
    counters,
):
    """Process one block; returns the number of events written to ``out_*[:n]``.

    data (C, N) float32 µV raw samples, or (N, C) when params[P_SAMPLE_MAJOR] != 0 (filtered in
    place when params[P_WRITE_BACK] != 0);
    sos (S, 6) float64, zi (S, 2, C) float64 filter state; ring (R, C) float32 filtered history,
    R a power of two (filtered in place there); tmp float64 scratch (>= C; FILTER_TILE x C
    rows filter faster, :func:`bandpass.sos_rows`);
    noise_* see :mod:`noise`; thr_uv (C,) float32
    current thresholds; nb_ptr (C+1,) int32 / nb_idx int32 neighbour lists (CSR, self included);
    cand_t (C, M) int64, cand_a (C, M) float32, cand_n (C,) int64 pending candidates per channel;
    out_t (E,) int64 sample index since start, out_c (E,) int32 channel, out_a (E,) float32
    signed peak amplitude in µV; params float64 and counters int64 (layouts above).
    """
    sample_major = params[P_SAMPLE_MAJOR] != 0
    n_channels = thr_uv.shape[0]
    n_samples = data.shape[0] if sample_major else data.shape[1]
    mask = ring.shape[0] - 1
    polarity = params[P_POLARITY]
    write_back = params[P_WRITE_BACK] != 0
    decimate = np.int64(params[P_NOISE_DECIMATE])
    init_len = np.int64(params[P_NOISE_INIT_LEN])
    chunk_len = np.int64(params[P_NOISE_CHUNK_LEN])
    cap = cand_t.shape[1]
    counters[C_OUT_N] = 0
    pos = 0
    filtering = sos.shape[0] > 0
    while pos < n_samples:
        stop = min(pos + SUBSTEP, n_samples)
        n0 = counters[C_PROCESSED]
        counters[C_NONFINITE] += load_rows(data, pos, stop, ring, n0, sample_major)
        if filtering:
            sos_rows(sos, zi, ring, n0, stop - pos, tmp)
        if write_back:
            store_rows(ring, n0, data, pos, stop, sample_major)
        # candidates at p = n - 1 use the thresholds after the noise pushes up to p
        for n_abs in range(n0, n0 + stop - pos):
            if n_abs >= 2:
                p = n_abs - 1
                r0 = (p - 1) & mask
                r1 = p & mask
                r2 = n_abs & mask
                hits = 0
                if polarity <= 0:
                    for c in range(n_channels):
                        y = ring[r1, c]
                        hits += (y <= -thr_uv[c]) & (y < ring[r0, c]) & (y <= ring[r2, c])
                if polarity >= 0:
                    for c in range(n_channels):
                        y = ring[r1, c]
                        hits += (y >= thr_uv[c]) & (y > ring[r0, c]) & (y >= ring[r2, c])
                if hits > 0:
                    _collect_candidates(
                        ring, r0, r1, r2, thr_uv, polarity, p, cand_t, cand_a, cand_n, cap, counters
                    )
            if n_abs % decimate == 0 and noise_push(
                n_abs,
                ring[n_abs & mask],
                decimate,
                init_len,
                chunk_len,
                noise_ring,
                noise_counts,
                noise_bin_uv,
                noise_hist,
                noise_sched,
                noise_uv,
                noise_scratch,
            ):
                for c in range(n_channels):
                    thr_uv[c] = _threshold(noise_uv[c], params)
        counters[C_PROCESSED] = n0 + stop - pos
        _decide(ring, nb_ptr, nb_idx, cand_t, cand_a, cand_n, out_t, out_c, out_a, params, counters)
        pos = stop
    return counters[C_OUT_N]


@numba.njit(cache=True, error_model="numpy")
def _collect_candidates(
    ring, r0, r1, r2, thr_uv, polarity, p, cand_t, cand_a, cand_n, cap, counters
):
    """Append every channel whose ring row ``r1`` (sample p) is a threshold-crossing local
    extremum (rows r0, r2: samples p - 1, p + 1)."""
    for c in range(thr_uv.shape[0]):
        v = ring[r1, c]
        thr = thr_uv[c]
        hit = False
        if polarity <= 0 and v <= -thr and v < ring[r0, c] and v <= ring[r2, c]:
            hit = True
        elif polarity >= 0 and v >= thr and v > ring[r0, c] and v >= ring[r2, c]:
            hit = True
        if hit:
            n = cand_n[c]
            if n < cap:
                cand_t[c, n] = p
                cand_a[c, n] = v
                cand_n[c] = n + 1
            else:
                counters[C_CAND_DROPPED] += 1


def _detect_entry(addresses, shapes):
    return detect_block(
        arg_f32_2d(addresses, shapes, 0),
        arg_f64_2d(addresses, shapes, 1),
        arg_f64_3d(addresses, shapes, 2),
        arg_f32_2d(addresses, shapes, 3),
        arg_f64_1d(addresses, shapes, 4),
        arg_f32_2d(addresses, shapes, 5),
        arg_i32_2d(addresses, shapes, 6),
        arg_f32_1d(addresses, shapes, 7),
        arg_f32_2d(addresses, shapes, 8),
        arg_i64_2d(addresses, shapes, 9),
        arg_f32_1d(addresses, shapes, 10),
        arg_f32_1d(addresses, shapes, 11),
        arg_f32_1d(addresses, shapes, 12),
        arg_i32_1d(addresses, shapes, 13),
        arg_i32_1d(addresses, shapes, 14),
        arg_i64_2d(addresses, shapes, 15),
        arg_f32_2d(addresses, shapes, 16),
        arg_i64_1d(addresses, shapes, 17),
        arg_i64_1d(addresses, shapes, 18),
        arg_i32_1d(addresses, shapes, 19),
        arg_f32_1d(addresses, shapes, 20),
        arg_f64_1d(addresses, shapes, 21),
        arg_i64_1d(addresses, shapes, 22),
    )


detect_entry = cfunc_entry(_detect_entry)
"""C entry over :func:`detect_block`; argument order as in its signature (an ArgTable)."""
