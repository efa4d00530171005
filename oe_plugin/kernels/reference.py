"""Common median reference: subtract, at every sample, the median across channels.

Per sample only, so chunking is exact. Uses :func:`oe_plugin.kernels.noise.select_kth`
(quickselect) on a scratch row; the median of an even count is the mean of the two middle
values (as ``numpy.median``).
"""

from __future__ import annotations

import numba
import numpy as np

from oe_plugin.kernels._entry import arg_f32_1d, arg_f32_2d, cfunc_entry
from oe_plugin.kernels.noise import select_kth


@numba.njit(cache=True, error_model="numpy", nogil=True)
def median_reference(data, scratch):
    """In place: ``data[:, i] -= median(data[:, i])``; data (C, N) float32, scratch (C,) float32.
    Returns N."""
    n_channels = data.shape[0]
    if n_channels == 0 or scratch.shape[0] < n_channels:
        return 0
    half = n_channels // 2
    for i in range(data.shape[1]):
        for c in range(n_channels):
            scratch[c] = data[c, i]
        hi = select_kth(scratch, n_channels, half)
        if n_channels % 2 == 1:
            med = hi
        else:
            lo = scratch[0]
            for c in range(1, half):  # after quickselect, scratch[:half] <= hi
                if scratch[c] > lo:
                    lo = scratch[c]
            med = 0.5 * (np.float64(lo) + np.float64(hi))
        for c in range(n_channels):
            data[c, i] -= med
    return data.shape[1]


def _reference_entry(addresses, shapes):
    return median_reference(arg_f32_2d(addresses, shapes, 0), arg_f32_1d(addresses, shapes, 1))


reference_entry = cfunc_entry(_reference_entry)
"""C entry: arguments (data, scratch) through an ArgTable."""
