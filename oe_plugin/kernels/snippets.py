"""Multi-channel waveform snippets around detected events, for template work.

For every event (sample index, peak channel) the snippet is the window ``[t - pre, t + post)``
on the event's neighbourhood (the peak channel's CSR neighbour list, e.g. from
:func:`oe_plugin.probe.neighbour_lists` with the template radius), zero-padded to the largest
neighbourhood so all snippets share one shape. Events too close to the edges of ``traces`` are
flagged instead of read out of bounds.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def extract_snippets(traces, first_index, sample_index, channel, nb_ptr, nb_idx, pre, post, out):
    """Fill ``out`` (n_events, max_neighbours, pre + post) float32 with snippets.

    traces : (C, N) float32 µV, filtered; column 0 is stream sample ``first_index``.
    sample_index, channel : (n_events,) event peak sample (stream index) and peak channel.
    nb_ptr (C+1,), nb_idx : neighbour lists (CSR); row ``c`` lists the channels of the snippet of
        an event peaking on ``c``, in that order (unused rows of ``out`` are zero).
    Returns a (n_events,) bool array: True where the window lay inside ``traces``.
    """
    n_events = sample_index.shape[0]
    n_samples = traces.shape[1]
    width = pre + post
    ok = np.zeros(n_events, dtype=np.bool_)
    for e in range(n_events):
        start = sample_index[e] - first_index - pre
        out[e, :, :] = 0.0
        if start < 0 or start + width > n_samples:
            continue
        c = channel[e]
        row = 0
        for q in range(nb_ptr[c], nb_ptr[c + 1]):
            src = nb_idx[q]
            for k in range(width):
                out[e, row, k] = traces[src, start + k]
            row += 1
        ok[e] = True
    return ok


def snippet_channels(channel: np.ndarray, nb_ptr: np.ndarray, nb_idx: np.ndarray) -> np.ndarray:
    """The channel of every snippet row: (n_events, max_neighbours) int32, -1 for padding."""
    width = int(np.diff(nb_ptr).max()) if len(nb_ptr) > 1 else 0
    rows = np.full((len(channel), width), -1, dtype=np.int32)
    for e, c in enumerate(channel):
        members = nb_idx[nb_ptr[c] : nb_ptr[c + 1]]
        rows[e, : len(members)] = members
    return rows


def allocate_snippets(n_events: int, nb_ptr: np.ndarray, pre: int, post: int) -> np.ndarray:
    """A zeroed output array for :func:`extract_snippets`."""
    width = int(np.diff(nb_ptr).max()) if len(nb_ptr) > 1 else 0
    return np.zeros((n_events, width, pre + post), dtype=np.float32)
