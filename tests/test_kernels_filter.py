"""The band-pass kernel: scipy equivalence, the GUI's Bandpass Filter, block invariance."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.bandpass import (
    bandpass_block,
    bandpass_entry,
    design_bandpass,
    make_filter_state,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openephys-example-0.6.7"


def run_filter(sos, x, splits=None, tile=256):
    """Filter x (C, N) float32 in blocks cut at ``splits``; returns float32 output."""
    c = x.shape[0]
    zi = make_filter_state(sos, c)
    out = np.empty_like(x)
    tile_buf = np.zeros((tile, c), dtype=np.float32)
    tmp = np.zeros(c)
    edges = [0, *(splits or []), x.shape[1]]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        block = np.ascontiguousarray(x[:, a:b])
        res = np.empty_like(block)
        bandpass_block(sos, zi, block, res, tile_buf, tmp)
        out[:, a:b] = res
    return out


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(3)
    return (rng.standard_normal((5, 20000)) * 40).astype(np.float32)


@pytest.mark.parametrize("order", [1, 2, 4])
def test_matches_scipy_sosfilt(noise, order):
    fs = 30000.0
    sos = design_bandpass(300, 6000, order, fs)
    ours = run_filter(sos, noise)
    ref = signal.sosfilt(sos, noise.astype(np.float64), axis=1)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6 * scale)


def test_c_entry_equals_njit(noise):
    sos = design_bandpass(300, 6000, 2, 30000.0)
    ref = run_filter(sos, noise)
    c = noise.shape[0]
    zi = make_filter_state(sos, c)
    out = np.empty_like(noise)
    table = ArgTable([sos, zi, noise.copy(), out, np.zeros((256, c), np.float32), np.zeros(c)])
    assert table.call(entry_caller(bandpass_entry)) == 0
    np.testing.assert_array_equal(out, ref)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20000), max_size=12))
def test_block_invariance(noise_cuts):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 20000)) * 30).astype(np.float32)
    sos = design_bandpass(300, 6000, 2, 30000.0)
    whole = run_filter(sos, x)
    cut = run_filter(sos, x, sorted(set(noise_cuts)))
    np.testing.assert_array_equal(whole, cut)


def test_nonfinite_input_is_zeroed_and_counted():
    sos = design_bandpass(300, 6000, 2, 30000.0)
    x = np.ones((2, 1000), dtype=np.float32)
    x[0, 10] = np.nan
    x[1, 20] = np.inf
    x[1, 30] = -np.inf
    x[0, 40] = 3e38
    zi = make_filter_state(sos, 2)
    out = np.empty_like(x)
    bad = bandpass_block(sos, zi, x, out, np.zeros((256, 2), np.float32), np.zeros(2))
    assert bad == 3
    assert np.isfinite(out).all() and np.isfinite(zi).all()


def test_bad_band_is_refused():
    with pytest.raises(ValueError, match="high_hz"):
        design_bandpass(300, 20000, 2, 30000.0)
    with pytest.raises(ValueError, match="order"):
        design_bandpass(300, 6000, 0, 30000.0)


def test_reproduces_gui_bandpass_record_node_105():
    """Record Node 105 holds the GUI's Bandpass Filter (300-6000 Hz, order 2) output of Record
    Node 101's raw data; our causal filter must reproduce it after its start transient."""
    from offline.recording import open_recording

    raw = open_recording(DATA, node=101)
    gui = open_recording(DATA, node=105)
    assert raw.first_sample_number == gui.first_sample_number
    x = raw.read_uv(0, raw.n_samples)
    y_gui = gui.read_uv(0, gui.n_samples)
    sos = design_bandpass(300, 6000, 2, raw.sample_rate_hz)
    ours = run_filter(sos, x)
    skip = int(0.1 * raw.sample_rate_hz)
    for c in range(raw.n_channels):
        r = np.corrcoef(ours[c, skip:], y_gui[c, skip:])[0, 1]
        assert r >= 0.998, f"channel {c}: r = {r:.5f}"


