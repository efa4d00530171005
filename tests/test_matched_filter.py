"""The matched-filter kernels (oe_plugin.kernels.matched_filter) and the sorter's pass over them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oe_plugin.kernels.matched_filter import (
    response_peaks,
    template_response,
    template_rows_for_response,
)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 200), st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**31))
def test_response_equals_a_brute_force_correlation(n, n_rows, width, seed):
    rng = np.random.default_rng(seed)
    src = rng.normal(0, 1, (n, 7)).astype(np.float32)
    chans = rng.integers(-1, 8, n_rows)  # -1 and 7: rows off the traces, left out
    rows = rng.normal(0, 1, (n_rows, width)).astype(np.float32)
    out = np.full(n, 99.0, np.float32)
    m = template_response(src, chans, rows, np.empty(n * n_rows, np.float32), out)
    assert m == max(n - width + 1, 0)
    want = np.zeros(n)
    for t in range(m):
        for r, ch in enumerate(chans):
            if 0 <= ch < 7:
                want[t] += float(np.dot(src[t:t + width, ch].astype(np.float64), rows[r]))
    np.testing.assert_allclose(out, want, atol=1e-4 * width * n_rows)


def test_peaks_are_local_maxima_above_the_threshold_half_apart():
    y = np.array([0, 5, 1, 0, 0, 7, 7, 2, 0, 9, 0, 3, 0], np.float32)
    out = np.zeros(10, np.int64)
    k = response_peaks(y, len(y), 2.5, 2, out)
    # 5 at 1 (nothing larger within 2), 7 at 5 (the first of two equal), 9 at 9; 7 at 6 is
    # within 2 of 5, and 3 at 11 within 2 of the 9
    assert out[:k].tolist() == [1, 5, 9]
    assert response_peaks(y, len(y), 10.0, 2, out) == 0
    assert response_peaks(y, 4, 2.5, 2, out) == 1  # only t < m count


def test_response_rows_hold_the_energy_share():
    w = np.zeros((5, 4), np.float32)
    w[0] = 3.0  # energy 36
    w[2] = 2.0  # 16
    w[3] = 1.0  # 4
    ch = np.array([10, 11, 12, -1, 14], np.int32)  # row 3 unused
    chans, rows = template_rows_for_response(w, ch, 8, 0.95)
    assert chans.tolist() == [10, 12] and rows.shape == (2, 4)
    chans, _ = template_rows_for_response(w, ch, 1, 0.99)
    assert chans.tolist() == [10]


def test_a_weak_unit_below_the_threshold_is_found_by_its_response():
    """A template at 0.6 x a 4.5-sigma threshold on its peak channel, spread over 4 channels:
    no sample of its spikes crosses the threshold, its response peaks at every spike."""
    from types import SimpleNamespace

    from offline.sort.matching import template_events
    from offline.sort.templates import TemplateSet

    rng = np.random.default_rng(3)
    n, n_ch, width, pre = 30000, 8, 40, 12
    shape = -np.exp(-0.5 * ((np.arange(width) - pre) / 3.0) ** 2)
    wave = np.zeros((4, width), np.float32)
    for r, g in enumerate([1.0, 0.8, 0.8, 0.6]):
        wave[r] = 2.7 * g * shape
    chans = np.array([3, 2, 4, 5], np.int32)
    src = rng.normal(0, 1, (n, n_ch)).astype(np.float32)
    starts = np.arange(500, n - 500, 700) + rng.integers(-50, 50, len(np.arange(500, n - 500, 700)))
    for s0 in starts:
        src[s0:s0 + width, chans] += wave.T
    tpl = TemplateSet(wave[None], chans[None], np.array([3], np.int32), np.array([100]), pre)
    s = SimpleNamespace(template_detect_max_trough=2.0, template_detect_rows=8,
                        template_detect_z=5.0)
    t, c = template_events(src, tpl, np.full(n_ch, 4.5, np.float32), s, pre)
    assert (c == 3).all()
    hit = np.array([np.abs(t - (s0 + pre)).min() <= 1 for s0 in starts])
    assert hit.mean() >= 0.95
    assert len(t) <= len(starts) + 3  # hardly any noise peak
    s.template_detect_max_trough = 0.5  # 2.7 >= 0.5 x 4.5: not a weak template, no pass
    assert len(template_events(src, tpl, np.full(n_ch, 4.5, np.float32), s, pre)[0]) == 0


def test_response_over_several_tiles_equals_numpy():
    """Longer than a tile (RESPONSE_TILE): the tiles join without a seam."""
    from oe_plugin.kernels.matched_filter import RESPONSE_TILE

    rng = np.random.default_rng(5)
    n, width = 2 * RESPONSE_TILE + 77, 30
    src = rng.normal(0, 1, (n, 5)).astype(np.float32)
    chans = np.array([4, 0, 2])
    rows = rng.normal(0, 1, (3, width)).astype(np.float32)
    out = np.empty(n, np.float32)
    m = template_response(src, chans, rows, np.empty(3 * (RESPONSE_TILE + width), np.float32),
                          out)
    want = sum(np.correlate(src[:, ch].astype(np.float64), rows[r].astype(np.float64), "valid")
               for r, ch in enumerate(chans))
    assert m == n - width + 1
    np.testing.assert_allclose(out[:m], want, atol=1e-3)
    assert (out[m:] == 0).all()
