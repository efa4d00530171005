"""``[match] source = "upstream"``: spikes from an upstream Spike Detector (``handle_spike``) are
classified with the matching kernel's C entry — in the host simulator and in the native runner
(no GIL) — with the electrode name / channel count mapped to stream channels."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from oe_plugin.host.blocks import RandomBlocks
from oe_plugin.host.native import NativeJob, find_compiler, run_native
from oe_plugin.host.session import run_session
from oe_plugin.host.sources import SyntheticSource, spike_waveform
from oe_plugin.online.match_model import load_sort_model
from oe_plugin.online.sorter_driver import UpstreamClassifier
from oe_plugin.settings import DetectSettings
from offline import read_online_spikes
from offline.sort.sortfile import SortResult, save_sort

ROOT = Path(__file__).resolve().parents[1]
FS = 30000.0
C = 8
W, PRE = 54, 18
WAVE, N_PRE = spike_waveform(FS)
# (channel rows, relative amplitude per row, trough µV on the first row)
UNITS = [((0,), (1.0,), 60.0), ((0,), (1.0,), 150.0), ((2, 3), (1.0, 0.4), 80.0)]
# (sample, channel, trough µV) -> expected unit
SPIKES = [(3000, 0, 60.0, 0), (6000, 0, 150.0, 1), (9000, 2, 80.0, 2), (12000, 5, 100.0, -1),
          (15000, 1, 60.0, -1), (18000, 0, 62.0, 0), (18500, 2, 75.0, 2), (24000, 0, 140.0, 1)]


def write_folder(folder):
    tpl = np.zeros((len(UNITS), 2, W), np.float32)
    chans = np.full((len(UNITS), 2), -1, np.int32)
    for u, (rows, rel, amp) in enumerate(UNITS):
        for k, (ch, r) in enumerate(zip(rows, rel, strict=True)):
            chans[u, k] = ch
            tpl[u, k, PRE - N_PRE:PRE - N_PRE + WAVE.size] = -amp * r * WAVE
    empty = {k: np.zeros(0, d) for k, d in (
        ("spike_index", np.int64), ("spike_index_sorting", np.int64), ("spike_unit", np.int32),
        ("spike_amplitude", np.float32), ("spike_amplitude_uv", np.float32),
        ("spike_error", np.float32), ("spike_channel", np.int32))}
    save_sort(folder, SortResult(dict(
        empty, templates_uv=tpl, template_channels=chans,
        template_peak_channel=chans[:, 0].copy(),
        template_threshold=np.full(len(UNITS), 3.0, np.float32),
        noise_uv=np.full(C, 10.0, np.float32),
        channel_positions_um=np.c_[np.zeros(C), np.arange(C) * 25.0]), dict(
        recording_sample_rate_hz=FS, upsample_factor=1, template_pre_samples=PRE, probe="x",
        settings={"preprocess": {"filter": "causal"}, "detect": asdict(DetectSettings()),
                  "sort": {"max_shift_samples": 2, "amplitude_min": 0.5,
                           "amplitude_max": 2.0}})))
    return Path(folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    sort_dir = write_folder(root / "sort")
    config = root / "online_sorter.toml"
    config.write_text(f'[match]\nsort_dir = "{sort_dir}"\nsource = "upstream"\n'
                      f"upstream_pre_samples = {N_PRE}\nupstream_samples = {WAVE.size}\n"
                      "ttl_units = [1]\nttl_lines = [4]\n")
    source = SyntheticSource(num_channels=C, sample_rate_hz=FS, duration_s=1.0, seed=2,
                             spikes=tuple((t, c, a) for t, c, a, _ in SPIKES),
                             upstream_spikes=True)
    return dict(sort_dir=sort_dir, config=config, source=source)


def check(recording_dir):
    got = read_online_spikes(recording_dir)
    np.testing.assert_array_equal(got["sample_number"], [s[0] for s in SPIKES])
    np.testing.assert_array_equal(got["unit"], [s[3] for s in SPIKES])
    np.testing.assert_array_equal(got["channel"], [s[1] for s in SPIKES])


def test_classifier_maps_electrodes_and_shapes(setup):
    model = load_sort_model(setup["sort_dir"], C, FS)
    up = UpstreamClassifier(model, C, N_PRE, WAVE.size)
    wave = (-80.0 * WAVE)[None, :]
    assert up.classify("Electrode 3", 100, wave) == 2
    assert up.classify("Electrode 9", 100, wave) == -2  # channel 8 of 8: not on this stream
    assert up.classify("Electrode 1", 100, wave[:, :-1]) == -2  # wrong length
    tetrode = np.zeros((4, WAVE.size), np.float32)  # "Tetrode 1" = channels 0..3
    tetrode[2] = -80.0 * WAVE
    tetrode[3] = -32.0 * WAVE
    assert up.classify("Tetrode 1", 200, tetrode) == 2
    late = np.roll(-150.0 * WAVE, 1)[None, :]  # one sample late: found at shift +1
    assert up.classify("Electrode 1", 300, late) == 1
    n = up.take(*(np.zeros(8, d) for d in (np.int64, np.int32, np.float32, np.int32)))
    assert n == 3 and up.n_unmapped == 2


def test_upstream_in_host_simulator(setup, tmp_path):
    report = run_session(ROOT / "oe_plugin" / "modules" / "online_sorter.py", setup["source"],
                         RandomBlocks(seed=1, max_size=3000, p_one=0.01),
                         recording_dir=tmp_path, config_path=setup["config"])
    check(tmp_path)
    assert 4 in set(report.events["line"].tolist())


@pytest.mark.slow
@pytest.mark.skipif(find_compiler() is None, reason="no C compiler for the native runner")
def test_upstream_in_native_runner(setup, tmp_path):
    report = run_native(NativeJob(ROOT / "oe_plugin" / "modules" / "online_sorter.py",
                                  setup["source"], 696, config_path=setup["config"],
                                  recording_dir=tmp_path, hang_timeout_s=30.0,
                                  timeout_s=120.0))
    assert report.runner == "native"
    check(tmp_path)


def test_upstream_through_the_pipeline_module(setup, tmp_path):
    """The pipeline module forwards handle_spike: the classified upstream spikes reach the spike
    file and the statistics."""
    from oe_plugin.outputs.stats_file import read_stats

    config = tmp_path / "pipeline.toml"
    config.write_text(setup["config"].read_text() + "[decoder]\nenabled = false\n"
                      "[stats]\nbin_s = 0.5\n")
    run_session(ROOT / "oe_plugin" / "modules" / "pipeline.py", setup["source"], 1024,
                recording_dir=tmp_path / "rec", config_path=config)
    check(tmp_path / "rec")
    arrays, _ = read_stats(tmp_path / "rec")
    units = np.array([s[3] for s in SPIKES])
    want = np.bincount(np.where(units >= 0, units, len(UNITS)), minlength=len(UNITS) + 1)
    np.testing.assert_array_equal(arrays["time_counts"].sum(axis=1), want)
