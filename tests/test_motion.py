"""Motion estimation from peaks and drift correction by kriging (kernels motion, drift)."""

from __future__ import annotations

import numpy as np
import pytest

from oe_plugin.kernels.drift import apply_channel_weights, correct_block, drift_tables
from oe_plugin.kernels.localize import localize
from oe_plugin.kernels.motion import Motion, estimate_motion


def _peaks(motion_fn, duration_s=240.0, n_units=40, span_um=620.0, seed=0, jitter_um=3.0):
    """Peaks of units at fixed tissue depths seen through a probe moving by motion_fn(t, y)."""
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0, span_um, n_units)
    amp = rng.uniform(6, 40, n_units)
    rate = rng.uniform(2, 20, n_units)
    ts, ys, amps = [], [], []
    for u in range(n_units):
        t = np.sort(rng.uniform(0, duration_s, rng.poisson(rate[u] * duration_s)))
        y = depth[u] + motion_fn(t, depth[u]) + rng.normal(0, jitter_um, len(t))
        a = amp[u] * np.exp(rng.normal(0, 0.15, len(t)))
        ts.append(t), ys.append(y), amps.append(a)
    # background: noise-level crossings anywhere
    nb = int(20 * duration_s)
    ts.append(rng.uniform(0, duration_s, nb))
    ys.append(rng.uniform(0, span_um, nb))
    amps.append(rng.uniform(4.5, 6, nb))
    return np.concatenate(ts), np.concatenate(ys), np.concatenate(amps)


def _zigzag(t, amp=20.0, period=120.0, start=20.0):
    """Triangle wave 0 -> +amp -> 0 -> -amp -> 0 every ``period`` from ``start`` (0 before)."""
    phase = np.clip(np.asarray(t, float) - start, 0, None) / period
    return amp * (2 / np.pi) * np.arcsin(np.sin(2 * np.pi * phase))


def _rms_after_offset(est, true):
    d = est - true
    d -= np.median(d)
    return float(np.sqrt(np.mean(d ** 2)))


@pytest.mark.slow
def test_rigid_zigzag_recovered_within_3um_rms():
    t, y, a = _peaks(lambda tt, yy: _zigzag(tt))
    m = estimate_motion(t, y, a, 240.0, depth_range_um=(0, 620))
    assert m.rigid
    true = _zigzag(m.time_s)
    rms = _rms_after_offset(m.displacement_um[:, 0], true)
    assert rms < 3.0, rms
    # the estimate does move: a flat estimate would be ~14 µm RMS away
    assert m.range_um() > 30


@pytest.mark.slow
def test_nonrigid_motion_recovered_within_5um():
    def fn(tt, yy):  # the top of the probe drifts by 30 µm, the bottom by -10 µm, slowly
        return (-10 + 40 * yy / 620.0) * np.sin(2 * np.pi * np.asarray(tt) / 200.0)

    t, y, a = _peaks(fn, n_units=60, seed=3)
    m = estimate_motion(t, y, a, 240.0, depth_range_um=(0, 620), nonrigid=True)
    assert not m.rigid and m.displacement_um.shape[1] >= 3
    errs = []
    for k, depth in enumerate(m.depth_um):
        errs.append(_rms_after_offset(m.displacement_um[:, k], fn(m.time_s, depth)))
    assert max(errs) < 5.0, errs
    # a rigid estimate cannot fit it: top and bottom windows differ
    top, bottom = m.displacement_um[:, -1], m.displacement_um[:, 0]
    assert np.ptp(top) > 2 * np.ptp(bottom)


def test_static_recording_gives_small_motion():
    t, y, a = _peaks(lambda tt, yy: np.zeros_like(np.asarray(tt, float)), seed=5)
    m = estimate_motion(t, y, a, 240.0, depth_range_um=(0, 620))
    assert m.range_um() < 3.0


def test_empty_and_bad_peaks():
    m = estimate_motion(np.zeros(0), np.zeros(0), np.zeros(0), 10.0)
    assert np.all(m.displacement_um == 0)
    m = estimate_motion(np.array([1.0, np.nan]), np.array([5.0, 5.0]), np.array([0.0, 3.0]), 10.0)
    assert np.all(np.isfinite(m.displacement_um))


