"""The sweep-decoder module through the host simulator and the native (GIL-less) runner, over a
simulated recording written as an Open Ephys Binary recording; online file == offline decode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from protocol_cases import FIRST_SAMPLE, PARALLEL, SERIAL, build

import offline
from oe_plugin.host.blocks import RandomBlocks
from oe_plugin.host.errors import ModuleInitError
from oe_plugin.host.native import NativeJob, find_compiler, run_native
from oe_plugin.host.session import run_session
from oe_plugin.host.sources import RecordingSource, SyntheticSource
from oe_plugin.protocol.oe_binary_events import write_binary_recording
from oe_plugin.protocol.spec import ERROR_MASK, MAX_SWEEP_INDEX, SWEEP_CHANGE
from offline.sweeps import decode_recording

MODULE = Path(__file__).resolve().parents[1] / "oe_plugin" / "modules" / "sweep_decoder.py"
FS = 30000.0


def toml_for(settings, extra: str = "") -> str:
    lines = ["[protocol]"]
    for k, v in settings.to_dict().items():
        if k == "protocol_version":
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, str):
            v = f'"{v}"'
        lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n" + extra


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two Binary recordings (serial with faults, parallel clean), ~12 s each at 30 kHz."""
    out = {}
    for name, settings, faults in (("serial", SERIAL, 12), ("parallel", PARALLEL, 0)):
        s = build(settings, FS, 2400, seed=21, n_faults=faults)
        root = tmp_path_factory.mktemp(name)
        rec = root / "session" / "Record Node 101" / "experiment1" / "recording1"
        n = int(s.events["sample_number"].max() - FIRST_SAMPLE + FS * 0.05)
        data = np.random.default_rng(0).normal(0, 20, (2, n)).astype(np.float32)
        write_binary_recording(rec, sample_rate_hz=FS, n_samples=n, n_channels=2,
                               first_sample_number=FIRST_SAMPLE, data_uv=data, events=s.events)
        config = root / "sweep_decoder.toml"
        config.write_text(toml_for(settings, "[decoder]\nonset_ttl_line = 30\n"))
        out[name] = (root / "session", config, s)
    return out


def online_frames(recording_dir):
    return offline.read_online_sweeps(recording_dir)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["serial", "parallel"])
@pytest.mark.parametrize("blocks", ["gui", "random"])
def test_simulator_online_equals_offline(recordings, tmp_path, name, blocks):
    session_dir, config, s = recordings[name]
    policy = None if blocks == "gui" else RandomBlocks(seed=3, max_size=5000, p_one=0.05)
    report = run_session(MODULE, RecordingSource(session_dir), policy,
                         recording_dir=tmp_path / "rec", config_path=config,
                         keep_downstream=True)
    got = online_frames(tmp_path / "rec")
    want = decode_recording(session_dir, s.settings)
    np.testing.assert_array_equal(got, want)
    assert got.size >= s.codes.size - 2
    if name == "parallel":  # clean: every frame exact
        assert not (got["flags"] & ERROR_MASK).any()
    # data passes through unchanged
    src = RecordingSource(session_dir)
    np.testing.assert_array_equal(report.downstream_uv, src.read_uv(0, src.n_samples))
    # onset TTL on line 30: alternating, one pulse per block with onsets at most
    ev = report.events
    ev = ev[ev["line"] == 30]
    assert ev.size > 10
    assert (ev["state"][::2]).all() and not (ev["state"][1::2]).any()
    onsets = (got["flags"] & SWEEP_CHANGE).astype(bool) & (got["sweep_index"] <= MAX_SWEEP_INDEX)
    assert ev.size // 2 <= onsets.sum()


@pytest.mark.slow
def test_block_sizes_do_not_change_the_file(recordings, tmp_path):
    session_dir, config, _s = recordings["serial"]
    results = []
    for k, policy in enumerate([1, 696, RandomBlocks(seed=9, max_size=20000, p_one=0.2)]):
        if policy == 1:  # one sample per block: only a window, it is slow
            src = RecordingSource(session_dir, stop_index=60000)
        else:
            src = RecordingSource(session_dir, stop_index=60000)
        run_session(MODULE, src, policy, recording_dir=tmp_path / f"r{k}", config_path=config)
        results.append(online_frames(tmp_path / f"r{k}"))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    assert results[0].size > 300


@pytest.mark.slow
@pytest.mark.skipif(find_compiler() is None,
                    reason="no C compiler (cc/gcc/clang): the native runner cannot be built")
