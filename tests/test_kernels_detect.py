"""The detection kernel: accuracy, lockout, both detectors, noise, block invariance, bad input."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import signal
from synth import make_recording, match, spike_shape

from oe_plugin.kernels.bandpass import default_band_sos
from oe_plugin.kernels.detector import SpikeDetector
from oe_plugin.probe import Probe, neighbour_lists
from oe_plugin.settings import DetectSettings, FilterSettings

FS = 30000.0


def detect(data, splits=None, online=False, neighbours=None, **kw):
    det = SpikeDetector(
        data.shape[0], FS, FilterSettings(), DetectSettings(**kw), neighbours, max_block=4096
    )
    edges = [0, *(splits or []), data.shape[1]]
    parts = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        block = np.ascontiguousarray(data[:, a:b])
        if online:
            n = det.process_online(block)
            parts.append(det.events(n))
        else:
            parts.append(det.process(block))
    return np.concatenate(parts), det


def line_probe(n, pitch_um=50.0, groups=None):
    pos = np.c_[np.zeros(n), np.arange(n) * pitch_um]
    return Probe("line", pos, np.zeros(n, int) if groups is None else np.asarray(groups))


@pytest.fixture(scope="module")
def synthetic():
    return make_recording(n_channels=4, duration_s=6.0, snr=6.0, seed=11)


@pytest.mark.parametrize("method", ["bipolar", "multiphasic"])
def test_recall_and_precision_at_snr6(synthetic, method):
    data, truth = synthetic
    events, det = detect(data, method=method)
    tol = int(0.5e-3 * FS)
    recall, precision = match(events["sample_index"], events["channel_index"], truth, tol)
    assert len(truth) > 150
    assert recall >= 0.95, recall
    assert precision >= 0.95, precision
    # event times sit on the trough (the filter's delay is a few samples at most)
    assert det.stats["events_dropped"] == 0


def test_noise_estimate_tracks_the_filtered_noise_level():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3, int(3 * FS))) * np.array([[5.0], [20.0], [60.0]])).astype(
        np.float32
    )
    _, det = detect(x)
    sos = default_band_sos(FS)
    true_sd = signal.sosfilt(sos, x.astype(float), axis=1)[:, 3000:].std(axis=1)
    np.testing.assert_allclose(det.noise_uv, true_sd, rtol=0.06)


def test_noise_adapts_slowly_to_a_change():
    rng = np.random.default_rng(4)
    quiet = rng.standard_normal((1, int(2 * FS))) * 10
    loud = rng.standard_normal((1, int(4 * FS))) * 30
    x = np.concatenate([quiet, loud], axis=1).astype(np.float32)
    det = SpikeDetector(1, FS)
    det.process(np.ascontiguousarray(x[:, : int(2.1 * FS)]))
    early = float(det.noise_uv[0])
    det.process(np.ascontiguousarray(x[:, int(2.1 * FS) :]))
    late = float(det.noise_uv[0])
    assert early < 1.5 * (late / 3)  # still near the quiet level 0.1 s after the change
    assert late > 2.5 * early  # but follows the new level within seconds


def _two_spikes(t1, c1, a1, t2, c2, a2, n_channels=4, n=int(0.6 * FS)):
    shape, trough = spike_shape(FS)
    x = np.zeros((n_channels, n), dtype=np.float32)
    for t, c, a in ((t1, c1, a1), (t2, c2, a2)):
        x[c, t - trough : t - trough + len(shape)] += a * shape
    return x


def test_lockout_same_channel_keeps_the_larger_within_the_window():
    t0 = int(0.3 * FS)
    lock = DetectSettings().lockout_us * 1e-6 * FS  # 9 samples
    # thresholds well above the band-pass's ringing (~12 % of a spike's size)
    close = _two_spikes(t0, 0, 200, t0 + int(lock) - 3, 0, 300)
    ev, _ = detect(close, threshold_uv=100)
    assert len(ev) == 1
    apart = _two_spikes(t0, 0, 200, t0 + 60, 0, 300)
    ev, _ = detect(apart, threshold_uv=100)
    assert len(ev) == 2 and ev["amplitude"][1] < ev["amplitude"][0] < -100


def test_spatial_lockout_places_the_event_on_the_largest_channel():
    t0 = int(0.3 * FS)
    probe = line_probe(4, pitch_um=50)
    nb = neighbour_lists(probe, 175.0)
    x = _two_spikes(t0, 1, 150, t0 + 2, 2, 300)  # one spike seen on two neighbours
    ev, _ = detect(x, threshold_uv=70, neighbours=nb, lockout_radius_um=175)
    assert len(ev) == 1 and ev["channel_index"][0] == 2
    # without spatial coupling both channels report
    ev, _ = detect(x, threshold_uv=70)
    assert sorted(ev["channel_index"]) == [1, 2]
    # beyond the radius, or in another group, both report
    far = line_probe(4, pitch_um=200)
    ev, _ = detect(x, threshold_uv=70, neighbours=neighbour_lists(far, 175.0))
    assert len(ev) == 2
    split = line_probe(4, pitch_um=50, groups=[0, 0, 1, 1])
    ev, _ = detect(x, threshold_uv=70, neighbours=neighbour_lists(split, 175.0))
    assert len(ev) == 2


def test_multiphasic_rejects_monophasic_steps_bipolar_does_not():
    n = int(0.6 * FS)
    x = np.zeros((1, n), dtype=np.float32)
    t0 = int(0.3 * FS)
    x[0, t0:] = -400.0  # a step: after the band-pass a single negative transient
    x[0, int(0.45 * FS) :] = -400.0
    bip, _ = detect(x, threshold_uv=50, method="bipolar")
    multi, _ = detect(x, threshold_uv=50, method="multiphasic", phase2_fraction=0.5)
    assert len(bip) >= 1
    assert len(multi) < len(bip)
    spikes = _two_spikes(t0, 0, 200, t0 + 600, 0, 200, n_channels=1)
    multi, _ = detect(spikes, threshold_uv=50, method="multiphasic")
    assert len(multi) == 2


def test_polarity():
    t0 = int(0.3 * FS)
    x = _two_spikes(t0, 0, 200, t0 + 1500, 1, -200, n_channels=2)  # second one inverted
    neg, _ = detect(x, threshold_uv=60, polarity="negative")
    pos, _ = detect(x, threshold_uv=60, polarity="positive")
    both, _ = detect(x, threshold_uv=60, polarity="both")
    assert (neg["amplitude"] < 0).all() and (pos["amplitude"] > 0).all()
    assert 0 in neg["channel_index"] and 1 in pos["channel_index"]
    assert len(both) >= 2


def test_fixed_threshold_detects_from_the_first_samples():
    x = _two_spikes(200, 0, 200, 400, 0, 200, n_channels=1)
    fixed, _ = detect(x, threshold_uv=50)
    assert len(fixed) == 2
    mad, _ = detect(x)  # the noise rule waits for its initial window
    assert len(mad) == 0


def test_bad_samples_never_break_the_detector(synthetic):
    data, truth = synthetic
    x = data.copy()
    x[0, 1000:1100] = np.nan
    x[1, 2000] = np.inf
    x[2, 3000:3010] = -np.inf
    x[3, 4000] = 3e38
    events, det = detect(x, online=True, splits=[5, 6, 7000])
    assert det.stats["nonfinite_samples"] == 100 + 1 + 10
    assert np.isfinite(det.zi).all() and np.isfinite(det.noise_uv).all()
    recall, _ = match(events["sample_index"], events["channel_index"], truth, 15)
    assert recall >= 0.9


@pytest.fixture(scope="module")
def invariance_data():
    probe = line_probe(5, pitch_um=60)
    data, _ = make_recording(
        n_channels=5, duration_s=1.2, snr=5.0, rate_hz=25, positions_um=probe.positions_um, seed=7
    )
    return data, neighbour_lists(probe, 130.0)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=36000), max_size=20),
    method=st.sampled_from(["bipolar", "multiphasic"]),
    polarity=st.sampled_from(["negative", "both"]),
    online=st.booleans(),
)
def test_block_invariance(invariance_data, cuts, method, polarity, online):
    data, nb = invariance_data
    kw = dict(method=method, polarity=polarity, noise_init_ms=50, noise_window_ms=40)
    whole, _ = detect(data, neighbours=nb, lockout_radius_um=130, **kw)
    assert len(whole) > 20
    parts, _ = detect(data, sorted(set(cuts)), online, nb, lockout_radius_um=130, **kw)
    np.testing.assert_array_equal(whole, parts)


def test_one_sample_blocks_equal_one_call(invariance_data):
    data, nb = invariance_data
    short = np.ascontiguousarray(data[:, :4000])
    whole, _ = detect(short, neighbours=nb, threshold_uv=30)
    singles, _ = detect(short, list(range(1, 4000)), True, nb, threshold_uv=30)
    assert len(whole) > 0
    np.testing.assert_array_equal(whole, singles)


def test_reset_starts_a_new_acquisition(synthetic):
    data, _ = synthetic
    first, det = detect(data)
    det.reset()
    again = det.process(data.copy())
    np.testing.assert_array_equal(first, again)


def test_write_downstream_replaces_block_with_filtered_signal():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 5000)) * 20).astype(np.float32)
    det = SpikeDetector(2, FS, FilterSettings(write_downstream=True))
    block = x.copy()
    det.process_online(block)
    sos = default_band_sos(FS)
    np.testing.assert_allclose(block, signal.sosfilt(sos, x.astype(float), axis=1), atol=1e-3)
    det2 = SpikeDetector(2, FS)
    block2 = x.copy()
    det2.process_online(block2)
    np.testing.assert_array_equal(block2, x)


def test_sample_major_input_gives_the_same_events(invariance_data):
    data, nb = invariance_data
    whole, _ = detect(data, neighbours=nb, threshold_uv=30)
    det = SpikeDetector(5, FS, FilterSettings(), DetectSettings(threshold_uv=30), nb)
    rows = np.ascontiguousarray(data.T)
    parts = [det.process_rows(rows[a : a + 777]) for a in range(0, rows.shape[0], 777)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # write_downstream works in the sample-major layout too
    det = SpikeDetector(5, FS, FilterSettings(write_downstream=True))
    filtered_rows = rows.copy()
    det.process_rows(filtered_rows)
    det2 = SpikeDetector(5, FS, FilterSettings(write_downstream=True))
    filtered = data.copy()
    det2.process(filtered)
    np.testing.assert_array_equal(filtered_rows, filtered.T)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 300), seed=st.integers(0, 2**31), coarse=st.booleans(),
       nan=st.booleans(), inf=st.booleans(), flat=st.booleans())
def test_abs_row_medians_equal_numpy(n, seed, coarse, nan, inf, flat):
    """The offline noise level's radix-select medians are np.median's, bit for bit: odd and
    even lengths, ties (coarse values), flat rows, +inf and NaN."""
    from oe_plugin.kernels.noise import abs_row_medians

    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal((4, n)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    if coarse:
        x = np.round(x, 1)
    if flat:
        x[1] = 0
    if inf:
        x[2, rng.integers(n)] = np.inf
    if nan:
        x[3, rng.integers(n)] = np.nan
    before = x.copy()
    out = np.empty(4, np.float32)
    abs_row_medians(x, out)
    np.testing.assert_array_equal(out, np.median(x, axis=1))
    np.testing.assert_array_equal(x, before)  # the input is left as it was
