"""Live motion tracking in the online sorter (``[match] track_motion``, issue 16).

A drifting recording (60 s, a small zigzag during the first 20 s, then a 0.5 µm/s ramp) is
sorted on its first 20 s; the online sorter then follows the probe over the whole 60 s from the
peaks it classifies. The estimate must recover the known motion, be the same for any block
sizes and either way in (njit / GIL-free cfunc), reproduce the causal offline reference given
the motion it recorded, survive a sudden 60 µm jump (rejected, reported once, the last good
value kept, classification going on), and reach the spike and statistics files. Plus the
settings, the file formats (old ones still read) and the monitor's motion panel (fast tests).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from synth import make_recording
from test_sort_motion import ROWS, UNITS, positions

from oe_plugin.config import SettingsError, from_table
from oe_plugin.host.blocks import RandomBlocks
from oe_plugin.host.native import NativeJob, find_compiler, run_native
from oe_plugin.host.session import run_session
from oe_plugin.host.sources import RecordingSource as HostSource
from oe_plugin.online.sorter_module import MatchSettings
from oe_plugin.outputs import stats_file as SF

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SORTER = ROOT / "oe_plugin" / "modules" / "online_sorter.py"
PIPELINE = ROOT / "oe_plugin" / "modules" / "pipeline.py"
FS = 30000.0
C = 2 * ROWS
SORT_S = 20.0
needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler for the runner")


def drift(t_s):
    """±5 µm zigzag (10 s period) while the sort's 20 s run, then a ramp of 0.5 µm/s."""
    t = np.asarray(t_s, float)
    return np.where(t < SORT_S, 5 * np.sin(2 * np.pi * t / 10), 0.5 * (t - SORT_S))


def _sorted(spikes, key="sample_index"):
    return spikes[np.argsort(spikes[key], kind="stable")]


def _same(a, b):
    assert len(a) == len(b)
    for f in a.dtype.names:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from oe_plugin.probe import Probe
    from oe_plugin.protocol.oe_binary_events import write_binary_recording
    from offline.sort import RecordingSource, settings_from_table, sort_recording

    root = tmp_path_factory.mktemp("live_motion")
    data, truth = make_recording(n_channels=C, duration_s=60.0, rate_hz=6.0, snr=9.0,
                                 positions_um=positions(), decay_um=30.0, seed=3,
                                 unit_positions_um=UNITS, drift_um=drift)
    n_sort = int(SORT_S * FS)
    first = root / "first" / "Record Node 101" / "experiment1" / "recording1"
    write_binary_recording(first, sample_rate_hz=FS, n_samples=n_sort, n_channels=C,
                           data_uv=data[:, :n_sort])
    whole = root / "whole" / "Record Node 101" / "experiment1" / "recording1"
    write_binary_recording(whole, sample_rate_hz=FS, n_samples=data.shape[1], n_channels=C,
                           data_uv=data)
    settings = settings_from_table({"preprocess": {"filter": "causal", "upsample_factor": 1,
                                                   "whiten": "off"},  # tracking: unwhitened
                                    "motion": {"mode": "rigid"}})
    sort_dir = root / "first.sort"
    sort_recording(RecordingSource(str(root / "first")), sort_dir, settings,
                   Probe("two-column", positions(), np.zeros(C, int)))
    played = HostSource(root / "whole").read_uv(0, data.shape[1])
    configs = {}
    for name, text in (
            ("sorter", "track_motion = true\n"),
            ("pipeline", "track_motion = true\n[decoder]\nenabled = false\n")):
        cfg = root / f"{name}.toml"
        cfg.write_text(f'[match]\nsort_dir = "{sort_dir}"\n{text}')
        configs[name] = cfg
    return dict(root=root, rec=root / "whole", sort_dir=sort_dir, played=played,
                truth=truth, configs=configs)


def _track(**kw):
    from oe_plugin.online.motion_tracker import TrackSettings

    return TrackSettings(**kw)