def _probe(n_rows=16, pitch=20.0, xs=(0.0, 32.0)):
    return np.array([(x, r * pitch) for r in range(n_rows) for x in xs], float)


@pytest.mark.slow
def test_kriging_identity_at_zero_displacement_and_shift_of_a_smooth_field():
    pos = _probe()
    tabs = drift_tables(pos, max_um=40, step_um=0.5)
    x = np.random.default_rng(0).normal(size=(len(pos), 50)).astype(np.float32)
    out = np.empty_like(x)
    g0 = tabs.grid_index(np.zeros(len(pos)))
    apply_channel_weights(x, tabs.index, tabs.weight, g0, 0, x.shape[1], out)
    np.testing.assert_allclose(out, x, atol=1e-3)
    # a smooth field along depth, probe moved by +10 µm: each channel sees the field 10 µm up
    field = lambda yy: np.sin(yy / 60.0)  # noqa: E731
    x = np.repeat(field(pos[:, 1])[:, None], 4, axis=1).astype(np.float32)
    g = tabs.grid_index(np.full(len(pos), 10.0))
    apply_channel_weights(x, tabs.index, tabs.weight, g, 0, 4, out)
    inner = (pos[:, 1] >= 20) & (pos[:, 1] <= 260)
    np.testing.assert_allclose(out[inner, 0], field(pos[inner, 1] + 10.0), atol=0.03)


def test_correct_block_is_block_invariant():
    pos = _probe(8)
    tabs = drift_tables(pos, max_um=30)
    m = Motion(np.array([0.5, 1.5, 2.5]), np.array([0.0]), np.array([[0.0], [12.0], [-7.0]]))
    x = np.random.default_rng(1).normal(size=(len(pos), 3000)).astype(np.float32)
    whole = correct_block(x, 0, 1000.0, m, tabs, pos, 0.5)
    parts = [correct_block(x[:, a:b], a, 1000.0, m, tabs, pos, 0.5)
             for a, b in [(0, 7), (7, 1100), (1100, 1101), (1101, 3000)]]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    assert not np.array_equal(whole, x)


@pytest.mark.slow
@pytest.mark.parametrize("dy", [0.0, 8.0])
def test_localize_centre_of_mass(dy):
    pos = _probe(8)
    c_n = len(pos)
    # a spike whose amplitude falls off with distance from (16, 60 + dy)
    centre = np.array([16.0, 60.0 + dy])
    amp = 30 * np.exp(-np.linalg.norm(pos - centre, axis=1) / 25.0)
    tr = np.zeros((c_n, 40), np.float32)
    tr[:, 20] = -amp
    from oe_plugin.probe import Probe, neighbour_lists

    nb = neighbour_lists(Probe("p", pos, np.zeros(c_n)), 60.0)
    peak = int(np.argmax(amp))
    x, y, a = localize(tr, 0, np.array([20]), np.array([peak]), nb, pos, method="com")
    assert a[0] == pytest.approx(amp[peak], rel=1e-5)
    assert abs(y[0] - centre[1]) < 6.0
    # moving the source moves the estimate the same way (bias is constant)
    assert x[0] == pytest.approx(16.0, abs=1.0)


def test_localize_monopolar_recovers_a_point_source():
    """Amplitudes of an exact point source alpha / r: the fit gives its position to < 0.5 µm,
    wherever it sits between the contacts (the centre of mass is off by several µm)."""
    from oe_plugin.probe import Probe, neighbour_lists

    pos = _probe(16)
    c_n = len(pos)
    nb = neighbour_lists(Probe("p", pos, np.zeros(c_n)), 75.0)
    com_err = []
    for sx, sy, sz in [(16.0, 77.0, 15.0), (-5.0, 101.0, 30.0), (30.0, 143.5, 8.0)]:
        r = np.sqrt((pos[:, 0] - sx) ** 2 + (pos[:, 1] - sy) ** 2 + sz ** 2)
        tr = np.zeros((c_n, 40), np.float32)
        tr[:, 20] = -(400.0 / r)
        peak = int(np.argmin(r))
        x, y, _ = localize(tr, 0, np.array([20]), np.array([peak]), nb, pos)
        assert abs(y[0] - sy) < 0.5 and abs(x[0] - sx) < 0.5, (x, y, sx, sy)
        _, yc, _ = localize(tr, 0, np.array([20]), np.array([peak]), nb, pos, method="com")
        com_err.append(abs(yc[0] - sy))
    assert max(com_err) > 1.0
    with pytest.raises(ValueError, match="localize method"):
        localize(tr, 0, np.array([20]), np.array([peak]), nb, pos, method="grid")