@pytest.mark.parametrize("name", ["serial", "parallel"])
def test_native_runner_no_hang_and_online_equals_offline(recordings, tmp_path, name):
    session_dir, config, s = recordings[name]
    report = run_native(NativeJob(MODULE, RecordingSource(session_dir), 696,
                                  config_path=config, recording_dir=tmp_path / "rec",
                                  hang_timeout_s=20.0, timeout_s=300.0))
    assert report.runner == "native"
    got = online_frames(tmp_path / "rec")
    np.testing.assert_array_equal(got, decode_recording(session_dir, s.settings))
    ev = report.events
    assert (ev["line"] == 30).sum() > 10


def test_bad_settings_fail_at_construction_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[protocol]\nframe_line = 0\n")  # the sync line
    src = SyntheticSource(2, FS, 0.1)
    with pytest.raises(ModuleInitError, match=r"protocol\.frame_line"):
        run_session(MODULE, src, config_path=config)
    config.write_text("[decoder]\nonset_ttl_line = 2\n")  # an input line of the protocol
    with pytest.raises(ModuleInitError, match=r"decoder\.onset_ttl_line"):
        run_session(MODULE, src, config_path=config)
    config.write_text("[decodr]\n")
    with pytest.raises(ModuleInitError, match="decodr"):
        run_session(MODULE, src, config_path=config)


@pytest.mark.slow
def test_garbage_events_and_internal_errors_never_reach_the_host(tmp_path, capsys):
    rng = np.random.default_rng(1)
    ttl = [(int(i), int(ln), bool(st)) for i, ln, st in
           zip(np.sort(rng.integers(0, 29000, 3000)), rng.integers(0, 256, 3000),
               rng.integers(0, 2, 3000), strict=True)]
    src = SyntheticSource(2, FS, 1.0, ttl=ttl)
    report = run_session(MODULE, src, RandomBlocks(seed=1, max_size=3000),
                         recording_dir=tmp_path / "rec", keep_downstream=True)
    np.testing.assert_array_equal(report.downstream_uv, src.read_uv(0, src.n_samples))
    frames = online_frames(tmp_path / "rec")
    unknown = frames["sweep_index"] == -1
    assert ((frames["flags"][unknown] & ERROR_MASK) != 0).all()

    # a decoder that raises: reported once on stderr, data still passes unchanged
    copy = tmp_path / "mod" / "sweep_decoder_boom.py"
    copy.parent.mkdir()
    shutil.copy(MODULE, copy)
    copy.write_text(copy.read_text() + (
        "\n\nclass _Boom:\n"
        "    def __getattr__(self, name):\n"
        "        raise RuntimeError('boom')\n\n\n"
        "_Base = PyProcessor\n\n\n"
        "class PyProcessor(_Base):\n"
        "    def __init__(self, *a):\n"
        "        super().__init__(*a)\n"
        "        self.decoder = _Boom()\n"))
    report = run_session(copy, src, 500, keep_downstream=True)
    np.testing.assert_array_equal(report.downstream_uv, src.read_uv(0, src.n_samples))
    err = capsys.readouterr().err
    # reported once per place (start/stop_acquisition, handle_ttl_event, process), not per call
    assert err.count("error in handle_ttl_event") == 1
    assert err.count("error in process") == 1
    assert err.count("boom") <= 5


@pytest.mark.slow
def test_recording_window_inside_acquisition(recordings, tmp_path):
    """start/stop_recording mid-acquisition: the file holds the frames decoded while recording
    (the last one finished at the stop, by the audio thread), the same as the full decode."""
    session_dir, config, s = recordings["parallel"]
    src = RecordingSource(session_dir)
    first = src.first_sample_number
    window = (first + 60000, first + 200000)
    run_session(MODULE, src, 696, recording_dir=tmp_path / "rec", record=window,
                config_path=config)
    got = online_frames(tmp_path / "rec")
    full = decode_recording(session_dir, s.settings)
    assert got.size > 500
    start = np.searchsorted(full["sample_number"], got["sample_number"][0])
    np.testing.assert_array_equal(got[:-1], full[start:start + got.size - 1])
    assert got["sample_number"][-1] < window[1] + 696  # recording stops at a block boundary
    sidecar = json.loads(next((tmp_path / "rec").rglob("online_sweeps_000.json")).read_text())
    assert sidecar["records_written"] == got.size
