"""The spike-detector module as the Open Ephys Python Processor runs it.

Through the pure-Python host (Contract 1: events before process, fresh float32 blocks,
block-start stamping, crash semantics) and through the native runner, which calls process() on
a second thread without the GIL, as the GUI does.
"""

from pathlib import Path

import numpy as np
import pytest

from oe_plugin.config import SettingsError
from oe_plugin.host.blocks import ExplicitBlocks, RandomBlocks
from oe_plugin.host.errors import ModuleInitError
from oe_plugin.host.native import NativeJob, find_compiler, run_native
from oe_plugin.host.session import run_session
from oe_plugin.host.simulator import Host
from oe_plugin.host.sources import RecordingSource, SyntheticSource
from offline import read_online_spikes
from offline.detect import detect_recording
from offline.recording import open_recording

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "oe_plugin" / "modules" / "spike_detector.py"
GUI_CONFIG = ROOT / "examples" / "gui_spike_detector.toml"
DATA = ROOT.parent / "shared" / "data" / "openephys-example-0.6.7"


def write_config(tmp_path, text):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def offline_reference():
    """Offline detection of Record Node 101 with the GUI's Spike Detector settings."""
    from offline.cli import _load_detection_settings

    filt, det = _load_detection_settings(str(GUI_CONFIG))
    peaks, _ = detect_recording(open_recording(DATA, node=101), filt, det)
    assert len(peaks) > 500
    return peaks


def assert_same_spikes(spikes, peaks):
    assert len(spikes) == len(peaks)
    np.testing.assert_array_equal(spikes["sample_number"], peaks["sample_index"])
    np.testing.assert_array_equal(spikes["channel"], peaks["channel_index"])
    np.testing.assert_array_equal(spikes["amplitude_uv"], peaks["amplitude_uv"])
    assert (spikes["unit"] == -1).all()


@pytest.mark.slow
@pytest.mark.parametrize("blocks", [None, RandomBlocks(seed=3), 1])
def test_real_recording_equals_offline_detection(tmp_path, offline_reference, blocks):
    source = RecordingSource(DATA, node=101)
    if blocks == 1:  # one-sample blocks over the first 0.25 s only (slow in Python)
        source = RecordingSource(DATA, node=101, stop_index=10000)
    report = run_session(MODULE, source, blocks, recording_dir=tmp_path, config_path=GUI_CONFIG)
    spikes = read_online_spikes(tmp_path)
    # the source keeps the recording's sample numbers (as the File Reader does): the module
    # re-bases its count on the TTL events' numbers and writes stream sample numbers
    assert spikes["sample_number"].min() > source.first_sample_number > 0
    spikes["sample_number"] -= source.first_sample_number
    if blocks == 1:
        ref = offline_reference[offline_reference["sample_index"] < 10000 - 40]
        spikes = spikes[spikes["sample_number"] < 10000 - 40]
        assert_same_spikes(spikes, ref)
    else:
        assert report.n_samples == source.n_samples
        assert_same_spikes(spikes, offline_reference)