def _run_core(live, way="process_online", blocks=None, seed=0, data=None, track=None):
    from oe_plugin.online.match_model import load_sort_model
    from oe_plugin.online.sorter_driver import OnlineSorter

    model = load_sort_model(live["sort_dir"], C, FS, track=track or _track())
    s = OnlineSorter(C, FS, model)
    data = live["played"] if data is None else data
    rng = np.random.default_rng(seed)
    parts, notes, pos = [], [], 0
    while pos < data.shape[1]:
        k = blocks if blocks else int(rng.choice([1, 7, 256, int(rng.integers(1, 5000))]))
        parts.append(s.spikes(getattr(s, way)(np.ascontiguousarray(data[:, pos:pos + k]))))
        note = s.tracker.new_rejection()
        if note:
            notes.append((pos, note))
        pos += k
    return dict(sorter=s, model=model, spikes=_sorted(np.concatenate(parts)),
                history=s.tracker.history_um.copy(), notes=notes)


@pytest.fixture(scope="module")
def core(live):
    return _run_core(live, blocks=1024)


def _sort_offset(live):
    """The sort's reference frame: truth - its estimate, over the sort's time bins."""
    from offline.sort import load_sort

    a = load_sort(live["sort_dir"]).arrays
    return float(np.median(drift(a["motion_time_s"]) - a["motion_um"][:, 0]))


@pytest.mark.slow
def test_live_estimate_recovers_the_known_motion(live, core):
    """After the window fills (10 s into the ramp), within 5 µm RMS of the truth — the sort's
    end value held (what the module does without tracking) is far off."""
    s = core["sorter"]
    assert s.tracker.on and s.stats["motion_updates"] > 30 and s.stats["motion_rejected"] == 0
    h = core["history"][:, 0]
    t = np.arange(len(h)) * 1.0  # row k: samples [k, k + 1) s
    want = drift(t) - _sort_offset(live)
    late = t >= SORT_S + 10.0
    rms = float(np.sqrt(np.mean((h[late] - want[late]) ** 2)))
    held = float(np.sqrt(np.mean((h[0] - want[late]) ** 2)))
    assert rms < 5.0, (rms, h[late], want[late])
    assert held > 2 * rms and held > 8.0, (held, rms)
    # the spikes carry the displacement used (grid values of the rows applied)
    d = core["spikes"]["displacement_um"]
    assert np.isfinite(d).all() and np.ptp(d) > 10


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_block_invariant_and_equal_to_causal_sort_given_its_motion(live, core, seed):
    """Random blocks (1 .. 5000 samples), both ways in: the same spikes and the same motion
    history as 1024-sample blocks; the causal offline reference given that history labels
    every spike identically, and differs without it."""
    from offline.online_match import causal_sort

    for way in ("process", "process_online"):
        got = _run_core(live, way, seed=seed)
        np.testing.assert_array_equal(got["history"], core["history"])
        _same(got["spikes"], core["spikes"])
    ref = _sorted(causal_sort(live["played"], FS, core["model"],
                              motion_history_um=core["history"]))
    _same(core["spikes"], ref)
    fixed = _sorted(causal_sort(live["played"], FS, core["model"],
                                motion_history_um=core["history"][:1]))
    assert len(fixed) != len(ref) or not np.array_equal(fixed["unit"], ref["unit"])
    with pytest.raises(ValueError, match="motion_history_um"):
        causal_sort(live["played"][:, :1000], FS, core["model"])


