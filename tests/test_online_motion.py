"""Probe motion in the online sorter: a real ``sweepsort sort`` of a drifting recording (motion
estimated and applied), loaded online; the online sorter — core (both ways in, random block
sizes), the online_sorter and pipeline modules in the host simulator, the online_sorter module
in the native GIL-less runner — must label every spike exactly as the offline causal path
(:func:`offline.online_match.causal_sort`) does with the same motion input, and differently
without it. Plus the drift kernel's block invariance (njit and cfunc ways in)."""

from __future__ import annotations

import numpy as np
import pytest
from synth import make_recording
from test_online_sorter import assert_same
from test_sort_motion import ROWS, UNITS, drift, positions

from oe_plugin.host.blocks import RandomBlocks
from oe_plugin.host.native import NativeJob, find_compiler, run_native
from oe_plugin.host.session import run_session
from oe_plugin.host.sources import RecordingSource as HostSource
from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.drift import (
    DP_BIN_N,
    DP_FIRST_SAMPLE,
    N_DPARAMS,
    correct_block,
    correct_block_binned,
    correct_entry,
    drift_tables,
    motion_bin_grid,
)
from oe_plugin.kernels.motion import Motion
from oe_plugin.online.match_model import SortModelError, load_sort_model
from oe_plugin.online.sorter_driver import OnlineSorter
from oe_plugin.probe import Probe
from oe_plugin.protocol.oe_binary_events import write_binary_recording
from offline import read_online_spikes
from offline.online_match import causal_sort
from offline.sort import RecordingSource, load_sort, settings_from_table, sort_recording

pytestmark = pytest.mark.slow  # a drifting sort, then the online sorter following its motion

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SORTER = ROOT / "oe_plugin" / "modules" / "online_sorter.py"
PIPELINE = ROOT / "oe_plugin" / "modules" / "pipeline.py"
FS = 30000.0
C = 2 * ROWS
needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler for the runner")


def _sorted(spikes, key="sample_index"):
    return spikes[np.argsort(spikes[key], kind="stable")]


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    root = tmp_path_factory.mktemp("online_motion")
    data, truth = make_recording(n_channels=C, duration_s=40.0, rate_hz=6.0, snr=9.0,
                                 positions_um=positions(), decay_um=30.0, seed=3,
                                 unit_positions_um=UNITS, drift_um=drift)
    rec = root / "rec" / "Record Node 101" / "experiment1" / "recording1"
    write_binary_recording(rec, sample_rate_hz=FS, n_samples=data.shape[1], n_channels=C,
                           data_uv=data)
    settings = settings_from_table({"preprocess": {"filter": "causal", "upsample_factor": 1},
                                    "motion": {"mode": "rigid"}})
    sort_dir = root / "drift.sort"
    sort_recording(RecordingSource(str(root / "rec")), sort_dir, settings,
                   Probe("two-column", positions(), np.zeros(C, int)))
    played = HostSource(root / "rec").read_uv(0, data.shape[1])
    want = _sorted(causal_sort(played, FS, sort_dir))
    plain = _sorted(causal_sort(played, FS, sort_dir, apply_motion=False))
    configs = {}
    for name, extra in (("on", ""), ("off", "apply_motion = false\n")):
        cfg = root / f"sorter-{name}.toml"
        cfg.write_text(f'[match]\nsort_dir = "{sort_dir}"\n{extra}')
        configs[name] = cfg
    pipe = root / "pipeline.toml"
    pipe.write_text(f'[match]\nsort_dir = "{sort_dir}"\n[decoder]\nenabled = false\n'
                    "[stats]\nenabled = false\n")
    configs["pipeline"] = pipe
    return dict(root=root, rec=root / "rec", sort_dir=sort_dir, truth=truth, played=played,
                want=want, plain=plain, configs=configs)


# -- the kernel -------------------------------------------------------------------------------


def _probe(n_rows=8):
    return np.array([(x, r * 20.0) for r in range(n_rows) for x in (0.0, 32.0)], float)


