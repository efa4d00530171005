"""Candidate lists of the matching kernel: which templates an event peaking on a channel may be.

One rule for the offline sorter and the online sorter (both build ``cand_ptr`` / ``cand_idx``
for :func:`oe_plugin.kernels.match.match_events` with it), in plain numpy so that the online
side needs nothing from ``offline/``.
"""

from __future__ import annotations

import numpy as np

MIN_FRACTION = 0.25
"""A template is a candidate on channel ``c`` when its |peak| there is at least this fraction of
its largest |peak| (over its rows)."""


def candidates(waveforms: np.ndarray, channels: np.ndarray, n_channels: int,
               min_fraction: float = MIN_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists (``cand_ptr`` (C + 1,), ``cand_idx``) int32 of the templates an event peaking on
    each channel may belong to: those whose |peak| on that channel is >= ``min_fraction`` of
    their largest. ``waveforms`` (U, K, W), ``channels`` (U, K) (-1 = unused row; rows outside
    ``0..n_channels-1`` are ignored). ``cand_idx`` is ``[0]`` when every list is empty."""
    lists = [[] for _ in range(n_channels)]
    for u in range(waveforms.shape[0]):
        peak = np.abs(waveforms[u]).max(axis=1)
        top = peak.max() if peak.size else 0.0
        for r, ch in enumerate(channels[u]):
            if 0 <= ch < n_channels and peak[r] >= min_fraction * top:
                lists[ch].append(u)
    ptr = np.zeros(n_channels + 1, np.int32)
    ptr[1:] = np.cumsum([len(v) for v in lists])
    idx = np.array([u for v in lists for u in v] or [0], np.int32)
    return ptr, idx
