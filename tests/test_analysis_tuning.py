"""Tuning curves: synthetic neurons with known von Mises / log-Gaussian tuning, blank baseline."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from offline.analysis.fits import log_gaussian, von_mises, von_mises_direction  # noqa: E402
from offline.analysis.presentations import Presentations  # noqa: E402
from offline.analysis.psth import compute_psth  # noqa: E402
from offline.analysis.tuning import compute_tuning, selectivity  # noqa: E402

SWEEP_S = 0.5


def simulate(rng, values, rate_fn, n_rep, name, blank_rate=None, blank_every=0):
    """Shuffled presentations of ``values`` (+ blanks), Poisson spikes at rate_fn(value)."""
    order = np.concatenate([rng.permutation(values) for _ in range(n_rep)]).astype(float)
    if blank_every:
        order = np.insert(order, np.arange(blank_every, order.size, blank_every), np.nan)
    onset = 1.0 + np.arange(order.size) * (SWEEP_S + 0.2)
    spikes = []
    for v, t0 in zip(order, onset, strict=True):
        r = blank_rate if np.isnan(v) else rate_fn(v)
        spikes.append(t0 + rng.uniform(0, SWEEP_S, rng.poisson(r * SWEEP_S)))
        spikes.append(t0 + SWEEP_S + rng.uniform(0, 0.2, rng.poisson(2.0 * 0.2)))
    index = np.where(np.isnan(order), 65535, np.searchsorted(np.sort(values), order))
    pres = Presentations(onset, onset + SWEEP_S, index.astype(np.int64), {name: order})
    return np.sort(np.concatenate(spikes)), pres


@pytest.mark.parametrize("pref", [12.0, 67.0, 151.0])
def test_von_mises_orientation_recovered(pref):
    rng = np.random.default_rng(int(pref))
    oris = np.arange(0, 180, 15.0)
    true = lambda x: von_mises(x, 5.0, 40.0, 1.5, pref)  # noqa: E731
    t, pres = simulate(rng, oris, true, 20, "ori_deg", blank_rate=5.0, blank_every=10)
    res = compute_tuning(t, pres, "ori_deg")
    err = (res.preferred - pref + 90) % 180 - 90
    assert abs(err) < 3.0
    assert res.fit.model == "von_mises" and res.period_deg == 180.0
    assert abs(res.osi - selectivity(oris, true(oris), 180.0)) < 0.05
    assert res.baseline_hz == pytest.approx(5.0, abs=1.0)
    assert np.all(res.n_trials == 20)
    assert res.plot().get_xlabel() == "ori_deg"


def test_direction_tuning_dsi_and_preference():
    rng = np.random.default_rng(11)
    dirs = np.arange(0, 360, 30.0)
    true = lambda x: von_mises_direction(x, 3.0, 40.0, 12.0, 2.0, 200.0)  # noqa: E731
    t, pres = simulate(rng, dirs, true, 15, "ori_deg")
    res = compute_tuning(t, pres, "ori_deg")
    assert res.period_deg == 360.0 and res.fit.model == "von_mises_direction"
    assert abs((res.preferred - 200.0 + 180) % 360 - 180) < 3.0
    assert abs(res.dsi - selectivity(dirs, true(dirs), 360.0)) < 0.05
    assert abs(res.osi - selectivity(dirs, true(dirs), 180.0)) < 0.05
    again = res.recompute(fit=None)
    assert again.fit is None and abs((again.preferred - 200 + 180) % 360 - 180) < 10


def test_log_gaussian_spatial_frequency():
    rng = np.random.default_rng(12)
    sfs = np.array([0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
    true = lambda x: log_gaussian(x, 2.0, 30.0, 0.3, 1.0)  # noqa: E731
    t, pres = simulate(rng, sfs, true, 20, "sf_cpd")
    res = compute_tuning(t, pres, "sf_cpd")
    assert res.fit.model == "log_gaussian"
    assert res.preferred == pytest.approx(0.3, rel=0.1)
    assert res.fit.params["sigma"] == pytest.approx(1.0, rel=0.2)
    assert np.isnan(res.osi) and np.isnan(res.baseline_hz)
    assert res.plot().get_xscale() == "log"


def test_fixed_parameters_select_presentations_and_sem():
    onset = np.arange(8) * 1.0
    params = {"ori": np.array([0, 90, 0, 90, 0, 90, 0, 90.0]),
              "contrast": np.array([1, 1, 0.5, 0.5, 1, 1, 0.5, 0.5])}
    pres = Presentations(onset, onset + 0.5, np.array([0, 1, 2, 3, 0, 1, 2, 3]), params)
    # spikes: 2 in the first sweep, 4 in the fifth (both ori 0 contrast 1)
    t = np.r_[0.1, 0.2, 4.1, 4.2, 4.3, 4.4]
    res = compute_tuning(t, pres, "ori", fixed={"contrast": 1.0}, fit=None)
    np.testing.assert_array_equal(res.values, [0, 90])
    assert res.mean_rate_hz[0] == pytest.approx(6.0)  # (4 + 8) / 2 Hz
    assert res.sem_hz[0] == pytest.approx(np.std([4.0, 8.0], ddof=1) / np.sqrt(2))
    assert res.mean_rate_hz[1] == 0
    late = res.recompute(delay_ms=150.0, window_ms=100.0)
    assert late.mean_rate_hz[0] == pytest.approx((0 + 2 / 0.1) / 2)  # 4.2, 4.3 in [4.15, 4.25)


def test_psth_per_condition_and_blank():
    rng = np.random.default_rng(13)
    oris = np.array([0.0, 90.0])
    t, pres = simulate(rng, oris, lambda x: 60.0 if x == 0 else 5.0, 30, "ori",
                       blank_rate=1.0, blank_every=3)
    res = compute_psth(t, pres, by="ori", pre_ms=100.0, post_ms=600.0, bin_ms=50.0)
    assert res.labels == [0.0, 90.0, "blank"]
    during = (res.bin_centers_ms > 0) & (res.bin_centers_ms < 500)
    assert res.rate_hz[0, during].mean() == pytest.approx(60, rel=0.15)
    assert res.rate_hz[1, during].mean() == pytest.approx(5, rel=0.4)
    assert res.n_trials.tolist() == [30, 30, int(pres.is_blank.sum())]
    assert len(res.raster_ms[0]) == 30 and all(np.all(r >= -100) for r in res.raster_ms[0])
    smooth = res.recompute(sigma_ms=50.0)
    assert smooth.rate_hz.shape == res.rate_hz.shape
    axes = res.plot()
    assert len(axes) == 2
