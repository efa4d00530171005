"""The offline sort on a drifting recording: motion estimated from the peaks, traces corrected,
the estimate stored in the sort folder and shown by ``sweepsort info``; units held together
across the drift that splits them without correction."""

from __future__ import annotations

import numpy as np
import pytest
from synth import make_recording
from test_recording import write_binary_recording
from test_sort_pipeline import accuracy

from oe_plugin.probe import Probe
from offline.cli import main as cli_main
from offline.sort import RecordingSource, settings_from_table, sort_recording
from offline.sort.pipeline import load_motion

pytestmark = pytest.mark.slow  # sorts of drifting recordings

FS = 30000.0
ROWS = 12
PERIOD_S = 40.0


def positions():
    return np.array([(x, 20.0 * r) for r in range(ROWS) for x in (0.0, 32.0)])


def drift(t_s):
    """Zigzag: 0 -> +15 -> 0 -> -15 -> 0 µm every PERIOD_S."""
    return 15.0 * (2 / np.pi) * np.arcsin(np.sin(2 * np.pi * np.asarray(t_s) / PERIOD_S))


UNITS = np.array([(8.0, 45.0), (24.0, 60.0), (10.0, 95.0), (22.0, 120.0), (16.0, 150.0),
                  (6.0, 172.0)])


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    data, truth = make_recording(n_channels=2 * ROWS, duration_s=60.0, rate_hz=6.0, snr=9.0,
                                 positions_um=positions(), decay_um=30.0, seed=3,
                                 unit_positions_um=UNITS, drift_um=drift)
    rec_dir = root / "session" / "Record Node 101" / "experiment1" / "recording1"
    write_binary_recording(rec_dir, data, 0, [])
    probe = Probe("two-column", positions(), np.zeros(2 * ROWS, int))
    source = RecordingSource(str(root / "session"))
    results = {}
    for mode in ("auto", "off"):
        s = settings_from_table({"motion": {"mode": mode}})
        results[mode] = sort_recording(source, root / f"sort-{mode}", s, probe)
    return {"root": root, "truth": truth, "results": results}


def _unit_accuracies(result, truth):
    a = result.arrays
    keep = a["spike_unit"] >= 0
    t, u = a["spike_index"][keep], a["spike_unit"][keep]
    best = []
    for g in range(len(UNITS)):
        tt = truth["sample_index"][truth["channel"] == g]
        best.append(max((accuracy(t[u == k], tt) for k in np.unique(u)), default=0.0))
    return np.array(best)


def test_motion_estimated_and_stored(drifting):
    res = drifting["results"]["auto"]
    assert res.meta["motion"]["mode"] == "rigid"  # 220 µm of depth: one window
    assert res.meta["motion"]["applied"]
    motion = load_motion(res)
    est = motion.displacement_um[:, 0]
    err = est - drift(motion.time_s)
    err -= np.median(err)
    assert np.sqrt(np.mean(err ** 2)) < 3.0
    assert len(res.arrays["peak_time_s"]) == len(res.arrays["peak_depth_um"]) > 1000
    off = drifting["results"]["off"]
    assert off.meta["motion"] == {**off.meta["motion"], "mode": "off", "applied": False}
    assert "motion_um" not in off.arrays
    # drift-split units are joined only where the sort corrected motion
    assert off.meta["unit_joins"]["drift"] == 0
    joined = res.meta["unit_joins"]["drift"]
    assert res.n_units + joined + res.meta["unit_joins"]["burst"] + (
        res.meta["unit_joins"]["split"]) == res.n_units + len(res.arrays["extra_templates_uv"])


def test_correction_keeps_units_whole(drifting):
    with_mc = _unit_accuracies(drifting["results"]["auto"], drifting["truth"])
    without = _unit_accuracies(drifting["results"]["off"], drifting["truth"])
    assert np.all(with_mc >= 0.8), with_mc
    assert with_mc.mean() > without.mean() + 0.1, (with_mc, without)


def test_info_prints_and_plots_the_motion(drifting, capsys):
    folder = drifting["root"] / "sort-auto"
    png = drifting["root"] / "motion.png"
    assert cli_main(["info", str(folder), "--motion-png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "motion: rigid" in out and "traces corrected" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no motion estimate"):
        cli_main(["info", str(drifting["root"] / "sort-off"), "--motion-png", str(png)])
