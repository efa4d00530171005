"""`sweepsort demo --quick`: the whole system on a virtual experiment, checked against the truth.

One run (module fixture, ~50 s on 2 shared cores): sweepstim headless -> model V1 neurons ->
Open Ephys Binary recording -> `sweepsort sort` -> pipeline.py in the host simulator ->
tuning/STA/report -> summary. The assertions are the demo's bar: recovered units, tuning and
STA against the model neurons' truth (docs/demo.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the whole demo (simulation, sort, online pipeline, report)

SUMMARY_FIELDS = ("neuron", "snr", "matched_unit", "accuracy", "true_pref_ori_deg",
                  "recovered_pref_ori_deg", "osi", "rf_center_deg")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from offline.cli import main

    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--quick", "--out", str(out), "--report-units", "2", "--quiet"])
    assert code == 0
    return out, json.loads((out / "summary.json").read_text())


def test_summary_files(demo):
    out, s = demo
    assert (out / "report.html").stat().st_size > 10_000
    assert "matched at accuracy" in (out / "summary.txt").read_text()
    assert {"frames_expected", "frames_decoded_exact"} <= set(s)
    for r in s["neurons"]:
        assert set(SUMMARY_FIELDS) <= set(r)


def test_good_neurons_are_recovered(demo):
    """>= 90 % of neurons with SNR >= 6: a unit with accuracy >= 0.8 and the preferred
    orientation within 10 deg of the truth."""
    _, s = demo
    good = [r for r in s["neurons"] if r["snr"] >= 6]
    assert len(good) >= 6
    ok = [r for r in good if r["matched_unit"] is not None and r["accuracy"] >= 0.8
          and r["ori_error_deg"] <= 10.0]
    assert len(ok) >= 0.9 * len(good), [(r["neuron"], r["snr"], r["accuracy"],
                                          r.get("ori_error_deg")) for r in good]


def test_probe_drift_is_simulated_and_corrected(demo):
    """The simulated probe settles by 15 µm; the sort estimates that motion (relative to its
    mean, within 3 µm RMS) and corrects the traces; the online replay of each session reads the
    estimate from where that session starts in the recording."""
    out, s = demo
    truth = np.load(out / "sim" / "truth" / "truth.npz")
    drift = truth["drift_um"]
    assert drift[0] == 0.0 and drift[-1] == pytest.approx(15.0, abs=0.2)
    assert np.all(np.diff(drift) >= 0)
    d = s["drift"]
    assert d["true_range_um"] == pytest.approx(15.0, abs=0.2)
    assert d["applied"], d
    assert d["rms_error_um"] <= 3.0 and d["estimated_range_um"] >= 10.0, d
    starts = []
    for name in ("gratings", "sparse_noise"):
        toml = (out / "online" / name / "pipeline.toml").read_text()
        starts.append(float(toml.split("motion_start_s = ")[1].split()[0]))
    assert 0.5 < starts[0] < starts[1]


def test_decoded_sweeps_equal_the_frame_log(demo):
    _, s = demo
    assert s["frames_expected"] > 10_000
    assert s["frames_decoded_exact"] == s["frames_expected"]          # online decoder
    assert s["frames_decoded_exact_offline"] == s["frames_expected_offline"]  # recorded TTLs


def test_sessions_are_linked_by_their_ttl_session_code(demo):
    """Each session file's code came back from the recorded TTLs (offline match) and from the
    online pipeline's statistics (experiment 1 of each replayed session)."""
    import json

    from oe_plugin.outputs.stats_file import read_stats
    from offline.analysis.model import Recording

    out, _ = demo
    root = out / "sim" / "recording"
    rec = Recording(root)
    assert len(rec.experiments) == 2
    for e in rec.experiments:
        code = e.session["session_code"]
        assert code is not None and e.decoded_code == (code, "ok")
        arrays, _ = read_stats(out / "online" / e.stimulus.replace("grating", "gratings"))
        assert [x.session_code for x in arrays["experiments"] if x.number == 1] == [code]
    codes = {json.loads(p.read_text())["ttl_protocol"]["session_code"]
             for p in root.glob("stim/*.session.json")}
    assert len(codes) == 2


def test_online_statistics_agree_with_offline_tuning(demo):
    """pipeline.py's online sweep counts give the same orientation tuning as the offline
    analysis of the same units (well-recovered neurons)."""
    _, s = demo
    rows = [r for r in s["neurons"] if r["snr"] >= 6 and r["accuracy"] >= 0.8]
    assert rows
    for r in rows:
        assert r["online_vs_offline_tuning_r"] >= 0.9, r
        assert r["online_vs_offline_pref_ori_diff_deg"] <= 10.0, r


def test_recording_is_open_ephys_binary(demo):
    """The simulated recording reads back with open-ephys-python-tools and our reader."""
    from offline.recording import open_recording

    out, s = demo
    root = out / "sim" / "recording"
    rec = open_recording(root)
    assert rec.n_channels == 54 and rec.sample_rate_hz == 30000.0
    truth = json.loads((out / "sim" / "truth" / "truth.json").read_text())
    assert rec.n_samples == truth["n_samples"]
    assert rec.ttl_events().size == truth["ttl"]["n_events"]
    import open_ephys.analysis as oe

    session = oe.Session(str(root))
    r = session.recordnodes[0].recordings[0]
    cont = r.continuous[0]
    assert cont.samples.shape == (truth["n_samples"], 54)
    assert np.asarray(cont.sample_numbers)[0] == truth["first_sample_number"]
    assert len(r.events) == truth["ttl"]["n_events"]
