"""STA: linear-nonlinear model neurons driven by real sweep tables (the stimulus package's
m-sequence and sparse-noise experiments), frames rebuilt from the table + refresh times."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from offline.analysis.sta import compute_sta  # noqa: E402
from offline.analysis.stimframes import build_movie, frame_in_sweep  # noqa: E402
from stimulus.plan import build_plan  # noqa: E402
from stimulus.script import Runs, Variable  # noqa: E402
from stimulus.sweeptable import build_table  # noqa: E402

FS = 30000.0
R = 200.0
FIRST = 777


def refresh_samples(n):
    return FIRST + np.round(np.arange(n) * FS / R).astype(np.int64)


def ln_spikes(rng, movie, space, temporal, base, gain):
    """Spikes of an LN neuron: drive = sum over lags of temporal[lag] * <space, image>."""
    imgs = movie.images[movie.image_index].reshape(movie.image_index.size, -1)
    g = imgs @ space.ravel()
    drive = np.convolve(g, temporal)[: g.size]
    rate = np.exp(base + gain * drive / drive.std())
    counts = rng.poisson(rate / R)
    return np.repeat(movie.onset_s, counts) + rng.uniform(0, 1 / R, counts.sum())


def gaussian_rf(nx, ny, cx, cy):
    yy, xx = np.mgrid[0:ny, 0:nx]
    d2 = (xx - cx) ** 2 + (yy - cy) ** 2
    return np.exp(-d2 / (2 * 1.0**2)) - 0.4 * np.exp(-d2 / (2 * 2.2**2))


def test_msequence_sta_recovers_the_filter():
    rng = np.random.default_rng(0)
    static = dict(order=12, n_cells_x=8, n_cells_y=8, refreshes_per_frame=2)
    n_el = 2**12 - 1
    table = build_table(dict(frame_i=0, sweep_s=n_el * 2 / R, postsweep_s=0.0), Runs(4),
                        None, seed=3)
    plan = build_plan(table, R, preexp_s=0.1, postexp_s=0.1)
    samples = refresh_samples(plan.n_frames)
    kw = dict(seed=3, refresh_sample=samples, refresh_sweep=plan.code, sample_rate_hz=FS,
              refresh_hz=R)
    movie = build_movie("msequence", static, list(table.conditions),
                        refresh_frame_in_sweep=plan.frame_in_sweep, **kw)
    codes_only = build_movie("msequence", static, list(table.conditions), **kw)
    np.testing.assert_array_equal(movie.image_index, codes_only.image_index)
    # the images are the stimulus's own frames (row 0 = top)
    from stimulus.stimuli.msequence import frame_bits

    on = np.flatnonzero(plan.code == 0)
    k = on[1234]
    pos = plan.frame_in_sweep[k] // 2
    np.testing.assert_array_equal(movie.images[movie.image_index[k]],
                                  2.0 * frame_bits(12, None, 8, 8, pos) - 1)

    space = gaussian_rf(8, 8, 5, 2)
    lags = np.arange(16)  # refreshes
    temporal = np.exp(-(((lags - 8) / 2.5) ** 2)) - 0.4 * np.exp(-(((lags - 13) / 2.5) ** 2))
    spikes = ln_spikes(rng, movie, space, temporal, base=3.0, gain=0.6)
    assert spikes.size > 3000
    res = compute_sta(spikes, movie, lags_ms=np.arange(0, 100, 5.0))
    peak = res.sta[list(res.lags_ms).index(40.0)]  # temporal peak: 8 refreshes
    assert np.corrcoef(peak.ravel(), space.ravel())[0, 1] >= 0.9
    assert abs(res.peak_lag_ms - 40.0) <= 10.0
    # the whole spatio-temporal STA against the filter seen through 2-refresh elements
    seen = np.convolve(temporal, [0.5, 0.5])[: lags.size]
    full = np.einsum("l,yx->lyx", seen, space)
    assert np.corrcoef(res.sta[:16].ravel(), full.ravel())[0, 1] >= 0.8
    # display lag: built without the one-refresh correction, the STA is one refresh late
    late = compute_sta(spikes, build_movie("msequence", static, list(table.conditions),
                                           display_lag_frames=0, **kw),
                       lags_ms=np.arange(0, 100, 5.0))
    centre = (slice(None), 8 - 1 - 2, 5)
    a, b = res.sta[centre], late.sta[centre]
    assert np.corrcoef(a[:-1], b[1:])[0, 1] > np.corrcoef(a, b)[0, 1]
    assert late.peak_lag_ms >= res.peak_lag_ms
    assert len(res.plot()) == 10


def test_sparse_noise_sta_recovers_the_filter():
    rng = np.random.default_rng(1)
    static = dict(n_cells_x=8, n_cells_y=8, n_spots=1)
    dynamic = dict(xi=Variable(range(8), dim=0, shuffle=True),
                   yi=Variable(range(8), dim=1, shuffle=True),
                   spot_lum=Variable([0.0, 1.0], dim=2, shuffle=True),
                   bg_lum=0.5, sweep_s=0.05, postsweep_s=0.0)
    table = build_table(dynamic, Runs(20, reshuffle=True), None, seed=5)
    plan = build_plan(table, R, preexp_s=0.1, postexp_s=0.1)
    movie = build_movie("sparse_noise", static, list(table.conditions), seed=5,
                        refresh_sample=refresh_samples(plan.n_frames), refresh_sweep=plan.code,
                        sample_rate_hz=FS, refresh_hz=R)
    c = table.conditions[7]
    img = movie.images[7]
    assert img[8 - 1 - c["yi"], c["xi"]] == (1 if c["spot_lum"] > 0.5 else -1)
    assert np.count_nonzero(img) == 1 and not movie.images[-1].any()
    space = gaussian_rf(8, 8, 2, 5)
    lags = np.arange(20)
    temporal = np.exp(-(((lags - 10) / 2.0) ** 2))  # peak 50 ms
    spikes = ln_spikes(rng, movie, space, temporal, base=3.5, gain=0.4)
    res = compute_sta(spikes, movie, lags_ms=np.arange(0, 150, 10.0))
    assert res.peak_lag_ms == pytest.approx(50.0, abs=10.0)
    peak = res.sta[list(res.lags_ms).index(50.0)]
    assert np.corrcoef(peak.ravel(), space.ravel())[0, 1] >= 0.9


def test_frame_in_sweep_restarts_at_each_sweep_change():
    codes = np.array([5, 5, 5, 65535, 65535, 2, 2, 5])
    np.testing.assert_array_equal(frame_in_sweep(codes), [0, 1, 2, 0, 1, 0, 1, 0])
    fn = np.array([0, 1, 3, 4, 5, 6, 7, 8])  # a dropped refresh after frame 1
    np.testing.assert_array_equal(frame_in_sweep(codes, fn), [0, 1, 3, 0, 1, 0, 1, 0])