@pytest.mark.slow
def test_non_rigid_windows_follow_and_stay_equivalent(live, core, tmp_path):
    """The same sort with its motion stored as three depth windows (a non-rigid estimate of a
    rigid drift): every window follows the probe like the rigid tracker, the channels'
    displacements interpolate between them, and the causal reference given the (K, 3) history
    is identical for random blocks."""
    from offline.online_match import causal_sort
    from offline.sort import load_sort

    res = load_sort(live["sort_dir"])
    arrays = dict(res.arrays)
    arrays["motion_depth_um"] = np.array([50.0, 110.0, 170.0])
    arrays["motion_um"] = np.repeat(arrays["motion_um"][:, :1], 3, axis=1)
    nr = tmp_path / "nonrigid.sort"
    nr.mkdir()
    (nr / "sort.json").write_text((live["sort_dir"] / "sort.json").read_text())
    np.savez(nr / "sort.npz", **arrays)
    got = _run_core(dict(live, sort_dir=nr), "process_online", seed=3)
    h = got["history"]
    assert h.shape[1] == 3 and got["sorter"].stats["motion_updates"] > 30
    late = np.arange(len(h)) >= SORT_S + 10
    rigid = core["history"][:, 0]
    for w in range(3):
        assert np.sqrt(np.mean((h[late, w] - rigid[late]) ** 2)) < 3.0, (w, h[late, w])
    ref = _sorted(causal_sort(live["played"], FS, got["model"], motion_history_um=h))
    _same(got["spikes"], ref)


