"""A simulation's output folder: a previous simulation there is replaced, anything else is kept;
the same for the demo's per-session replay folders.

The demo's analysis matches every session file under ``recording/stim`` against the decoded
TTLs, so a second ``sweepsort demo`` into the same folder once found the first run's session
files there and failed (no decoded experiment matched them)."""

from __future__ import annotations

import json

import pytest

from offline.cli import main
from offline.demo import REPLAY_MARKER, fresh_replay_dir
from offline.sim.build import SIM_MARKER, clear_previous_simulation


def _previous_run(out, marker=True, truth=True):
    stim = out / "recording" / "stim"
    stim.mkdir(parents=True)
    (stim / "gratings_20261206_200840_1.session.json").write_text("{}")
    if truth:
        (out / "truth").mkdir()
        (out / "truth" / "truth.json").write_text(json.dumps({"format": "sweepsort-sim-truth"}))
    if marker:
        (out / SIM_MARKER).write_text("")


@pytest.mark.parametrize("marker,truth", [(True, True), (True, False), (False, True)])
def test_a_previous_simulation_is_removed(tmp_path, marker, truth):
    _previous_run(tmp_path, marker, truth)
    (tmp_path / "sort").mkdir()  # the demo's other outputs are not the simulation's to remove
    clear_previous_simulation(tmp_path)
    assert not (tmp_path / "recording").exists() and not (tmp_path / "truth").exists()
    assert (tmp_path / "sort").is_dir() and (tmp_path / SIM_MARKER).is_file()


def test_a_foreign_recording_folder_is_refused_untouched(tmp_path, capsys):
    _previous_run(tmp_path, marker=False, truth=False)
    with pytest.raises(FileExistsError, match="not a previous sweepsort simulation"):
        clear_previous_simulation(tmp_path)
    assert (tmp_path / "recording" / "stim" / "gratings_20261206_200840_1.session.json").is_file()
    # the demo (simulation in OUT/sim) reports it in one line, no traceback
    _previous_run(tmp_path / "demo" / "sim", marker=False, truth=False)
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo"), "--quiet"]) == 2
    assert "not a previous sweepsort simulation" in capsys.readouterr().err
    kept = tmp_path / "demo" / "sim" / "recording" / "stim"
    kept = kept / "gratings_20261206_200840_1.session.json"
    assert kept.is_file()


def test_a_new_or_empty_folder_gets_the_marker(tmp_path):
    clear_previous_simulation(tmp_path / "new")
    assert (tmp_path / "new" / SIM_MARKER).is_file()


def test_a_previous_replay_folder_is_emptied_a_foreign_one_refused(tmp_path):
    # an earlier demo run's numbered online files would be read again with the new ones
    old = tmp_path / "old" / "sweepsort"
    old.mkdir(parents=True)
    (old / "online_sweeps_000.bin").write_bytes(b"x")
    (tmp_path / "old" / "pipeline.toml").write_text("[match]\n")  # a run before the marker
    fresh_replay_dir(tmp_path / "old")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [REPLAY_MARKER]
    (tmp_path / "old" / "online_sweeps_001.bin").write_bytes(b"y")  # a run with the marker
    fresh_replay_dir(tmp_path / "old")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [REPLAY_MARKER]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a sweepsort demo replay folder"):
        fresh_replay_dir(foreign)
    assert (foreign / "notes.txt").read_text() == "keep"
