"""The sort's quality metrics (``offline/sort/metrics.py``) against SpikeInterface's on the same
sorting: a small synthetic recording and its true spike trains go into a SpikeInterface
``SortingAnalyzer``; its ``quality_metrics`` must equal ours computed from the same spike
trains (firing rate, ISI violation ratio, presence ratio), the same amplitudes (amplitude
cutoff) and the same templates and noise (SNR). Then the edge cases of each definition, checked
against SpikeInterface's per-unit functions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import spikeinterface.core as sic
from probeinterface import Probe
from spikeinterface.metrics.quality import misc_metrics as si_misc
from synth import spike_shape

from offline.sort.metrics import (
    amplitude_cutoff,
    isi_violations,
    label,
    presence_bin_s,
    presence_ratio,
    unit_metrics,
)
from offline.sort.settings import QualitySettings, settings_from_table

FS = 10000.0
DURATION_S = 47.3  # not a whole number of presence bins: the remainder is left out
N_CH = 4
NOISE_UV = 10.0


def _poisson(rng, rate_hz, t0_s, t1_s, refractory_s=0.002):
    t = np.sort(rng.uniform(t0_s, t1_s, rng.poisson(rate_hz * (t1_s - t0_s))))
    return t[np.r_[True, np.diff(t) > refractory_s]]


@pytest.fixture(scope="module")
def sorting_case():
    """Three units: u0 clean with 6 injected ISI violations, u1 with its small spikes lost below
    a detection cut (amplitude cutoff > 0), u2 with 60-odd spikes in the first 15 s only
    (too few for an amplitude cutoff, presence ratio < 1)."""
    rng = np.random.default_rng(3)
    n = int(DURATION_S * FS)
    trains_s = [_poisson(rng, 18.0, 0.01, DURATION_S - 0.01),
                _poisson(rng, 25.0, 0.01, DURATION_S - 0.01),
                _poisson(rng, 4.0, 0.01, 15.0)]
    extra = rng.choice(trains_s[0][:-1], 6, replace=False) + 0.0008
    trains_s[0] = np.sort(np.r_[trains_s[0], extra])
    scales = [rng.normal(1.0, 0.1, len(trains_s[0])),
              rng.normal(1.0, 0.25, 3 * len(trains_s[1])),
              rng.normal(1.0, 0.1, len(trains_s[2]))]
    keep = scales[1] > 0.85  # the detection cut: the left of u1's distribution is missing
    scales[1] = scales[1][keep][: len(trains_s[1])]
    trains_s[1] = trains_s[1][: len(scales[1])]
    shape, trough = spike_shape(FS)
    traces = rng.normal(0, NOISE_UV, (n, N_CH)).astype(np.float32)
    peak_uv = (-120.0, -90.0, -150.0)
    spikes = []
    for u, (t_s, sc) in enumerate(zip(trains_s, scales, strict=True)):
        gain = np.exp(-np.abs(np.arange(N_CH) - (u + 0.3)) * 1.2)  # main channel u
        samples = np.round(t_s * FS).astype(np.int64)
        for s, a in zip(samples, sc, strict=True):
            lo = s - trough
            traces[lo:lo + len(shape)] += (a * -peak_uv[u]) * np.outer(shape, gain)
        spikes.append(samples)
    labels = np.concatenate([np.full(len(s), u) for u, s in enumerate(spikes)])
    samples = np.concatenate(spikes)
    order = np.argsort(samples, kind="stable")
    recording = sic.NumpyRecording(traces, FS)
    probe = Probe(ndim=2, si_units="um")
    probe.set_contacts(np.c_[np.zeros(N_CH), 25.0 * np.arange(N_CH)], shapes="circle",
                       shape_params={"radius": 5})
    probe.set_device_channel_indices(np.arange(N_CH))
    recording.set_probe(probe)
    sorting = sic.NumpySorting.from_samples_and_labels([samples[order]], [labels[order]], FS)
    return recording, sorting, spikes, n


@pytest.fixture(scope="module")
def analyzer(sorting_case):
    recording, sorting, _, _ = sorting_case
    an = sic.create_sorting_analyzer(sorting, recording, sparse=False, format="memory")
    an.compute(["random_spikes", "templates", "noise_levels"])
    an.compute("amplitude_scalings")
    return an


@pytest.mark.slow
def test_metrics_equal_spikeinterface_on_one_sorting(sorting_case, analyzer):
    _, sorting, spikes, n_samples = sorting_case
    bin_s = presence_bin_s(DURATION_S, 60.0)
    assert bin_s == pytest.approx(DURATION_S / 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SI warns about u2's NaN amplitude cutoff
        qm = analyzer.compute(
            "quality_metrics",
            metric_names=["firing_rate", "isi_violation", "presence_ratio", "snr",
                          "amplitude_cutoff"],
            metric_params={"presence_ratio": {"bin_duration_s": bin_s}},
        ).get_data()
    templates = analyzer.get_extension("templates").get_data()  # (U, W, C) µV
    noise = analyzer.get_extension("noise_levels").get_data()  # (C,) µV
    amps = analyzer.get_extension("amplitude_scalings").get_data(outputs="by_unit",
                                                                 concatenated=True)
    spike_t = np.concatenate(spikes)
    spike_unit = np.concatenate([np.full(len(s), u) for u, s in enumerate(spikes)])
    amplitudes = np.concatenate([amps[u] for u in sorting.unit_ids])
    ours = unit_metrics(spike_t, spike_unit, amplitudes, templates.transpose(0, 2, 1), noise,
                        FS, n_samples / FS)
    main = analyzer.get_main_channels(outputs="index")
    for u, m in zip(sorting.unit_ids, ours, strict=True):
        si = qm.loc[u]
        assert m["peak_channel"] == main[u]
        assert m["firing_rate_hz"] == pytest.approx(si["firing_rate"], rel=1e-12)
        assert m["isi_violation_ratio"] == pytest.approx(si["isi_violations_ratio"], rel=1e-12)
        assert m["presence_ratio"] == pytest.approx(si["presence_ratio"], rel=1e-12)
        assert m["snr"] == pytest.approx(si["snr"], rel=1e-6)
        assert m["amplitude_cutoff"] == pytest.approx(si["amplitude_cutoff"], rel=1e-12,
                                                      nan_ok=True)
    # the case exercises each definition beyond its trivial value
    assert ours[0]["isi_violation_ratio"] > 0 and ours[1]["isi_violation_ratio"] == 0
    assert ours[1]["amplitude_cutoff"] > 0 and np.isnan(ours[2]["amplitude_cutoff"])
    assert 0 < ours[2]["presence_ratio"] < 0.5 and ours[0]["presence_ratio"] == 1


@pytest.mark.parametrize("seed", range(6))
def test_amplitude_cutoff_equals_spikeinterface(seed):
    rng = np.random.default_rng(seed)
    # bimodal from seed 1: the smoothed histogram crosses its first bin's height more than once
    a = np.r_[rng.normal(50, 8, 700), rng.normal(90, 5, 150 * seed)]
    a = a[a > 40 + 2 * seed]
    for amps in (a, -a, a[:499], a[:500]):
        want = si_misc.amplitude_cutoff(-amps if np.median(amps) < 0 else amps)
        assert amplitude_cutoff(amps) == pytest.approx(want, rel=1e-12, nan_ok=True)
    assert np.isnan(amplitude_cutoff(a[:499]))  # below 5 spikes per bin of 100
    assert np.isfinite(amplitude_cutoff(a[:500]))


def test_isi_and_presence_edge_cases_equal_spikeinterface():
    dur = 30.0
    for t in (np.array([]), np.array([1.0]), np.array([1.0, 1.001, 1.0015, 5.0])):
        ratio, _ = isi_violations(t, dur)
        want = si_misc.isi_violations([t], dur)[0]
        assert ratio == pytest.approx(want, nan_ok=True)
    n = int(25.5 * FS)
    # bins [0, 1 s), [1, 2 s), ..., [24, 25 s] (the last edge counts, as in np.histogram);
    # 254_999 falls in the partial bin left out
    s = np.array([0, 9999, 10000, 249_999, 250_000, 254_999])
    edges = np.arange(0, n // 10000 * 10000 + 1, 10000)
    assert presence_ratio(s, n, FS, 1.0) == pytest.approx(
        si_misc.presence_ratio(s, bin_edges=edges))
    assert presence_ratio(s, n, FS, 1.0) == 3 / 25
    assert np.isnan(presence_ratio(s, n, FS, 30.0))  # recording shorter than a bin
    assert np.isnan(presence_ratio(s[:0], n, FS, 1.0))


def test_good_label_bounds_come_from_the_quality_settings():
    m = {"isi_violation_ratio": 0.2, "snr": 6.0, "presence_ratio": 0.95}
    assert label(m) == "good"
    strict = settings_from_table({"quality": {"good_min_snr": 7.0}}).quality
    assert label(m, strict) == "mua"
    assert label({**m, "presence_ratio": float("nan")}) == "mua"
    assert label({**m, "isi_violation_ratio": 0.5}) == "mua"
    assert label(m, QualitySettings(good_max_isi_violation_ratio=0.1)) == "mua"
    from oe_plugin.config import SettingsError

    with pytest.raises(SettingsError, match="quality.good_min_presence_ratio"):
        settings_from_table({"quality": {"good_min_presence_ratio": 1.5}})
    with pytest.raises(SettingsError, match="quality.good_snr: unknown key"):
        settings_from_table({"quality": {"good_snr": 5}})


def test_undefined_metrics_are_null_in_sort_json_and_nan_when_read(tmp_path):
    """A unit under 500 spikes has no amplitude cutoff (NaN): sort.json stays strict JSON
    (``null``) and load_sort gives NaN back; the label treats it like any failed bound."""
    import json

    from offline.sort.sortfile import ARRAYS, SortResult, load_sort, save_sort

    arrays = {k: np.zeros(0, np.float32) for k in ARRAYS}
    m = {"unit": 0, "n_spikes": 30, "snr": 9.0, "isi_violation_ratio": 0.0,
         "presence_ratio": 1.0, "amplitude_cutoff": amplitude_cutoff(np.ones(30))}
    assert np.isnan(m["amplitude_cutoff"])
    save_sort(tmp_path, SortResult(arrays, {"metrics": [m]}))

    def no_constants(name):
        raise AssertionError(f"sort.json holds {name}")

    doc = json.loads((tmp_path / "sort.json").read_text(), parse_constant=no_constants)
    assert doc["metrics"][0]["amplitude_cutoff"] is None and doc["metrics"][0]["snr"] == 9.0
    back = load_sort(tmp_path).meta["metrics"][0]
    assert np.isnan(back["amplitude_cutoff"]) and back["n_spikes"] == 30
    assert label(back) == "good"  # amplitude_cutoff is not one of the label's bounds