@pytest.mark.slow
def test_a_sudden_jump_is_rejected_reported_once_and_sorting_goes_on(live, core):
    """The probe jumps 60 µm (3 contact rows) at 40 s: the estimate is rejected, reported once,
    the last good value held to the end, and spikes keep being classified."""
    data = live["played"].copy()
    j = int(40 * FS)
    data[:, j:] = np.roll(data[:, j:], 6, axis=0)
    got = _run_core(live, data=data, blocks=1024)
    s = got["sorter"]
    assert s.stats["motion_rejected"] >= 3, s.stats
    assert len(got["notes"]) == 1 and "rejected" in got["notes"][0][1]
    first = int(got["notes"][0][0] // FS)
    h = got["history"][:, 0]
    assert np.all(h[first + 1:] == h[first + 1])  # held
    truth = drift(first) - _sort_offset(live)
    assert abs(h[first + 1] - truth) < 10.0, (h[first + 1], truth)  # not dragged by the jump
    after = got["spikes"][got["spikes"]["sample_index"] > j + FS]
    assert len(after) > 300 and (after["unit"] >= 0).mean() > 0.5
    # reset (a new acquisition) reports again
    s.reset()
    assert s.tracker.stats["motion_rejected"] == 0 and s.tracker.n_history == 1


@pytest.mark.slow
def test_pipeline_in_host_simulator_files_and_equivalence(live, tmp_path):
    """The pipeline module, adversarial random blocks: its spike file carries the displacement
    per spike, its statistics file the motion; the causal reference given that motion is
    identical, spike for spike (labels, amplitudes, displacements)."""
    from offline import read_online_spikes
    from offline.online_match import causal_sort

    run_session(PIPELINE, HostSource(live["rec"]), RandomBlocks(seed=4, max_size=4000,
                                                               p_one=0.01),
                recording_dir=tmp_path, config_path=live["configs"]["pipeline"])
    arrays, meta = SF.read_stats(tmp_path)
    motion = arrays["motion_um"]
    assert motion.shape == (60, 1) and meta["motion_every_s"] == 1.0
    assert meta["motion_depth_um"] and meta["motion_settings"]["window_s"] == 10.0
    np.testing.assert_array_equal(arrays["motion_time_s"], np.arange(60.0))
    spikes = read_online_spikes(tmp_path)
    ref = _sorted(causal_sort(live["played"], FS, str(live["sort_dir"]), track=_track(),
                              motion_history_um=motion))
    assert len(spikes) == len(ref)
    for a, b in (("sample_number", "sample_index"), ("channel", "channel_index"),
                 ("unit", "unit"), ("amplitude_uv", "amplitude_uv"),
                 ("displacement_um", "displacement_um")):
        np.testing.assert_array_equal(spikes[a], ref[b], err_msg=a)
    assert np.ptp(spikes["displacement_um"]) > 10


@pytest.mark.slow
def test_replay_compare_offline_uses_the_recorded_motion(live, tmp_path, capsys):
    from offline.cli import main

    code = main(["replay", str(live["rec"]), "--module", str(PIPELINE), "--config",
                 str(live["configs"]["pipeline"]), "--compare-offline", "--random-blocks",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "motion input: the module's live estimate, 60 rows" in out, out
    assert "identical to online" in out, out
    # the online_sorter module writes no statistics file: no comparison, said clearly
    code = main(["replay", str(live["rec"]), "--module", str(SORTER), "--config",
                 str(live["configs"]["sorter"]), "--compare-offline", "--out",
                 str(tmp_path / "out2")])
    out = capsys.readouterr().out
    assert code == 0 and "no offline comparison: the module tracked motion live" in out


@pytest.mark.slow
@pytest.mark.parametrize("module, config", [(SORTER, "sorter"), (PIPELINE, "pipeline")])
def test_adversarial_blocks_never_raise_while_tracking(live, tmp_path, module, config):
    from oe_plugin.host.session import config_env
    from oe_plugin.host.simulator import Host

    with config_env(live["configs"][config]):
        mod = Host(module, C, FS).instance
    core = mod.sorter if module == SORTER else mod.sorter.sorter
    assert core.tracker.on
    mod.start_acquisition()
    mod.start_recording(str(tmp_path / "rec"))
    rng = np.random.default_rng(0)
    played = live["played"]
    for block in (np.zeros((C, 0), np.float32), np.full((C, 50), np.nan, np.float32),
                  np.full((C, 50), np.inf, np.float32), np.zeros((C + 1, 10), np.float32),
                  np.zeros((C, 10), np.float64), np.full((C, 20000), 1e30, np.float32),
                  rng.normal(0, 1e4, (C, 40000)).astype(np.float32),
                  np.ascontiguousarray(played[:, :90000])):
        mod.process(block)  # an exception here fails the test (the host would stall)
    mod.stop_recording()
    mod.stop_acquisition()
    st = core.stats
    assert st["motion_updates"] + st["motion_rejected"] + st["motion_skipped_few_peaks"] > 0
    assert np.isfinite(core.tracker.history_um).all()


@needs_cc
@pytest.mark.slow
@pytest.mark.parametrize("module, config", [(SORTER, "sorter"), (PIPELINE, "pipeline")])
def test_native_runner_gives_the_same_outputs(live, tmp_path, module, config):
    """GIL-free native runner (process() on a second thread without the GIL) vs the in-process
    simulator, different random blocks: the same spike files, displacements included (and for
    the pipeline, the same motion in the statistics file)."""
    from offline import read_online_spikes

    a, b = tmp_path / "native", tmp_path / "sim"
    report = run_native(NativeJob(module, HostSource(live["rec"]),
                                  RandomBlocks(seed=9, max_size=3000),
                                  config_path=live["configs"][config], recording_dir=a,
                                  hang_timeout_s=60.0, timeout_s=600.0))
    assert report.runner == "native"
    run_session(module, HostSource(live["rec"]), RandomBlocks(seed=2, max_size=5000),
                recording_dir=b, config_path=live["configs"][config])
    x, y = read_online_spikes(a), read_online_spikes(b)
    assert len(x) > 1000 and np.ptp(x["displacement_um"]) > 10
    for f in x.dtype.names:
        np.testing.assert_array_equal(x[f], y[f], err_msg=f)
    if module == PIPELINE:
        mx, my = SF.read_stats(a)[0]["motion_um"], SF.read_stats(b)[0]["motion_um"]
        assert mx.shape == (60, 1)
        np.testing.assert_array_equal(mx, my)


@pytest.mark.slow
def test_a_sort_without_motion_estimate_runs_untracked_with_a_notice(live, tmp_path, capsys):
    from oe_plugin.host.session import config_env
    from oe_plugin.host.simulator import Host
    from offline.sort import load_sort

    res = load_sort(live["sort_dir"])
    arrays = {k: v for k, v in res.arrays.items()
              if not (k.startswith("motion_") or k.startswith("peak_"))}
    bare = tmp_path / "bare.sort"
    bare.mkdir()
    meta = json.loads((live["sort_dir"] / "sort.json").read_text())
    meta["motion"] = {"mode": "off", "applied": False, "range_um": 0.0}
    (bare / "sort.json").write_text(json.dumps(meta))
    np.savez(bare / "sort.npz", **arrays)
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[match]\nsort_dir = "{bare}"\ntrack_motion = true\n')
    capsys.readouterr()
    with config_env(cfg):
        mod = Host(SORTER, C, FS).instance
    err = capsys.readouterr().err
    assert "no motion estimate" in err and "tracking is off" in err
    assert not mod.sorter.tracker.on and mod.sorter.drift is None
    mod.start_acquisition()
    mod.process(np.ascontiguousarray(live["played"][:, :30000]))
    assert mod.errors == 0


# -- fast: settings, files, monitor -----------------------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("track_window_s", 0.1, "match.track_window_s"),
    ("track_every_s", 0.01, "match.track_every_s"),
    ("track_max_step_um", 0.0, "match.track_max_step_um"),
    ("track_max_um", 1e4, "match.track_max_um"),
    ("track_min_corr", 1.5, "match.track_min_corr"),
    ("track_smoothing", 0.0, "match.track_smoothing"),
    ("track_reference_s", -1.0, "match.track_reference_s"),
    ("track_min_peaks", 0, "match.track_min_peaks"),
    ("track_motion", "yes", "match.track_motion: expected true or false"),
    ("track_motoin", True, "match.track_motoin: unknown key .did you mean 'track_motion'"),
])
def test_track_settings_are_validated_naming_the_key(key, value, message):
    with pytest.raises(SettingsError, match=message):
        from_table(MatchSettings, {key: value}, "match")


def test_track_motion_needs_correction_and_own_detection():
    with pytest.raises(SettingsError, match="match.track_motion: needs apply_motion"):
        from_table(MatchSettings, {"track_motion": True, "apply_motion": False}, "match")
    with pytest.raises(SettingsError, match="match.track_motion: needs source"):
        from_table(MatchSettings, {"track_motion": True, "source": "upstream"}, "match")
    ms = from_table(MatchSettings, {"track_motion": True, "track_window_s": 20.0}, "match")
    assert ms.track_settings().window_s == 20.0
    assert from_table(MatchSettings, {}, "match").track_settings() is None  # off by default


def test_example_tomls_carry_the_track_keys():
    from oe_plugin.config import load_toml

    for name in ("online_sorter", "pipeline"):
        table = load_toml(ROOT / "oe_plugin" / "modules" / f"{name}.example.toml")
        match = dict(table["match"])
        match.pop("enabled", None)
        ms = from_table(MatchSettings, match, "match")
        assert ms.track_motion is False and ms.track_window_s == 10.0


def _write_stats(path, motion=None, every=30000):
    tc = np.arange(6, dtype=np.int64).reshape(2, 3)
    tables, nc = SF.tables_from_experiments(tc, [])
    hist = None if motion is None else np.ascontiguousarray(motion, np.float64)
    meta = {"motion_depth_um": [100.0, 200.0]} if hist is not None else {}
    w = SF.StatsFileWriter(path, 2, 3, 1, max(nc, 1), 32, meta, FS, 200.0,
                           max_motion_rows=0 if hist is None else hist.shape[0] + 5,
                           motion_windows=0 if hist is None else hist.shape[1])
    w.start(tables, 3, 30000, 1, nc, 90000, motion=hist,
            motion_rows=0 if hist is None else hist.shape[0], motion_every_samples=every,
            motion_rejected=2)
    w.close()


def test_stats_file_v5_round_trips_the_motion(tmp_path):
    motion = np.array([[0.0, 1.5], [2.25, -3.0], [np.pi, 4.0]])
    p = tmp_path / "sweepsort" / SF.FILE_NAME
    _write_stats(p, motion)
    arrays, meta = SF.read_stats(tmp_path)
    np.testing.assert_array_equal(arrays["motion_um"], motion)
    np.testing.assert_array_equal(arrays["motion_time_s"], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(arrays["motion_depth_um"], [100.0, 200.0])
    assert meta["motion_rejected"] == 2 and meta["format_version"] == 5
    np.testing.assert_array_equal(arrays["time_counts"], np.arange(6).reshape(2, 3))


def test_stats_file_v4_still_reads(tmp_path):
    """A version-4 file (no motion table: the same layout, version 4 in both headers) reads,
    with an empty motion table."""
    p = tmp_path / "sweepsort" / SF.FILE_NAME
    _write_stats(p)
    side = json.loads(SF.sidecar_path(p).read_text())
    side["format_version"] = 4
    SF.sidecar_path(p).write_text(json.dumps(side))
    raw = bytearray(p.read_bytes())
    head = np.frombuffer(raw, np.int64, SF.HEADER_WORDS).copy()
    head[SF.H_MAGIC] = int.from_bytes(SF.MAGIC_PREFIX + bytes([4]), "little", signed=True)
    head[SF.H_VERSION] = 4
    raw[:SF.HEADER_WORDS * 8] = head.tobytes()
    p.write_bytes(bytes(raw))
    arrays, meta = SF.read_stats(tmp_path)
    assert arrays["motion_um"].shape == (0, 0) and meta["motion_rejected"] == 0
    np.testing.assert_array_equal(arrays["time_counts"], np.arange(6).reshape(2, 3))


def test_monitor_draws_the_motion_panel(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from offline.monitor import render

    _write_stats(tmp_path / "sweepsort" / SF.FILE_NAME,
                 np.c_[np.linspace(0, 10, 8), np.linspace(0, -5, 8)])
    fig = plt.figure()
    info = render(fig, tmp_path)
    assert info["motion_rows_shown"] == 8 and len(fig.axes) == 3
    ax = fig.axes[2]
    assert "probe motion" in ax.get_title() and "2 estimates rejected" in ax.get_title()
    plt.close(fig)
    _write_stats(tmp_path / "b" / "sweepsort" / SF.FILE_NAME)
    fig = plt.figure()
    assert render(fig, tmp_path / "b")["motion_rows_shown"] == 0 and len(fig.axes) == 2
    plt.close(fig)


@pytest.mark.slow
def test_channel_mask_follows_the_tracked_rows(live, monkeypatch):
    """The same units, ramping 2.8 times as fast (to ~56 µm): from ~35 s on, the top channels'
    corrections are extrapolated, so the matcher's channel mask (the tracked rows' valid flags)
    is not all ones and changes labels; the causal reference rebuilds it exactly."""
    from oe_plugin.kernels.drift import ONLINE_VALID_MIN_SUM, valid_bins
    from oe_plugin.online.motion_tracker import tracked_bin_grid
    from offline.online_match import causal_sort

    def steep(t_s):
        t = np.asarray(t_s, float)
        return np.where(t < SORT_S, 5 * np.sin(2 * np.pi * t / 10), 1.4 * (t - SORT_S))

    data, _ = make_recording(n_channels=C, duration_s=60.0, rate_hz=6.0, snr=9.0,
                             positions_um=positions(), decay_um=30.0, seed=3,
                             unit_positions_um=UNITS, drift_um=steep)
    data = np.ascontiguousarray(data, np.float32)
    got = _run_core(live, data=data, seed=4)
    model = got["model"]
    grid = tracked_bin_grid(got["history"], model.track.ch_map, model.track.ch_frac,
                            model.drift.tables)
    mask = np.zeros(grid.shape, np.int32)
    valid_bins(grid, model.drift.weight, ONLINE_VALID_MIN_SUM, mask)
    assert (mask == 0).any(), float(np.abs(got["history"]).max())
    ref = _sorted(causal_sort(data, FS, model, motion_history_um=got["history"]))
    _same(got["spikes"], ref)
    monkeypatch.setattr("offline.online_match.valid_bins", lambda g, w, m, out: out.fill(1))
    unmasked = _sorted(causal_sort(data, FS, model, motion_history_um=got["history"]))
    assert len(unmasked) != len(ref) or not np.array_equal(unmasked["unit"], ref["unit"])
