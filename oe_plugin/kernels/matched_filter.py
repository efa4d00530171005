"""A template's matched-filter response over time, and its peaks: events a threshold misses.

A unit whose trough is within ~2x of the detection threshold has a share of its spikes under
that threshold on its peak channel (noise and amplitude spread). Its template, summed over the
channels and samples of its window, is a far stronger detector than one sample of one channel:
the response ``y(t) = <x[t : t+W, rows], T>`` of a spike at scale ``a`` is ``a |T|^2``, the
noise's spread about ``|T|``. The offline sorter's last pass (``[sort] template_detect_z``)
takes the response's peaks on the residual as extra events for the matcher, which accepts or
rejects them like any other.

Kernels (``@njit``, ``nogil``, no allocation):

- :func:`template_response` ``y`` for one template's rows, time-major traces;
- :func:`response_peaks` the local maxima of ``y`` above a threshold.
"""

from __future__ import annotations

import numba
import numpy as np

RESPONSE_TILE = 2048
"""Output samples :func:`template_response` sums over all rows before moving on (8 KiB)."""


@numba.njit(cache=True, error_model="numpy", nogil=True)
def template_response(src, chans, rows, col, out) -> int:
    """``out[t] = sum_r sum_w src[t + w, chans[r]] * rows[r, w]`` for ``t < n - W + 1``
    (float32 sums, rows in order, each row's samples four at a time; ``out[t] = 0`` past
    that); returns ``n - W + 1`` (0 when the traces are shorter than the window). The same
    sums in the same order for every sample whatever :data:`RESPONSE_TILE` is.

    src (n, C) float32 time-major; chans (R,) int (rows on channels outside ``0..C-1`` are
    left out); rows (R, W) float32; col (>= R * min(n, RESPONSE_TILE + W),) float32 scratch;
    out (>= n,) float32.
    """
    n = src.shape[0]
    n_ch = src.shape[1]
    width = rows.shape[1]
    m = n - width + 1
    for t in range(min(n, out.shape[0])):
        out[t] = 0.0
    span = min(n, RESPONSE_TILE + width)  # scratch per row
    n_rows = chans.shape[0]
    if m <= 0 or col.shape[0] < n_rows * span or out.shape[0] < n:
        return 0
    for t0 in range(0, m, RESPONSE_TILE):  # a tile of the output stays in L1 over all rows
        t1 = min(m, t0 + RESPONSE_TILE)
        o = out[t0:t1]
        for t in range(t0, t1 + width - 1):  # the rows' samples: one trace row at a time
            x = src[t]
            for r in range(n_rows):
                ch = chans[r]
                col[r * span + t - t0] = x[ch] if ch >= 0 and ch < n_ch else np.float32(0.0)
        for r in range(n_rows):
            ch = chans[r]
            if ch < 0 or ch >= n_ch:
                continue
            base = r * span
            k = t1 - t0
            w = 0
            while w + 4 <= width:  # four samples of the row per pass over the tile
                a0, a1, a2, a3 = rows[r, w], rows[r, w + 1], rows[r, w + 2], rows[r, w + 3]
                c = col[base + w:base + w + k + 3]
                for t in range(k):
                    o[t] += (a0 * c[t] + a1 * c[t + 1]) + (a2 * c[t + 2] + a3 * c[t + 3])
                w += 4
            while w < width:
                tw = rows[r, w]
                c = col[base + w:base + w + k]
                for t in range(k):
                    o[t] += tw * c[t]
                w += 1
    return m


@numba.njit(cache=True, error_model="numpy", nogil=True)
def response_peaks(y, m, threshold, half, out_t) -> int:
    """The samples ``t < m`` where ``y[t] > threshold`` and ``y[t]`` is the largest value within
    ``+-half`` samples (the first of equal values), ascending, into ``out_t`` (int64); returns
    their count (at most ``len(out_t)``)."""
    k = 0
    t = 0
    while t < m and k < out_t.shape[0]:
        v = y[t]
        if v <= threshold:
            t += 1
            continue
        best = True
        for s in range(max(0, t - half), min(m, t + half + 1)):
            if y[s] > v or (y[s] == v and s < t):
                best = False
                break
        if best:
            out_t[k] = t
            k += 1
            t += half + 1  # nothing within +-half of a peak is one
        else:
            t += 1
    return k


def template_rows_for_response(waveform: np.ndarray, channels: np.ndarray, max_rows: int,
                               energy_share: float) -> tuple[np.ndarray, np.ndarray]:
    """The rows of one template the response uses: by energy, the fewest that hold
    ``energy_share`` of it, at most ``max_rows``; returns (chans (R,) int64, rows (R, W)
    float32), in channel order. waveform (K, W), channels (K,) (-1 unused)."""
    used = channels >= 0
    energy = np.where(used, (waveform.astype(np.float64) ** 2).sum(axis=1), -1.0)
    order = np.argsort(energy)[::-1]
    order = order[energy[order] > 0]
    if len(order) == 0:
        return np.zeros(0, np.int64), np.zeros((0, waveform.shape[1]), np.float32)
    share = np.cumsum(energy[order]) / energy[order].sum()
    n = min(max_rows, int(np.searchsorted(share, energy_share)) + 1)
    keep = np.sort(order[:n])
    return channels[keep].astype(np.int64), np.ascontiguousarray(waveform[keep], np.float32)