@pytest.mark.slow
@pytest.mark.parametrize("n_ch", [1, 8, 13, 64])
def test_columns_to_rows_transposes_scales_and_wraps(n_ch):
    from oe_plugin.kernels.bandpass import columns_to_rows

    rng = np.random.default_rng(n_ch)
    data = rng.standard_normal((n_ch, 100)).astype(np.float32)
    gains = rng.uniform(0.5, 2.0, n_ch).astype(np.float32)
    ring = np.full((64, n_ch), np.nan, np.float32)
    columns_to_rows(data, 30, 50, gains, True, ring, 40, 63)  # rows 40..63, then 0..25
    want = (data[:, 30:80] * gains[:, None]).T
    rows = (40 + np.arange(50)) & 63
    assert np.array_equal(ring[rows], want)
    assert np.isnan(ring[26:40]).all()  # nothing else written
    plain = np.zeros((50, n_ch), np.float32)
    columns_to_rows(data, 30, 50, gains, False, plain, 0, -1)
    assert np.array_equal(plain, data[:, 30:80].T)


@pytest.mark.parametrize("tile", [3, 32])
def test_sos_rows_tiles_give_the_sample_by_sample_result_bit_for_bit(tile):
    """Section by section over tiles of ring rows (wrapping) equals one row at a time."""
    from oe_plugin.kernels.bandpass import sos_rows

    n_ch, n = 11, 150
    sos = design_bandpass(300.0, 6000.0, 3, 30000.0)
    x = (np.random.default_rng(tile).standard_normal((n, n_ch)) * 50).astype(np.float32)
    want = np.zeros((256, n_ch), np.float32)
    want[:n] = x
    zi_a = make_filter_state(sos, n_ch)
    for i in range(n):  # a one-row scratch: one sample at a time
        sos_rows(sos, zi_a, want, i, 1, np.zeros(n_ch))
    want = want[:n]
    ring = np.zeros((64, n_ch), np.float32)
    zi_b = make_filter_state(sos, n_ch)
    got = np.zeros_like(x)
    for start in range(0, n, 40):  # 40 rows per call, starting at ring row 50: wraps
        m = min(40, n - start)
        rows = (50 + start + np.arange(m)) & 63
        ring[rows] = x[start:start + m]
        sos_rows(sos, zi_b, ring, 50 + start, m, np.zeros(tile * n_ch))
        got[start:start + m] = ring[rows]
    assert np.array_equal(got, want)
    assert np.array_equal(zi_a, zi_b)
    ref = signal.sosfilt(sos, x.astype(np.float64), axis=0)
    assert np.abs(got - ref).max() < 1e-6 * np.abs(ref).max()


def test_two_sections_run_fused_bit_for_bit():
    """The default order (two sections) runs both biquads in one in-place pass; the general
    path (section by section through float64 scratch) with a third, identity section gives the
    same float32 samples and the same state, over wrapping ring rows."""
    from oe_plugin.kernels.bandpass import sos_rows

    n_ch, n = 64, 700
    sos = design_bandpass(300.0, 6000.0, 2, 30000.0)
    with_identity = np.vstack([sos, [[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]]])
    x = (np.random.default_rng(4).standard_normal((n, n_ch)) * 60).astype(np.float32)
    rings = [np.zeros((256, n_ch), np.float32) for _ in range(2)]
    states = [make_filter_state(s, n_ch) for s in (sos, with_identity)]
    got = [np.zeros_like(x) for _ in range(2)]
    for k, s in enumerate((sos, with_identity)):
        for start in range(0, n, 97):  # 97 rows per call from ring row 200: wraps
            m = min(97, n - start)
            rows = (200 + start + np.arange(m)) & 255
            rings[k][rows] = x[start:start + m]
            sos_rows(s, states[k], rings[k], 200 + start, m, np.zeros(32 * n_ch))
            got[k][start:start + m] = rings[k][rows]
    assert np.array_equal(got[0], got[1])
    assert np.array_equal(states[0], states[1][:2])
    ref = signal.sosfilt(sos, x.astype(np.float64), axis=0)
    assert np.abs(got[0] - ref).max() < 1e-6 * np.abs(ref).max()