@pytest.mark.slow
def test_localize_monopolar_follows_a_unit_moving_between_coarse_rows():
    """The demo's simulated neurons (offline.sim templates, not a 1/r source) on the 54-channel
    polytrode (rows 50 µm apart), moved 0..30 µm along depth, band-passed, noise sigma 1 at
    SNR 10, single peaks: the monopolar depth moves one for one (median slope over 8 units
    0.9-1.1, median RMS <= 5 µm), the centre of mass of the same peaks does worse (the
    compression that hid two thirds of the demo's drift)."""
    from scipy import signal

    from oe_plugin.kernels.bandpass import default_band_sos
    from oe_plugin.probe import load_probe, neighbour_lists
    from offline.sim.extracellular import make_templates

    probe = load_probe("polytrode54", 54)
    pos = probe.positions_um
    nb = neighbour_lists(probe, 75.0)
    shifts = np.arange(0.0, 31.0, 1.0)
    rng = np.random.default_rng(5)
    sos = default_band_sos(30000.0)
    fit = {"monopolar": [], "com": []}
    for trial in range(8):
        npos = np.array([[rng.uniform(-30, 30), rng.uniform(200, 650), rng.uniform(5, 40)]])
        tpl, trough, _ = make_templates(npos, pos, 30000.0, np.array([10.0]), np.ones(len(pos)),
                                        np.random.default_rng(trial), shifts_um=shifts)
        ys = {m: [] for m in fit}
        for k in range(len(shifts)):
            x = np.pad(tpl[k, 0], ((0, 0), (300, 300)))
            f = signal.sosfilt(sos, x, axis=1).astype(np.float32)
            f += rng.normal(0, 1.0, f.shape).astype(np.float32)
            win = f[:, 300 + trough - 5:300 + trough + 15]
            c = int(np.argmin(win.min(axis=1)))
            t = 300 + trough - 5 + int(np.argmin(win[c]))
            for m in fit:
                ys[m].append(localize(f, 0, np.array([t]), np.array([c]), nb, pos,
                                      method=m)[1][0])
        for m in fit:
            y = np.asarray(ys[m], float)
            slope = np.polyfit(shifts, y, 1)[0]
            rms = np.sqrt(np.mean((y - y.mean() - (shifts - shifts.mean())) ** 2))
            fit[m].append((slope, rms))
    mono = np.array(fit["monopolar"])
    com = np.array(fit["com"])
    assert abs(np.median(mono[:, 0]) - 1.0) <= 0.1, mono
    assert np.median(mono[:, 1]) <= 5.0, mono
    assert np.median(com[:, 1]) > np.median(mono[:, 1]) + 1.0, (com, mono)


def test_lag_correlations_match_numpy_and_any_split():
    """The pairwise registration's correlation (vectorised, re-associated sums) is the plain
    correlation to rounding, and the online tracker's partial ranges give the same values as
    one call (the same sums, whatever the split)."""
    from oe_plugin.kernels.motion import lag_correlations

    rng = np.random.default_rng(3)
    ri, rj = rng.standard_normal((2, 3, 97))
    max_lag = 11
    cc = np.empty(2 * max_lag + 1)
    lag_correlations(ri, rj, max_lag, 0, 2 * max_lag + 1, cc)
    ref = [sum(np.dot(ri[a, max(0, g):97 + min(0, g)], rj[a, max(0, -g):97 - max(0, g)])
               for a in range(3)) for g in range(-max_lag, max_lag + 1)]
    np.testing.assert_allclose(cc, ref, rtol=1e-12, atol=1e-12)
    parts = np.empty_like(cc)
    for lo, hi in [(0, 5), (5, 6), (6, 2 * max_lag + 1)]:
        lag_correlations(ri, rj, max_lag, lo, hi, parts)
    np.testing.assert_array_equal(parts, cc)
