"""The sweepsort command: detect and replay, and clear errors for bad input."""

import json
from pathlib import Path

import numpy as np

from offline.cli import main
from offline.detect import PEAK_DTYPE

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "openephys-example-0.6.7"
GUI_CONFIG = ROOT / "examples" / "gui_spike_detector.toml"


def test_detect_writes_peaks_and_sidecar(tmp_path, capsys):
    out = tmp_path / "det"
    code = main(["detect", str(DATA), "--node", "101", "--out", str(out),
                 "--config", str(GUI_CONFIG), "--quiet"])
    assert code == 0
    peaks = np.load(out / "peaks.npy", allow_pickle=False)
    assert peaks.dtype == PEAK_DTYPE
    assert peaks.dtype.names == ("sample_index", "channel_index", "amplitude_uv")
    assert len(peaks) > 500
    assert np.all(np.diff(peaks["sample_index"]) >= 0)
    assert (peaks["amplitude_uv"] <= -50).all()  # fixed -50 µV, negative polarity
    info = json.loads((out / "peaks.json").read_text())
    assert info["probe"] == "stereotrodes16" and info["first_sample_number"] == 251635
    assert info["stats"]["events"] >= len(peaks)
    printed = capsys.readouterr().out
    assert f"{len(peaks)} peaks" in printed
    assert "probe: stereotrodes16 (16 channels) from [detect] probe" in printed
    # a record node folder and the session folder with --node give the same peaks
    out2 = tmp_path / "det2"
    assert main(["detect", str(DATA / "Record Node 101"), "--out", str(out2),
                 "--config", str(GUI_CONFIG), "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(out2 / "peaks.npy"), peaks)


def test_replay_reports_and_agrees_with_offline(tmp_path, capsys):
    code = main(["replay", str(DATA), "--node", "101",
                 "--module", str(ROOT / "oe_plugin" / "modules" / "spike_detector.py"),
                 "--config", str(GUI_CONFIG), "--random-blocks", "--compare-offline",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "process() p50" in out and "identical to online" in out
    assert f"probe: stereotrodes16 (the module's [detect] probe, from {GUI_CONFIG})" in out
    first = [line for line in out.splitlines() if "spikes detected online" in line]
    # again into the same folder: the first run's spike file stays and is not counted
    code = main(["replay", str(DATA), "--node", "101",
                 "--module", str(ROOT / "oe_plugin" / "modules" / "spike_detector.py"),
                 "--config", str(GUI_CONFIG), "--compare-offline", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "1 spike file(s) of earlier runs" in out and "identical to online" in out
    assert [line for line in out.splitlines() if "spikes detected online" in line] == first


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[detect]\npolarity = 'sideways'\n")
    assert main(["detect", str(DATA), "--node", "101", "--out", str(tmp_path / "o"),
                 "--config", str(bad)]) == 2
    assert "detect.polarity" in capsys.readouterr().err
    assert main(["detect", str(DATA), "--node", "999", "--out", str(tmp_path / "o")]) == 2
    assert "999" in capsys.readouterr().err
    assert not (tmp_path / "o" / "peaks.npy").exists()


def test_info_lists_every_record_node(capsys):
    """The example session has Record Nodes 101 and 105: both are listed unless --node picks
    one (an earlier version showed only the first)."""
    assert main(["info", str(DATA), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["node"] for e in entries] == ["Record Node 101", "Record Node 105"]
    assert [Path(e["path"]).name for e in entries] == ["Record Node 101", "Record Node 105"]
    assert main(["info", str(DATA), "--node", "105"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("105: recording 0 stream 0") and "Record Node 101" not in out
    assert main(["info", str(DATA / "Record Node 101")]) == 0
    assert capsys.readouterr().out.startswith("recording 0 stream 0")