def test_adversarial_blocks_never_reach_the_host(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [0, 1, 0, 2, 1, 4096, 0, 1, 696, 13, 8193, 1, 0, 20000, 3]
    n = sum(sizes)
    spikes = [(int(t), int(rng.integers(0, 8)), -150.0) for t in rng.integers(100, n - 100, 40)]
    source = SyntheticSource(
        num_channels=8, sample_rate_hz=30000.0, duration_s=n / 30000.0, spikes=spikes, seed=1
    )
    config = write_config(tmp_path, "[detect]\nthreshold_uv = 60.0\n[ttl]\nline = 3\n")
    report = run_session(
        MODULE, source, ExplicitBlocks(sizes), recording_dir=tmp_path, config_path=config
    )
    assert report.n_samples == n
    found = read_online_spikes(tmp_path)
    assert len(found) >= 35
    # TTL line 3 goes high and low at block starts, alternating
    ev = report.events
    assert len(ev) >= 2 and (ev["line"] == 3).all()
    assert (ev["state"][::2]).all() and not ev["state"][1::2].any()


def test_nan_inf_and_huge_values_pass_through_unchanged(tmp_path):
    config = write_config(tmp_path, "[detect]\nthreshold_uv = 60.0\n")
    import os

    os.environ["SWEEPSORT_CONFIG"] = str(config)
    try:
        host = Host(MODULE, 4, 30000.0)
    finally:
        del os.environ["SWEEPSORT_CONFIG"]
    host.start_acquisition()
    host.start_recording(str(tmp_path))
    blocks = [
        np.full((4, 100), np.nan, np.float32),
        np.full((4, 100), np.inf, np.float32),
        np.full((4, 100), -3e38, np.float32),
        np.zeros((4, 0), np.float32),
        np.random.default_rng(0).standard_normal((4, 5000)).astype(np.float32),
    ]
    for b in blocks:
        out = host.run_block(b)
        np.testing.assert_array_equal(out, b)  # write_downstream is off: data untouched
    host.stop_recording()
    host.stop_acquisition()
    stats = host.instance.stats
    assert stats["nonfinite_samples"] == 800
    assert stats["samples_processed"] == 5300
    assert stats["errors"] == 0


def test_wrong_block_shape_is_reported_not_raised(capsys):
    host = Host(MODULE, 4, 30000.0)
    host.start_acquisition()
    out = host.run_block(np.ones((4, 50), np.float32))
    assert out.shape == (4, 50)
    host.instance.process(
        np.ones((3, 50), np.float32)
    )  # a channel count the module was not built for
    host.instance.process(np.ones((4, 50), np.float64))
    assert host.instance.errors == 2
    assert "spike_detector" in capsys.readouterr().err


@pytest.mark.slow
def test_channel_count_changes_between_constructions(tmp_path):
    config = write_config(tmp_path, '[detect]\nprobe = "stereotrodes16"\n')
    run = lambda n: run_session(  # noqa: E731
        MODULE,
        SyntheticSource(num_channels=n, sample_rate_hz=30000.0, duration_s=0.2),
        config_path=config,
    )
    assert run(16).n_samples == 6000
    with pytest.raises(ModuleInitError, match="16"):  # the probe maps 16 channels, stream has 8
        run(8)
    config.write_text("")
    assert run(8).n_samples == 6000
    assert run(32).n_samples == 6000


@pytest.mark.parametrize(
    "text, key",
    [
        ("[filter]\nhigh_hz = 20000.0\n", "filter.high_hz"),
        ("[filter]\norder = 'two'\n", "filter.order"),
        ("[detect]\ntreshold_mad = 4.0\n", "detect.treshold_mad"),
        ("[detect]\nmethod = 'wavelet'\n", "detect.method"),
        ("[detect]\nlockout_us = -5.0\n", "detect.lockout_us"),
        ("[ttl]\nline = 300\n", "ttl.line"),
        ("[detekt]\n", "detekt"),
        ("[detect\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, text, key):
    config = write_config(tmp_path, text)
    with pytest.raises(ModuleInitError) as info:
        run_session(
            MODULE,
            SyntheticSource(num_channels=2, sample_rate_hz=30000.0, duration_s=0.1),
            config_path=config,
        )
    cause = info.value.__cause__
    assert isinstance(cause, SettingsError)
    assert key in str(cause)


@pytest.mark.slow
@pytest.mark.skipif(
    find_compiler() is None, reason="no C compiler: the native runner cannot be built"
)
def test_native_runner_real_recording_no_hang_same_events(tmp_path, offline_reference):
    """process() on a GIL-less thread over the real recording: no hang, same events."""
    out_native = tmp_path / "native"
    job = NativeJob(
        module=MODULE,
        source=RecordingSource(DATA, node=101),
        blocks=RandomBlocks(seed=5),
        config_path=GUI_CONFIG,
        recording_dir=out_native,
        hang_timeout_s=20.0,
    )
    report = run_native(job)
    assert report.n_samples == 133120
    spikes = read_online_spikes(out_native)
    spikes["sample_number"] -= job.source.first_sample_number  # stream numbers (see above)
    assert_same_spikes(spikes, offline_reference)


def test_finds_the_gui_spike_detectors_spikes_on_real_data():
    """With the GUI's settings we find (nearly) every spike the GUI's Spike Detector found."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compare_gui_detector import compare

    r = compare(GUI_CONFIG)
    assert r["gui_spikes"] > 800
    assert r["fraction_of_gui_found"] >= 0.98
    assert r["ours_not_in_gui"] <= 0.05 * r["ours"]


def test_replay_rebases_the_recording_to_a_new_acquisition():
    """Replay = a new acquisition from the recording's first sample: TTLs shifted to match."""
    from oe_plugin.host.replay import replay

    rec = open_recording(DATA, node=101)
    raw_ttl = rec.ttl_events()
    source = RecordingSource(DATA, node=101, rebase=True)
    assert source.first_sample_number == 0
    assert source.recording_first_sample_number == rec.first_sample_number
    shifted = source.ttl_events()
    inside = raw_ttl["sample_number"] >= rec.first_sample_number
    np.testing.assert_array_equal(
        shifted["sample_number"], raw_ttl["sample_number"][inside] - rec.first_sample_number
    )
    report = replay(DATA, MODULE, config_path=GUI_CONFIG, node=101, block_size=1000)
    assert report.first_sample_number == 0 and report.ttl_delivered == len(shifted)


def test_unwritable_recording_dir_is_reported_and_detection_goes_on(tmp_path, capsys):
    (tmp_path / "sweepsort").write_text("a file where the module's output folder should be")
    host = Host(MODULE, 2, 30000.0)
    host.start_acquisition()
    host.start_recording(str(tmp_path))
    host.run_block(np.zeros((2, 100), np.float32))
    host.stop_recording()
    assert host.instance.writer is None and host.instance.samples_seen == 100
    err = capsys.readouterr().err
    assert f"cannot write the online files to {tmp_path / 'sweepsort'}" in err


def test_a_block_larger_than_any_before_keeps_every_spike(tmp_path):
    """A block beyond the preallocated size grows the buffers once; no spike is lost."""
    n = 40000  # > the module's 8192-sample preallocation
    spikes = [(1000 + 300 * k, k % 4, -200.0) for k in range(120)]
    source = SyntheticSource(num_channels=4, sample_rate_hz=30000.0, duration_s=n / 30000.0,
                             spikes=spikes, seed=2)
    config = write_config(tmp_path, "[detect]\nthreshold_uv = 80.0\n")
    run_session(MODULE, source, ExplicitBlocks([n]), recording_dir=tmp_path, config_path=config)
    found = read_online_spikes(tmp_path)
    assert len(found) == 120
    np.testing.assert_array_equal(np.sort(found["channel"]), np.sort([s[1] for s in spikes]))
