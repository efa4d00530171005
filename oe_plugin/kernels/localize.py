"""Where a detected peak sits on the probe: the amplitude-weighted centre of its neighbourhood.

The motion estimator (:mod:`oe_plugin.kernels.motion`) needs, for every detected peak, a depth
that moves with the probe. The centre of mass of the peak's negative amplitude over the channels
within a radius is biased towards the peak channel, but the bias is the same whatever the time,
so it cancels in the registration of one time bin against another (what the estimator does).
It is cheap (one pass over a few neighbours per peak), allocation-free and never raises, so the
online sorter can run it per event.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy", nogil=True)
def localize_peaks(traces, first_index, sample_index, channel, nb_ptr, nb_idx, positions_um,
                   half_window, out_x_um, out_y_um, out_amplitude):
    """Centre of mass of each peak's negative amplitude on its neighbourhood.

    traces : (C, N) float32 (any unit; the noise-scaled traces offline); column 0 is stream
        sample ``first_index``.
    sample_index, channel : (n,) int64 / int32, peak sample (stream index) and peak channel.
    nb_ptr (C+1,), nb_idx : CSR neighbour lists (the channels around each peak channel).
    positions_um : (C, 2) float64 contact (x, y).
    half_window : a channel's amplitude is its most negative value within ±half_window samples.
    out_x_um, out_y_um : (n,) float32 position; out_amplitude : (n,) float32, the peak
        channel's negative amplitude (traces' unit). Peaks whose window leaves ``traces`` get the
        peak channel's position and amplitude 0.
    """
    n_samples = traces.shape[1]
    for e in range(sample_index.shape[0]):
        c = channel[e]
        t = sample_index[e] - first_index
        out_x_um[e] = positions_um[c, 0]
        out_y_um[e] = positions_um[c, 1]
        out_amplitude[e] = 0.0
        if t - half_window < 0 or t + half_window >= n_samples:
            continue
        sw = 0.0
        sx = 0.0
        sy = 0.0
        for q in range(nb_ptr[c], nb_ptr[c + 1]):
            k = nb_idx[q]
            a = 0.0
            for s in range(t - half_window, t + half_window + 1):
                v = -traces[k, s]
                if v > a:
                    a = v
            if k == c:
                out_amplitude[e] = a
            sw += a
            sx += a * positions_um[k, 0]
            sy += a * positions_um[k, 1]
        if sw > 0:
            out_x_um[e] = sx / sw
            out_y_um[e] = sy / sw


def localize(traces, first_index, sample_index, channel, neighbours, positions_um,
             half_window: int = 2):
    """Numpy convenience over :func:`localize_peaks`: returns (x_um, y_um, amplitude) float32."""
    n = len(sample_index)
    x = np.zeros(n, np.float32)
    y = np.zeros(n, np.float32)
    a = np.zeros(n, np.float32)
    if n:
        localize_peaks(np.ascontiguousarray(traces, np.float32), int(first_index),
                       np.asarray(sample_index, np.int64), np.asarray(channel, np.int32),
                       neighbours[0], neighbours[1], np.asarray(positions_um, np.float64),
                       int(half_window), x, y, a)
    return x, y, a
