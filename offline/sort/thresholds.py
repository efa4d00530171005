"""Per-template acceptance threshold at the trough of the bimodal match-error distribution.

The seed's observation: a template's match errors over the events assigned to it are bimodal
— its own spikes (error ~ 1 noise variance per sample) and everything else (noise crossings,
other units, overlaps) higher — and a threshold at the trough separates them. Here, on
log(error):

1. the main mode (own spikes) is the peak of a smoothed histogram of the lower half of the
   errors; its spread ``sigma`` is measured on its left flank only (errors below the mode are
   own spikes whatever else was assigned), mirrored;
2. the trough is the first minimum above the mode that lies below half the mode's height and is
   followed by a second mode at least ``rise`` times higher than itself;
3. the threshold is that trough, but never closer to the mode than ``min_sigmas`` x sigma (a
   small sample can fake a trough inside the main mode); without a trough (unimodal: nothing
   else was assigned) it is mode + ``tail_sigmas`` x sigma; always at least ``min_error`` and
   at most ``max_error``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def trough_threshold(errors, max_error: float, min_error: float = 0.0, min_sigmas: float = 4.0,
                     tail_sigmas: float = 6.0, bins: int = 60, rise: float = 1.5,
                     min_events: int = 20) -> float:
    """The acceptance threshold (same units as ``errors``) for one template."""
    e = np.asarray(errors, np.float64)
    e = e[np.isfinite(e) & (e > 0)]
    if len(e) < min_events:
        return float(max_error)
    x = np.log(e)
    lo, hi = np.percentile(x, [0.5, 99.5])
    if hi - lo < 1e-6:
        return float(min(max_error, np.exp(hi) * 1.5))
    hist, edges = np.histogram(x, bins=bins, range=(lo, hi))
    h = gaussian_filter1d(hist.astype(np.float64), 1.5)
    centres = 0.5 * (edges[1:] + edges[:-1])
    lower_half = centres <= np.median(x)
    mode = int(np.argmax(np.where(lower_half, h, -1.0)))
    left = x[x <= centres[mode]] - centres[mode]
    sigma = np.sqrt(np.mean(left**2)) if len(left) >= 5 else np.std(x)
    sigma = max(sigma, 0.02)
    floor = centres[mode] + min_sigmas * sigma
    threshold = centres[mode] + tail_sigmas * sigma
    for m in range(mode + 1, bins - 1):
        if h[m] <= h[m - 1] and h[m] <= h[m + 1] and h[m] < 0.5 * h[mode]:
            if h[m + 1 :].max() >= rise * h[m] + 1e-9:
                threshold = max(centres[m], floor)
                break
    return float(min(max_error, max(min_error, np.exp(threshold))))
