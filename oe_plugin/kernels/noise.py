"""Per-channel noise level: median(|x|) / 0.6745 over a window, slowly updated.

Quian Quiroga et al. (2004)'s robust estimate, kept up to date the way the seed's spyke did
("median noise level of a narrow sliding window"), at a cost that fits the online budget:

- every ``decimate``-th filtered sample's |x| goes into a ring shared by all channels
  (shape (ring_len, n_channels), rows = pushes);
- when the first ``init_len`` pushes are in, each channel's noise is the MAD of all of them;
- after that, channel ``c`` re-estimates the MAD of its last ``chunk_len`` pushes once every
  ``chunk_len`` pushes, staggered across channels (offset ``c * chunk_len // n_channels``) so no
  block pays for all channels at once; the noise is the median of the last ``history`` chunk
  estimates (robust to a burst of spikes or an artefact in one chunk).

Everything is indexed by the absolute sample number, so any block partition gives the same
noise at every sample. A channel whose noise is 0 (flat or disconnected) gets an infinite
threshold rather than one that fires on every sample.
"""

from __future__ import annotations

import numba
import numpy as np

MAD_TO_SIGMA = 1.0 / 0.6745


@numba.njit(cache=True, error_model="numpy")
def select_kth(buf, n, k):
    """The k-th smallest of buf[:n] (0-based), partially reordering buf in place (quickselect)."""
    lo = 0
    hi = n - 1
    while hi > lo:
        pivot = buf[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                tmp = buf[i]
                buf[i] = buf[j]
                buf[j] = tmp
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return buf[k]
    return buf[k]


@numba.njit(cache=True, error_model="numpy")
def column_median(table, c, first_row, n_rows, scratch):
    """Lower median of ``table[(first_row + r) % len(table), c]`` for r < n_rows."""
    n_table = table.shape[0]
    for r in range(n_rows):
        scratch[r] = table[(first_row + r) % n_table, c]
    return select_kth(scratch, n_rows, (n_rows - 1) // 2)


def make_noise_state(n_channels: int, init_len: int, chunk_len: int, history: int):
    """Allocate the noise state.

    Returns ``(ring, hist, sched, noise_uv, scratch)``:
    ring (max(init_len, chunk_len), n_channels) float32 |x| pushes; hist (history, n_channels)
    float32 chunk estimates; sched (2, n_channels) int64 = [stagger offset, history position];
    noise_uv (n_channels,) float32, 0 until the initial window is complete; scratch float32.
    """
    ring_len = max(init_len, chunk_len)
    ring = np.zeros((ring_len, n_channels), dtype=np.float32)
    hist = np.zeros((history, n_channels), dtype=np.float32)
    sched = np.zeros((2, n_channels), dtype=np.int64)
    sched[0] = (np.arange(n_channels, dtype=np.int64) * chunk_len) // max(n_channels, 1)
    noise_uv = np.zeros(n_channels, dtype=np.float32)
    scratch = np.zeros(max(ring_len, history), dtype=np.float32)
    return ring, hist, sched, noise_uv, scratch


@numba.njit(cache=True, error_model="numpy")
def noise_push(
    sample_number, row, decimate, init_len, chunk_len, ring, hist, sched, noise_uv, scratch
):
    """Feed one filtered sample of every channel (``row`` (n_channels,) float64, µV).

    Returns True when some channel's ``noise_uv`` changed (its threshold must be recomputed).
    """
    if sample_number % decimate != 0:
        return False
    n_channels = row.shape[0]
    ring_len = ring.shape[0]
    push = sample_number // decimate
    w = push % ring_len
    for c in range(n_channels):
        ring[w, c] = abs(row[c])
    if push < init_len - 1:
        return False
    history = hist.shape[0]
    if push == init_len - 1:
        first = (push - init_len + 1) % ring_len
        for c in range(n_channels):
            est = column_median(ring, c, first, init_len, scratch) * MAD_TO_SIGMA
            for h in range(history):
                hist[h, c] = est
            noise_uv[c] = est
        return True
    # channel c re-estimates when (since + c * chunk_len // n_channels) % chunk_len == 0: the
    # channels due at this push form one contiguous range, found without a loop over channels
    since = push - (init_len - 1)
    due = (chunk_len - since % chunk_len) % chunk_len
    c_first = (due * n_channels + chunk_len - 1) // chunk_len
    c_stop = min(((due + 1) * n_channels + chunk_len - 1) // chunk_len, n_channels)
    if c_first >= c_stop:
        return False
    first = (push - chunk_len + 1) % ring_len
    for c in range(c_first, c_stop):
        est = column_median(ring, c, first, chunk_len, scratch) * MAD_TO_SIGMA
        pos = sched[1, c]
        hist[pos, c] = est
        sched[1, c] = (pos + 1) % history
        noise_uv[c] = column_median(hist, c, 0, history, scratch)
    return True
