"""Raw integer samples (time, channel) -> float32 µV (channel, time), tiled.

numpy's ``np.multiply(raw.T, gain[:, None], out=out)`` walks the transposed input with a stride
of a whole sample frame per element and runs at ~12 ns per sample on 384 channels; this walks
16-sample tiles of the frame-major input (one L1-resident block) and writes each channel's 16
outputs as one cache line. Same arithmetic (integer x float64 gain, rounded to float32), so the
same bits. Imported lazily: numba is not needed to open a recording."""

from __future__ import annotations

import numba
import numpy as np

TILE = 16


@numba.njit(cache=True, nogil=True)
def scale_transpose(raw, gain, out):
    """``out[c, t] = float32(raw[t, c] * gain[c])``; raw (n, C) integer, gain (C,) float64,
    out (C, n) float32."""
    n, n_ch = raw.shape
    for t0 in range(0, n, TILE):
        t1 = min(t0 + TILE, n)
        for c in range(n_ch):
            g = gain[c]
            row = out[c]
            for t in range(t0, t1):
                row[t] = np.float32(raw[t, c] * g)
