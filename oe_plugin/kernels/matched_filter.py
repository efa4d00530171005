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


@numba.njit(cache=True, error_model="numpy", nogil=True)
def template_response(src, chans, rows, col, out) -> int:
    """``out[t] = sum_r sum_w src[t + w, chans[r]] * rows[r, w]`` for ``t < n - W + 1``
    (float32 sums, rows in order, then samples; ``out[t] = 0`` past that); returns
    ``n - W + 1`` (0 when the traces are shorter than the window).

    src (n, C) float32 time-major; chans (R,) int (rows on channels outside ``0..C-1`` are
    left out); rows (R, W) float32; col (>= n,) float32 scratch; out (>= n,) float32.
    """
    n = src.shape[0]
    n_ch = src.shape[1]
    width = rows.shape[1]
    m = n - width + 1
    for t in range(min(n, out.shape[0])):
        out[t] = 0.0
    if m <= 0 or col.shape[0] < n or out.shape[0] < n:
        return 0
    for r in range(chans.shape[0]):
        ch = chans[r]
        if ch < 0 or ch >= n_ch:
            continue
        for t in range(n):
            col[t] = src[t, ch]
        for w in range(width):
            tw = rows[r, w]
            if tw == 0.0:
                continue
            c = col[w:w + m]
            o = out[:m]
            for t in range(m):
                o[t] += tw * c[t]
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
