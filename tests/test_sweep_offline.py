"""Offline sweep decoding: TTL events written as the GUI writes them, read back (ours and
open-ephys-python-tools), decoded, and joined with the stimulus session's sweep table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from protocol_cases import FIRST_SAMPLE, PARALLEL, SERIAL, build, decode

from oe_plugin.config import SettingsError
from oe_plugin.protocol.oe_binary_events import (
    processor_folder,
    write_binary_recording,
    write_ttl_events,
)
from oe_plugin.protocol.spec import SWEEP_NONE, SWEEP_UNKNOWN
from offline.recording import open_recording
from offline.sweeps import (
    SessionFileError,
    compare_with_frame_log,
    decode_recording,
    frame_parameters,
    read_session_file,
)

FS = 30000.0


@pytest.fixture(scope="module")
def serial_recording(tmp_path_factory):
    s = build(SERIAL, FS, 1500, seed=2)
    root = tmp_path_factory.mktemp("rec")
    rec = root / "Record Node 101" / "experiment1" / "recording1"
    n = int(s.events["sample_number"].max() - FIRST_SAMPLE + 100)
    write_binary_recording(rec, sample_rate_hz=FS, n_samples=n, n_channels=2,
                           first_sample_number=FIRST_SAMPLE, events=s.events)
    return root, rec, s


def test_event_files_as_the_gui_writes_them(serial_recording):
    _root, rec, s = serial_recording
    d = rec / "events" / "Acquisition_Board-100.Rhythm Data" / "TTL"
    states = np.load(d / "states.npy")
    assert states.dtype == np.int16
    np.testing.assert_array_equal(np.abs(states) - 1, s.events["line"])
    np.testing.assert_array_equal(states > 0, s.events["state"])
    assert np.load(d / "sample_numbers.npy").dtype == np.int64
    np.testing.assert_allclose(np.load(d / "timestamps.npy"), s.events["sample_number"] / FS)
    words = np.load(d / "full_words.npy")
    assert words.dtype == np.uint64
    # every line ends low; the word after the last event is 0
    assert words[-1] == 0
    oebin = json.loads((rec / "structure.oebin").read_text())
    assert oebin["events"][0]["folder_name"] == "Acquisition_Board-100.Rhythm Data/TTL/"


def test_readers_agree(serial_recording):
    root, _rec, s = serial_recording
    ev = open_recording(root).ttl_events()
    np.testing.assert_array_equal(ev["sample_number"], s.events["sample_number"])
    # our reader keeps the file order (stable by sample), i.e. the GUI's event order
    np.testing.assert_array_equal(ev["line"], s.events["line"])
    from open_ephys.analysis import Session

    tools = Session(str(root)).recordnodes[0].recordings[0].events
    assert len(tools) == s.events.size
    assert sorted(tools["line"].unique() - 1) == [1, 2]


def test_decode_recording_equals_decoding_the_events(serial_recording):
    root, _rec, s = serial_recording
    frames = decode_recording(root, SERIAL)
    want, _ = decode(s)
    np.testing.assert_array_equal(frames, want)
    assert frames.size == s.codes.size


@pytest.mark.slow
def test_session_file_supplies_the_protocol_and_the_table(tmp_path):
    s = build(PARALLEL, FS, 800, seed=4)
    rec = tmp_path / "rec" / "experiment1" / "recording1"
    n = int(s.events["sample_number"].max() - FIRST_SAMPLE + 100)
    write_binary_recording(rec, sample_rate_hz=FS, n_samples=n, first_sample_number=FIRST_SAMPLE,
                           events=s.events)
    n_rows = int(s.codes[s.codes < 65533].max()) + 1
    table = [{"ori": 30.0 * (i % 12), "sf": 0.1 * (1 + i // 12), "name": f"c{i}"}
             for i in range(n_rows)]
    session = tmp_path / "drift.session.json"
    session.write_text(json.dumps({"format": "sweepsort stimulus session", "seed": 7,
                                   "sweep_table": table, "ttl_protocol": PARALLEL.to_dict()}))
    info = read_session_file(session)
    assert info.protocol == PARALLEL and info.seed == 7
    frames = decode_recording(tmp_path / "rec", session=session)  # the protocol from the file
    params = frame_parameters(frames, info.sweep_table)
    shown = frames["sweep_index"]
    ok = (shown >= 0) & (shown < n_rows)
    np.testing.assert_array_equal(params["in_table"], ok)
    np.testing.assert_allclose(params["ori"][ok], 30.0 * (shown[ok] % 12))
    assert np.isnan(params["ori"][shown == SWEEP_NONE]).all()
    assert params["name"].dtype == object and params["name"][~ok].tolist() == [None] * (~ok).sum()
    assert params["name"][ok][0] == f"c{shown[ok][0]}"


def test_sweepstim_session_layout_and_frame_log(tmp_path):
    s = build(SERIAL, FS, 600, seed=8)
    frames, _ = decode(s)
    table = [{"ori": float(i)} for i in range(int(s.codes[s.codes < 65533].max()) + 1)]
    np.savez(tmp_path / "x.frames.npz", frame_number=s.frame_numbers, code=s.codes,
             flip_time_s=s.flips_us / 1e6)
    (tmp_path / "x.session.json").write_text(json.dumps({
        "format": "sweepstim-session", "sweep_table": {"n_conditions": len(table),
                                                       "conditions": table},
        "frames": {"file": "x.frames.npz"}, "ttl_protocol": SERIAL.to_dict()}))
    info = read_session_file(tmp_path / "x.session.json")
    assert info.sweep_table == table and info.frame_log is not None
    report = compare_with_frame_log(frames, info.frame_log)
    assert report["matched"] == report["agree"] == frames.size
    assert report["disagree_clean"].size == 0 and report["missing"].size == 0


def test_frame_parameters_unknown_and_missing_values():
    frames = np.zeros(4, dtype=[("sample_number", "<i8"), ("frame_number", "<i8"),
                                ("sweep_index", "<i4"), ("flags", "<u4")])
    frames["sweep_index"] = [0, 1, SWEEP_UNKNOWN, SWEEP_NONE]
    p = frame_parameters(frames, [{"a": 1}, {"b": 2.5}])
    np.testing.assert_array_equal(p["a"], [1.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(p["b"], [np.nan, 2.5, np.nan, np.nan])


@pytest.mark.parametrize("content, match", [
    ("[1, 2]", "JSON object"),
    ('{"seed": 1}', "sweep_table"),
    ('{"sweep_table": [1, 2]}', "list of objects"),
    ("{", "not valid JSON"),
])
def test_bad_session_files(tmp_path, content, match):
    p = tmp_path / "s.json"
    p.write_text(content)
    with pytest.raises(SessionFileError, match=match):
        read_session_file(p)


def test_bad_protocol_in_session_file(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"sweep_table": [], "ttl_protocol": {"frame_line": 0}}))
    with pytest.raises(SettingsError, match=r"ttl_protocol\.frame_line"):
        read_session_file(p)


def test_second_ttl_channel_and_folder_names(tmp_path):
    assert processor_folder("Neuropix-PXI", 100, "ProbeA-AP") == "Neuropix-PXI-100.ProbeA-AP"
    assert processor_folder("File Reader", 101, "x") == "File_Reader-101.x"
    ev = np.zeros(2, dtype=[("sample_number", "<i8"), ("line", "<i2"), ("state", "?")])
    ev["sample_number"] = [10, 20]
    ev["line"] = [3, 3]
    ev["state"] = [True, False]
    d = write_ttl_events(tmp_path, ev, sample_rate_hz=FS, folder="X-1.s", ttl_folder="TTL_1")
    assert d.name == "TTL_1"
    np.testing.assert_array_equal(np.load(d / "states.npy"), [4, -4])
    np.testing.assert_array_equal(np.load(d / "full_words.npy"), [8, 0])


def test_session_file_with_old_sec_names_still_reads(tmp_path):
    """A session file written before the ``_sec`` -> ``_s`` rename reads under the new names:
    ``preexp_sec``, ``blanks.sec``, ``frames.planned_duration_sec`` and the sweep parameters
    ``sweep_sec`` / ``postsweep_sec`` in the conditions, ``static``, ``dynamic`` and ``dims``."""
    path = tmp_path / "old.session.json"
    path.write_text(json.dumps({
        "preexp_sec": 1.0, "postexp_sec": 0.5, "blanks": {"every": 3, "sec": 2.0},
        "static": {"sweep_sec": 4.0}, "dynamic": {"ori": [0, 90], "postsweep_sec": 0.1},
        "sweep_table": {"conditions": [{"ori": 0.0, "sweep_sec": 4.0, "postsweep_sec": 0.1}],
                        "dims": [{"index": 0, "names": ["ori", "sweep_sec"]}]},
        "frames": {"n_plan": 10, "planned_duration_sec": 0.05}}))
    s = read_session_file(path)
    assert s.sweep_table == [{"ori": 0.0, "sweep_s": 4.0, "postsweep_s": 0.1}]
    raw = s.raw
    assert (raw["preexp_s"], raw["postexp_s"], raw["blanks"]) == (1.0, 0.5,
                                                                  {"every": 3, "duration_s": 2.0})
    assert raw["static"] == {"sweep_s": 4.0} and list(raw["dynamic"]) == ["ori", "postsweep_s"]
    assert raw["sweep_table"]["dims"][0]["names"] == ["ori", "sweep_s"]
    assert raw["frames"]["planned_duration_s"] == 0.05 and "planned_duration_sec" not in raw[
        "frames"]
    assert "preexp_sec" not in raw