def test_correct_block_binned_matches_correct_block_and_holds_the_last_bin():
    pos = _probe()
    tabs = drift_tables(pos, max_um=30)
    m = Motion(np.array([0.5, 1.5, 2.5]), np.array([0.0]), np.array([[0.0], [12.0], [-7.0]]))
    x = np.random.default_rng(1).normal(size=(len(pos), 5000)).astype(np.float32)
    bin_n = 500  # 0.5 s at 1 kHz
    grid = motion_bin_grid(m, tabs, pos[:, 1], 1000.0, bin_n)
    assert grid.shape == (7, len(pos)) and grid.dtype == np.int32  # up to the bin past 2.5 s
    out = np.empty_like(x)
    correct_block_binned(x, out, 0, bin_n, grid, tabs.index, tabs.weight)
    np.testing.assert_array_equal(out, correct_block(x, 0, 1000.0, m, tabs, pos, 0.5))
    # past the table's last bin the last row holds (the motion is held after its end)
    np.testing.assert_array_equal(grid[-1], tabs.grid_index(np.full(len(pos), -7.0)))
    # no usable table: copied unchanged, never raises
    correct_block_binned(x, out, 0, 0, grid, tabs.index, tabs.weight)
    np.testing.assert_array_equal(out, x)
    correct_block_binned(x, out, 0, bin_n, grid[:, :3], tabs.index, tabs.weight)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("seed", range(6))
