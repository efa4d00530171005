"""Spike-train analyses against analytic cases: Poisson (flat ACG, exponential ISI), a
refractory train, a known cross-correlation lag, rates."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from offline.analysis.correlograms import (  # noqa: E402
    compute_autocorrelograms,
    compute_correlograms,
)
from offline.analysis.isi import compute_isi  # noqa: E402
from offline.analysis.rates import compute_rate  # noqa: E402


def poisson(rng, rate_hz, duration_s, dead_s=0.0):
    isi = rng.exponential(1.0 / rate_hz, int(rate_hz * duration_s * 1.3) + 10) + dead_s
    t = np.cumsum(isi)
    return t[t < duration_s]


def brute_ccg(a, b, bin_ms, window_ms, same=False):
    d = (b[None, :] - a[:, None]) * 1e3
    if same:
        d = d[~np.eye(a.size, dtype=bool)]
    k = np.floor(d.ravel() / bin_ms + 0.5)
    half = int(round(window_ms / bin_ms))
    k = k[np.abs(k) <= half].astype(int)
    return np.bincount(k + half, minlength=2 * half + 1)


def test_correlograms_equal_brute_force_and_are_antisymmetric():
    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0, 20, n)) for n in (300, 500, 50)]
    res = compute_correlograms(trains, bin_ms=2.0, window_ms=30.0)
    for i in range(3):
        for j in range(3):
            np.testing.assert_array_equal(
                res.counts[i, j], brute_ccg(trains[i], trains[j], 2.0, 30.0, same=i == j))
    np.testing.assert_array_equal(res.counts[0, 1], res.counts[1, 0][::-1])
    acg = compute_autocorrelograms(trains, bin_ms=2.0, window_ms=30.0)
    np.testing.assert_array_equal(acg.counts, res.counts[[0, 1, 2], [0, 1, 2]])


def test_integer_samples_and_threads_give_the_same_counts():
    rng = np.random.default_rng(1)
    fs = 30000.0
    samples = [np.sort(rng.integers(0, int(60 * fs), 2000)) for _ in range(4)]
    a = compute_correlograms(samples, sample_rate_hz=fs, n_threads=1)
    b = compute_correlograms(samples, sample_rate_hz=fs, n_threads=2)
    np.testing.assert_array_equal(a.counts, b.counts)
    c = compute_correlograms([s / fs for s in samples])  # seconds, µs ticks
    np.testing.assert_array_equal(a.counts, c.counts)


def test_poisson_acg_is_flat_at_the_expected_level():
    rng = np.random.default_rng(2)
    rate, dur, bin_ms = 20.0, 600.0, 1.0
    t = poisson(rng, rate, dur)
    res = compute_autocorrelograms([t], bin_ms=bin_ms, window_ms=50.0)
    expected = t.size * rate * bin_ms * 1e-3  # pairs per bin for independent spikes
    counts = res.counts[0]
    assert abs(counts.mean() / expected - 1) < 0.03
    # flat: per-bin counts scatter like Poisson around the mean (chi-square per dof ~ 1)
    chi2 = np.sum((counts - counts.mean()) ** 2 / counts.mean()) / (counts.size - 1)
    assert 0.6 < chi2 < 1.6
    # no trend with lag
    assert abs(np.polyfit(np.abs(res.lags_ms), counts, 1)[0]) < 0.05 * expected / 10


def test_poisson_isi_is_exponential():
    rng = np.random.default_rng(3)
    rate = 25.0
    t = poisson(rng, rate, 400.0)
    res = compute_isi(t, bin_ms=2.0, max_ms=200.0)
    centres = (res.edges_ms[:-1] + res.edges_ms[1:]) / 2
    fit = np.polyfit(centres[res.counts > 20], np.log(res.counts[res.counts > 20]), 1)
    assert fit[0] * -1e3 == pytest.approx(rate, rel=0.06)  # slope = -rate (per ms)
    assert np.mean(res.isi_ms) == pytest.approx(1e3 / rate, rel=0.03)
    assert res.contamination == pytest.approx(0.5, abs=0.1)  # Hill et al. for no refractoriness
    log = res.recompute(log_bins=True, min_ms=0.1, max_ms=1000.0)
    assert log.counts.sum() == pytest.approx(t.size - 1, rel=0.01)
    assert np.allclose(np.diff(np.log10(log.edges_ms)), 1 / 20)


def test_refractory_train_has_no_violations_and_an_empty_acg_centre():
    rng = np.random.default_rng(4)
    t = poisson(rng, 30.0, 300.0, dead_s=0.003)
    isi = compute_isi(t, refractory_ms=2.5)
    assert isi.n_violations == 0 and isi.contamination == 0.0
    acg = compute_autocorrelograms([t], bin_ms=1.0, window_ms=20.0)
    centre = np.abs(acg.lags_ms) <= 2.0  # bins up to 2.5 ms
    assert acg.counts[0][centre].sum() == 0
    assert acg.counts[0][~centre].min() > 0
    # add 20 spikes 0.5 ms after others: 20 violations
    extra = t[rng.choice(t.size - 1, 20, replace=False)] + 0.0005
    isi2 = compute_isi(np.sort(np.r_[t, extra]), refractory_ms=2.5)
    assert isi2.n_violations == 20


def test_known_cross_correlation_lag_is_recovered():
    rng = np.random.default_rng(5)
    a = poisson(rng, 10.0, 600.0)
    follow = a[rng.random(a.size) < 0.5] + 0.007
    b = np.sort(np.r_[follow, poisson(rng, 10.0, 600.0)])
    res = compute_correlograms({"a": a, "b": b}, bin_ms=1.0, window_ms=30.0)
    ccg = res.ccg("a", "b")
    assert res.lags_ms[np.argmax(ccg)] == 7.0
    assert res.lags_ms[np.argmax(res.ccg("b", "a"))] == -7.0
    peak_excess = ccg.max() - np.median(ccg)
    assert peak_excess == pytest.approx(follow.size, rel=0.1)
    rate = res.rate_hz()
    assert rate.shape == res.counts.shape
    ax = res.plot()
    assert ax.shape == (2, 2)


def test_rates_binned_and_smoothed_keep_the_spike_count():
    rng = np.random.default_rng(6)
    t = np.sort(np.r_[rng.uniform(0, 10, 100), rng.uniform(10, 20, 500)])
    binned = compute_rate(t, t_start_s=0.0, t_stop_s=20.0, bin_ms=1000.0)
    assert binned.rate_hz.sum() * 1.0 == 600
    assert binned.rate_hz[:10].mean() == pytest.approx(10.0)
    assert binned.rate_hz[10:].mean() == pytest.approx(50.0)
    smooth = binned.recompute(kernel="gaussian", sigma_ms=200.0, step_ms=5.0)
    inner = (smooth.t_s > 1) & (smooth.t_s < 19)
    total = smooth.rate_hz.sum() * 5e-3
    assert total == pytest.approx(600, rel=0.02)
    assert smooth.rate_hz[inner & (smooth.t_s < 9)].mean() == pytest.approx(10, rel=0.15)
    assert smooth.rate_hz[inner & (smooth.t_s > 11)].mean() == pytest.approx(50, rel=0.1)
    with pytest.raises(TypeError, match="unknown setting"):
        binned.recompute(bin_size=3)
    assert smooth.plot().get_xlabel() == "time (s)"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n_units=st.integers(1, 4), bin_samples=st.integers(1, 40),
       half_bins=st.integers(0, 12))
def test_correlograms_match_brute_force_on_integer_samples(seed, n_units, bin_samples,
                                                           half_bins):
    """Exact integer lags (ties and zero lags included) against an explicit pair count."""
    rng = np.random.default_rng(seed)
    fs = 30000.0
    trains = [np.sort(rng.integers(0, 3000, rng.integers(0, 40))) for _ in range(n_units)]
    bin_ms = bin_samples / fs * 1e3
    res = compute_correlograms(trains, bin_ms=bin_ms, window_ms=half_bins * bin_ms,
                               sample_rate_hz=fs, n_threads=1)
    assert res.counts.shape == (n_units, n_units, 2 * half_bins + 1)
    for i in range(n_units):
        for j in range(n_units):
            d = (trains[j][None, :] - trains[i][:, None]).astype(np.float64)
            if i == j:
                d = d[~np.eye(trains[i].size, dtype=bool)]
            k = np.floor(d.ravel() / bin_samples + 0.5)
            k = k[np.abs(k) <= half_bins].astype(int)
            want = np.bincount(k + half_bins, minlength=2 * half_bins + 1)
            np.testing.assert_array_equal(res.counts[i, j], want)
    acg = compute_autocorrelograms(trains, bin_ms=bin_ms, window_ms=half_bins * bin_ms,
                                   sample_rate_hz=fs)
    np.testing.assert_array_equal(acg.counts, res.counts[np.arange(n_units), np.arange(n_units)])
