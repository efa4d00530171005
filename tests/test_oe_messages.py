"""sweepstim and the GUI's HTTP API (issue 17): messages that have a chance, and the session file
next to the recording.

The host simulator's fake GUI (``oe_plugin.host.gui_api.GuiApiStandIn``) reproduces by default
what GUI 0.6's Message Center does with HTTP messages: only the latest one is kept and it is
emitted at most once per processing block, saved only if that block is recorded.
"""

from __future__ import annotations

import time

import pytest
from test_stim_session import files  # noqa: F401 - the script + rig fixture

from oe_plugin.host.gui_api import GuiApiStandIn
from stimulus.cli import main
from stimulus.oe_control import OEControl


def test_stand_in_message_center_keeps_only_the_latest_message_per_block():
    """The host fact, with the stand-in's defaults (a 696-sample block at 30 kHz)."""
    api = GuiApiStandIn()
    assert api.message_center and api.block_s == pytest.approx(696 / 30000)
    api.set_mode("RECORD")
    for text in ("identity", "script", "end"):  # back to back, within one block
        api.post_message(text)
    time.sleep(3 * api.block_s)
    assert api.messages() == ["end"]            # the earlier two were replaced
    api.post_message("last words")
    api.set_mode("IDLE")                        # leaving RECORD before the next block
    time.sleep(3 * api.block_s)
    assert api.messages() == ["end"]
    api.set_mode("ACQUIRE")
    api.post_message("not recording")
    time.sleep(3 * api.block_s)
    assert api.messages() == ["end"]            # emitted, but no Record Node saved it


def test_an_ideal_gui_would_save_everything():
    api = GuiApiStandIn(message_center=False)
    api.set_mode("RECORD")
    for text in ("a", "b"):
        api.post_message(text)
    api.set_mode("IDLE")
    assert api.messages() == ["a", "b"]


@pytest.mark.parametrize("block_s", [696 / 30000, 2048 / 44100])  # default and big buffers
def test_sweepstim_paces_its_messages(block_s):
    with GuiApiStandIn(block_s=block_s) as api:
        oe = OEControl("127.0.0.1", api.port)
        oe.start_recording()
        for text in ("identity", "script", "end"):
            oe.message(text)
        oe.stop_recording()
        assert api.mode == "ACQUIRE"
        assert api.messages() == ["identity", "script", "end"]


def test_unpaced_posts_are_lost():
    """Without the spacing (what sweepstim did before issue 17), messages are lost."""
    with GuiApiStandIn(block_s=0.5) as api:
        oe = OEControl("127.0.0.1", api.port, message_gap_s=0.0)
        oe.start_recording()
        for text in ("identity", "script", "end"):
            oe.message(text)
        oe.stop_recording()
        time.sleep(0.6)
        assert len(api.messages()) < 3


def _gui_with_folder(parent):
    """A stand-in whose RECORD makes a new recording folder under ``parent``, as the GUI
    does."""
    api = GuiApiStandIn(parent_directory=parent)
    made = []

    def on_record():
        d = parent / f"2026-12-07_01-02-0{len(made)}"
        d.mkdir()
        made.append(d)

    api.on_record = on_record
    return api, made


def test_session_file_written_next_to_the_recording(files, tmp_path, capsys):  # noqa: F811
    from offline.analysis.adapters import find_session_files

    script, rig, tmp = files
    parent = tmp_path / "data"
    parent.mkdir()
    (parent / "older-recording").mkdir()
    api, made = _gui_with_folder(parent)
    with api:
        code = main(["run", str(script), "--config", str(rig), "--seed", "5", "--offscreen",
                     "--oe-host", "127.0.0.1", "--oe-port", str(api.port),
                     "--out", str(tmp / "sessions") + "/", "--quiet"])
        assert api.messages()[-1].endswith("end status=completed")
        assert len(api.messages()) == 2  # identity and end, both saved
    assert code == 0
    (rec,) = made
    (local,) = (tmp / "sessions").glob("*.session.json")
    copy = rec / "sweepsort" / "stimulus" / local.name
    assert copy.exists() and copy.with_name(local.name.replace(".session.json",
                                                               ".frames.npz")).exists()
    assert copy.read_bytes() == local.read_bytes()
    assert find_session_files(rec) == [copy]
    assert not list((parent / "older-recording").iterdir())
    assert f"next to the recording: {copy}" in capsys.readouterr().out


def test_no_new_folder_says_where_to_copy(files, tmp_path, capsys, monkeypatch):  # noqa: F811
    import stimulus.oe_control as oc

    monkeypatch.setattr(oc, "FOLDER_WAIT_S", 0.2)
    script, rig, tmp = files
    parent = tmp_path / "elsewhere"  # the GUI records on another computer: no such folder here
    with GuiApiStandIn(parent_directory=parent) as api:
        code = main(["run", str(script), "--config", str(rig), "--seed", "5", "--offscreen",
                     "--oe-host", "127.0.0.1", "--oe-port", str(api.port),
                     "--out", str(tmp / "sessions") + "/", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "copy " in out and f"{parent}/<this recording's folder>/sweepsort/stimulus" in out
    assert not parent.exists()