def test_correct_block_binned_is_block_invariant_both_ways_in(seed):
    """Any cut of the stream (and any stream origin) gives the same samples, through the njit
    kernel and through the GIL-free C entry."""
    rng = np.random.default_rng(seed)
    pos = _probe(int(rng.integers(3, 10)))
    c = len(pos)
    tabs = drift_tables(pos, max_um=25, step_um=0.5, n_taps=int(rng.integers(1, 9)))
    bin_n = int(rng.integers(1, 700))
    n_bins = int(rng.integers(1, 12))
    grid = rng.integers(-3, len(tabs.displacement_um) + 3, (n_bins, c)).astype(np.int32)
    first = int(rng.integers(0, 5000))
    x = rng.normal(size=(c, int(rng.integers(1, 6000)))).astype(np.float32)
    whole = np.empty_like(x)
    correct_block_binned(x, whole, first, bin_n, grid, tabs.index, tabs.weight)
    # the reference: sample by sample, the bin's row, taps in table order
    t = first + np.arange(x.shape[1])
    rows = grid[np.clip(t // bin_n, 0, n_bins - 1)]  # (n, C)
    g = np.clip(rows, 0, len(tabs.displacement_um) - 1)
    ref = np.zeros_like(x)
    for k in range(tabs.index.shape[2]):
        w = tabs.weight[np.arange(c)[None], g, k]  # (n, C)
        src = tabs.index[np.arange(c)[None], g, k]
        ref += (w * x[src, np.arange(x.shape[1])[:, None]]).T
    np.testing.assert_allclose(whole, ref, rtol=1e-5, atol=1e-5)
    cuts = np.unique(np.r_[0, rng.integers(0, x.shape[1], 5), x.shape[1]])
    params = np.zeros(N_DPARAMS, np.int64)
    params[DP_BIN_N] = bin_n
    caller = entry_caller(correct_entry)
    for way in ("njit", "cfunc"):
        parts = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            xa = np.ascontiguousarray(x[:, a:b])
            out = np.full_like(xa, np.nan)
            if way == "njit":
                correct_block_binned(xa, out, first + a, bin_n, grid, tabs.index, tabs.weight)
            else:
                params[DP_FIRST_SAMPLE] = first + a
                tab = ArgTable([xa, out, params, grid, tabs.index, tabs.weight])
                assert tab.call(caller) == 0
            parts.append(out)
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


# -- the model ----------------------------------------------------------------------------------


def test_model_carries_the_sorts_motion(drifting):
    res = load_sort(drifting["sort_dir"])
    assert res.meta["motion"]["applied"] and res.meta["motion"]["mode"] == "rigid"
    model = load_sort_model(drifting["sort_dir"], C, FS)
    dr = model.drift
    assert dr is not None and model.motion_applied and dr.motion_time == "stream"
    assert dr.bin_n == round(res.meta["motion"]["settings"]["interp_bin_s"] * FS)
    assert dr.bin_grid.shape == (41, C)  # 1 s bins up to the one past the estimate's end
    # the probe moves: the bins use many rows of the table, and follow the stored estimate
    assert np.ptp(dr.bin_grid) * dr.tables.step_um > 15  # ~ the zigzag's 30 µm p-p
    disp = np.interp((np.arange(41) + 0.5) * dr.bin_n / FS, res.arrays["motion_time_s"],
                     res.arrays["motion_um"][:, 0])
    np.testing.assert_array_equal(dr.bin_grid[:, 0], dr.tables.grid_index(disp))
    assert load_sort_model(drifting["sort_dir"], C, FS, apply_motion=False).drift is None
    end = load_sort_model(drifting["sort_dir"], C, FS, motion_time="end").drift
    np.testing.assert_array_equal(end.bin_grid, dr.bin_grid[-1:])
    with pytest.raises(SortModelError, match="motion_time"):
        load_sort_model(drifting["sort_dir"], C, FS, motion_time="later")
    # a stream replaying the recording from 12.4 s: its bins start at the sort's bin 12
    later = load_sort_model(drifting["sort_dir"], C, FS, motion_start_s=12.4).drift
    np.testing.assert_array_equal(later.bin_grid, dr.bin_grid[12:])
    with pytest.raises(SortModelError, match="motion_start_s"):
        load_sort_model(drifting["sort_dir"], C, FS, motion_start_s=-1.0)
    from oe_plugin.config import SettingsError, from_table
    from oe_plugin.online.sorter_module import MatchSettings

    with pytest.raises(SettingsError, match="match.motion_start_s"):
        from_table(MatchSettings, {"motion_start_s": -2.0}, "match").check("match")


def test_motion_input_changes_and_improves_the_labels(drifting):
    """The reference with the motion differs from the one without (so the equality tests below
    can fail), and it is the better one against the ground truth."""
    want, plain, truth = drifting["want"], drifting["plain"], drifting["truth"]
    assert len(want) != len(plain) or not np.array_equal(want["unit"], plain["unit"])

    def recovered(spikes):
        acc = []
        for g in range(len(UNITS)):
            tt = truth["sample_index"][truth["channel"] == g]
            best = 0.0
            for u in np.unique(spikes["unit"][spikes["unit"] >= 0]):
                st = spikes["sample_index"][spikes["unit"] == u]
                j = np.clip(np.searchsorted(st, tt), 1, max(len(st) - 1, 1))
                near = np.minimum(np.abs(st[j - 1] - tt), np.abs(st[np.minimum(j, len(st) - 1)]
                                                                  - tt))
                hit = int((near <= 5).sum())
                best = max(best, hit / (len(tt) + len(st) - hit))
            acc.append(best)
        return np.array(acc)

    with_mc, without = recovered(want), recovered(plain)
    assert with_mc.mean() > without.mean() + 0.05, (with_mc, without)
    assert with_mc.min() >= 0.6, with_mc


# -- online == offline --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_core_random_blocks_equal_causal_sort(drifting, seed):
    """Both ways in (njit process / GIL-free process_online), random block sizes 1..5000."""
    model = load_sort_model(drifting["sort_dir"], C, FS)
    data = drifting["played"]
    for way in ("process", "process_online"):
        s = OnlineSorter(C, FS, model)
        assert s.drift is not None
        rng = np.random.default_rng(seed)
        parts, pos = [], 0
        while pos < data.shape[1]:
            k = int(rng.choice([1, 7, 256, int(rng.integers(1, 5000))]))
            block = np.ascontiguousarray(data[:, pos:pos + k])
            n = getattr(s, way)(block)
            np.testing.assert_array_equal(block, data[:, pos:pos + k])  # raw passes through
            parts.append(s.spikes(n))
            pos += k
        got = _sorted(np.concatenate(parts))
        for f in got.dtype.names:
            np.testing.assert_array_equal(got[f], drifting["want"][f], err_msg=f"{way} {f}")
        assert s.stats["queue_dropped"] == 0 and s.stats["output_dropped"] == 0


def test_core_without_the_drift_stage_differs(drifting):
    model = load_sort_model(drifting["sort_dir"], C, FS, apply_motion=False)
    s = OnlineSorter(C, FS, model)
    data, parts = drifting["played"], []
    for pos in range(0, data.shape[1], 1024):
        parts.append(s.spikes(s.process_online(np.ascontiguousarray(data[:, pos:pos + 1024]))))
    got = _sorted(np.concatenate(parts))
    for f in got.dtype.names:
        np.testing.assert_array_equal(got[f], drifting["plain"][f])
    want = drifting["want"]
    assert len(got) != len(want) or not np.array_equal(got["unit"], want["unit"])


@pytest.mark.parametrize("module, config, ref", [(SORTER, "on", "want"), (SORTER, "off", "plain"),
                                                 (PIPELINE, "pipeline", "want")])
def test_modules_in_host_simulator_equal_causal_sort(drifting, tmp_path, module, config, ref):
    run_session(module, HostSource(drifting["rec"]), RandomBlocks(seed=5, max_size=4000,
                                                                 p_one=0.01),
                recording_dir=tmp_path, config_path=drifting["configs"][config])
    assert_same(read_online_spikes(tmp_path), drifting[ref])


@needs_cc
def test_module_in_native_runner_equals_causal_sort(drifting, tmp_path):
    report = run_native(NativeJob(SORTER, HostSource(drifting["rec"]),
                                  RandomBlocks(seed=9, max_size=3000),
                                  config_path=drifting["configs"]["on"], recording_dir=tmp_path,
                                  hang_timeout_s=60.0, timeout_s=600.0))
    assert report.runner == "native"
    assert_same(read_online_spikes(tmp_path), drifting["want"])


@pytest.mark.parametrize("config, ref", [("on", "want"), ("off", "plain")])
def test_replay_compare_offline_follows_the_modules_motion_switch(drifting, tmp_path, capsys,
                                                                 config, ref):
    from offline.cli import main

    code = main(["replay", str(drifting["rec"]), "--module", str(SORTER), "--config",
                 str(drifting["configs"][config]), "--compare-offline", "--random-blocks",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{len(drifting[ref])} spikes, identical to online" in out, out


def test_a_broken_motion_estimate_fails_at_load(drifting, tmp_path):
    res = load_sort(drifting["sort_dir"])
    arrays = dict(res.arrays)
    arrays["motion_um"] = arrays["motion_um"][:-1]  # one time bin short
    bad = tmp_path / "bad.sort"
    bad.mkdir()
    (bad / "sort.json").write_text((drifting["sort_dir"] / "sort.json").read_text())
    np.savez(bad / "sort.npz", **arrays)
    with pytest.raises(SortModelError, match="motion arrays disagree"):
        load_sort_model(bad, C, FS)
    assert load_sort_model(bad, C, FS, apply_motion=False).drift is None  # the switch still works


def test_adversarial_blocks_never_raise_with_the_drift_stage(drifting):
    from oe_plugin.host.session import config_env
    from oe_plugin.host.simulator import Host

    with config_env(drifting["configs"]["on"]):
        mod = Host(SORTER, C, FS).instance
    assert mod.sorter.drift is not None
    mod.start_acquisition()
    rng = np.random.default_rng(0)
    for block in (np.zeros((C, 0), np.float32), np.full((C, 50), np.nan, np.float32),
                  np.full((C, 50), np.inf, np.float32), np.zeros((C + 1, 10), np.float32),
                  np.zeros((C, 10), np.float64), np.full((C, 20000), 1e30, np.float32),
                  rng.normal(0, 1e4, (C, 3000)).astype(np.float32)):
        mod.process(block)
    n = mod.sort_block(np.ascontiguousarray(drifting["played"][:, :60000]))
    assert n >= 0 and mod.sorter.stats["nonfinite_samples"] >= 100


def test_channel_mask_online_equals_causal_sort(drifting, monkeypatch):
    """The probe moved further (the sort's motion + 15 µm, up to 30 µm): the top channels'
    corrections are extrapolated in some bins and the matcher leaves their template rows out
    (oe_plugin.kernels.match, channel mask); online (both ways in, random blocks) == causal."""
    from dataclasses import replace

    from oe_plugin.kernels.drift import ONLINE_VALID_MIN_SUM, motion_bin_grid, valid_bins
    from oe_plugin.online.match_model import DriftStage

    model = load_sort_model(drifting["sort_dir"], C, FS)
    dr = model.drift
    moved = Motion(dr.motion.time_s, dr.motion.depth_um, dr.motion.displacement_um + 15.0)
    tabs = drift_tables(positions(), float(np.abs(moved.displacement_um).max()) + 1.0)
    grid = motion_bin_grid(moved, tabs, positions()[:, 1], FS, dr.bin_n)
    model = replace(model, drift=DriftStage(moved, tabs, dr.bin_n, grid, dr.motion_time))
    mask = np.zeros(grid.shape, np.int32)
    valid_bins(grid, tabs.weight, ONLINE_VALID_MIN_SUM, mask)
    assert (mask == 0).any() and (mask == 1).all(axis=1).any()  # masked in some bins only
    data = drifting["played"]
    want = _sorted(causal_sort(data, FS, model))
    with monkeypatch.context() as m:  # the same without the mask: some labels differ
        m.setattr("offline.online_match.valid_bins", lambda g, w, m_, out: out.fill(1))
        unmasked = _sorted(causal_sort(data, FS, model))
    assert len(unmasked) != len(want) or not np.array_equal(unmasked["unit"], want["unit"])
    for way in ("process", "process_online"):
        s = OnlineSorter(C, FS, model)
        rng = np.random.default_rng(5)
        parts, pos = [], 0
        while pos < data.shape[1]:
            k = int(rng.choice([1, 7, 256, int(rng.integers(1, 5000))]))
            parts.append(s.spikes(getattr(s, way)(np.ascontiguousarray(data[:, pos:pos + k]))))
            pos += k
        got = _sorted(np.concatenate(parts))
        for f in got.dtype.names:
            np.testing.assert_array_equal(got[f], want[f], err_msg=f"{way} {f}")
