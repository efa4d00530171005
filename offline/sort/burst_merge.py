"""Units that own several templates: a bursting cell's scaled copies joined after matching.

A cell firing bursts shrinks spike by spike (complex-spike bursts: ×0.6–0.9 per spike). Its
later spikes fall outside the matching scale range (``amplitude_min``) and clustering gives them
a template of their own: a near-exact **scaled copy** of the first one, on the same peak channel.
Two templates are joined into one unit when all of these hold:

* the same peak channel, or each reaches ``PEAK_SHARE`` of its peak on the other's peak channel
  (a cell between two contacts: its smaller copy's peak may flip to the neighbour), and the
  larger is a scaled copy of the smaller: ``X ≈ s Y`` with ``s`` in
  ``[SCALE_MIN, SCALE_MAX]`` and ``|X - s Y|^2 / |X|^2 <= burst_max_residual``, on the smaller
  one's channels (a smaller copy keeps fewer rows above the template row threshold);
* both have at least ``MIN_SPIKES`` spikes;
* **burst timing**: the smaller one's spikes follow a spike of either within
  ``BURST_ISI_MS`` far more often than chance (``> BURST_EXCESS`` × the Poisson expectation at
  their summed rate);
* **one cell's refractoriness**: the smaller one's spikes almost never lie within
  ``REFRACTORY_MS`` of the larger one's (fewer than half the chance count + ``REFRACTORY_SLACK``).

Two cells whose waveforms happen to be scaled copies fire independently and fail the timing
test. Joins are transitive (a burst of three shrinking spikes gives three templates, one unit);
the unit's template is the one with the most spikes, the others stay as its extra matching
templates (``extra_templates_uv`` … in sort.npz, used by the online sorter).
"""

from __future__ import annotations

import numpy as np

from offline.sort.sortfile import dense_templates

SCALE_MIN, SCALE_MAX = 1.1, 3.0
MIN_SPIKES = 20
BURST_ISI_MS = (2.0, 20.0)
BURST_EXCESS = 3.0
REFRACTORY_MS = 1.0
REFRACTORY_SLACK = 0.002
PEAK_SHARE = 0.9


def scaled_copy(big: np.ndarray, small: np.ndarray) -> tuple[float, float]:
    """(scale s, relative residual |big - s small|^2 / |big|^2) of the least-squares fit
    ``big ≈ s small`` (templates of the same shape)."""
    ss = float((small * small).sum())
    bb = float((big * big).sum())
    if ss <= 0 or bb <= 0:
        return 0.0, np.inf
    s = float((big * small).sum()) / ss
    return s, float(((big - s * small) ** 2).sum()) / bb


def burst_timing(big_t: np.ndarray, small_t: np.ndarray, sample_rate_hz: float,
                 duration_s: float) -> tuple[float, float, float, float]:
    """(fraction of ``small_t`` spikes preceded by a spike of either train within
    BURST_ISI_MS, its Poisson expectation, fraction with a ``big_t`` spike within
    REFRACTORY_MS, its expectation); sorted sample indices."""
    both = np.sort(np.concatenate([big_t, small_t]))
    k = np.searchsorted(both, small_t)  # the first copy of each small spike in ``both``
    prev = np.where(k > 0, both[np.maximum(k - 1, 0)], np.iinfo(np.int64).min // 2)
    gap_ms = (small_t - prev) / sample_rate_hz * 1e3
    lo, hi = BURST_ISI_MS
    burst = float(np.mean((gap_ms >= lo) & (gap_ms <= hi))) if len(small_t) else 0.0
    rate = len(both) / max(duration_s, 1e-9)
    expect = 1.0 - np.exp(-rate * (hi - lo) * 1e-3)
    j = np.searchsorted(big_t, small_t)
    near = np.full(len(small_t), np.inf)
    for jj in (j - 1, j):
        ok = (jj >= 0) & (jj < len(big_t))
        near[ok] = np.minimum(near[ok], np.abs(big_t[jj[ok]] - small_t[ok]))
    refr = float(np.mean(near / sample_rate_hz * 1e3 < REFRACTORY_MS)) if len(small_t) else 0.0
    refr_expect = len(big_t) / max(duration_s, 1e-9) * 2 * REFRACTORY_MS * 1e-3
    return burst, float(expect), refr, float(refr_expect)


def burst_units(t: np.ndarray, unit: np.ndarray, waveforms: np.ndarray, channels: np.ndarray,
                peak_channel: np.ndarray, n_channels: int, sample_rate_hz: float,
                duration_s: float, max_residual: float) -> tuple[np.ndarray, np.ndarray]:
    """``(unit of each template (T,) int32 in 0..U-1, unit template of each unit (U,) int64)``,
    bursting scaled copies joined (module docstring); units are numbered in the order of their
    unit templates.

    t (N,) int64 spike sample indices; unit (N,) int32 template of each spike (-1 unsorted);
    waveforms (T, K, W) and channels (T, K) the templates (any one scale for all: noise units);
    peak_channel (T,) int."""
    n_t = waveforms.shape[0]
    parent = np.arange(n_t)

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    if n_t > 1 and max_residual > 0:
        dense = dense_templates(np.asarray(waveforms, np.float64), channels, n_channels)
        trains = [np.sort(t[unit == u]).astype(np.int64) for u in range(n_t)]
        size = np.abs(dense).max(axis=2)  # (T, C) peak per channel
        top = size.max(axis=1)

        def same_site(x, y):
            return peak_channel[x] == peak_channel[y] or (
                size[x, peak_channel[y]] >= PEAK_SHARE * top[x]
                and size[y, peak_channel[x]] >= PEAK_SHARE * top[y])

        for x in range(n_t):
            if len(trains[x]) < MIN_SPIKES:
                continue
            for y in range(n_t):
                if x == y or not same_site(x, y) or len(trains[y]) < MIN_SPIKES:
                    continue
                # on the smaller one's channels: its far rows fall under the row threshold
                rows = np.abs(dense[y]).max(axis=1) > 0
                s, res = scaled_copy(dense[x][rows], dense[y][rows])
                if not (SCALE_MIN <= s <= SCALE_MAX and res <= max_residual):
                    continue
                burst, expect, refr, refr_expect = burst_timing(trains[x], trains[y],
                                                                sample_rate_hz, duration_s)
                if burst > BURST_EXCESS * expect and refr < 0.5 * refr_expect + REFRACTORY_SLACK:
                    parent[root(y)] = root(x)
    counts = np.bincount(unit[unit >= 0], minlength=n_t)
    return units_of_groups(np.array([root(u) for u in range(n_t)], np.int64), counts)


def units_of_groups(group: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unit of each template (T,) int32, unit template of each unit (U,) int64)`` for
    templates joined into groups (``group`` (T,): any label per group): each group's unit
    template is its template with the most spikes (``counts`` (T,); ties: the first), and units
    are numbered in the order of their unit templates."""
    head = {}
    for u in range(len(group)):
        g = group[u]
        if g not in head or counts[u] > counts[head[g]]:
            head[g] = u
    heads = sorted(head.values())
    unit_of_head = {h: i for i, h in enumerate(heads)}
    of_template = np.array([unit_of_head[head[group[u]]] for u in range(len(group))], np.int32)
    return of_template, np.array(heads, np.int64)
