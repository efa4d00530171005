"""Which stimulus session belongs to which stretch of a recording (issue 17).

Two runs of the same script with the same seed put identical sweeps on the TTL lines; only the
session code in the START block tells them apart. A simulated recording with such twins (and a
version 1 session without a code) must have each stretch matched to its own session file, also
after the files are renamed, and old files without a code still match by frame log.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from oe_plugin.protocol import ProtocolSettings, encode_session, session_codes
from oe_plugin.protocol.oe_binary_events import write_binary_recording
from oe_plugin.protocol.session_code import code_from_session_id, start_block
from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions
from offline.analysis.model import Recording
from stimulus.session_file import write_session

FS = 30000.0
FIRST = 5000
SETTINGS = ProtocolSettings()


def _twins(root, *, old_style_third=False):
    """Two same-table sessions ('depth1', 'depth2'), and optionally a third identical one sent
    and recorded the version 1 way (no code). Returns the session paths and each stretch's
    first START sample."""
    rng = np.random.default_rng(3)
    body = np.repeat(rng.permutation(8), 6).astype(np.int32)  # same seed: same sweeps
    table = [{"ori_deg": 45 * i} for i in range(8)]
    names = ["depth1", "depth2"] + (["depth3"] if old_style_third else [])
    transitions, paths, starts = [], [], []
    t0 = 100_000.0
    for k, name in enumerate(names):
        code = None if name == "depth3" else code_from_session_id(name)
        codes = session_codes(SETTINGS, body, session_code=code)
        enc = encode_session(SETTINGS, codes, t0_us=t0)
        transitions.append(enc.transitions)
        starts.append(FIRST + int(np.ceil(t0 * FS / 1e6)))
        n0 = len(start_block(SETTINGS, code))
        plan_index = np.full(codes.size, -1, np.int64)
        plan_index[n0:n0 + body.size] = np.arange(body.size)
        log = {"flip_time_s": enc.flip_time_us / 1e6, "frame_number": enc.frame_numbers,
               "code": codes, "plan_index": plan_index}
        proto = SETTINGS.to_dict()
        if code is None:
            proto["protocol_version"] = 1
        else:
            proto["session_code"] = code
        meta = {"session_id": name, "created_utc": f"2026-12-07T01:0{k}:00+00:00",
                "seed": 3, "stimulus": "grating", "sweep_table": {"conditions": table},
                "ttl_protocol": proto, "frames": {"refresh_hz": SETTINGS.refresh_hz}}
        paths.append(write_session(root / "stim" / f"{name}.session.json", meta, log))
        t0 = enc.flip_time_us[-1] + 1_000_000.0
    tr = np.concatenate(transitions)
    ev = sample_transitions(tr, SimSettings(FS, first_sample_number=FIRST, jitter_us=5.0))
    write_binary_recording(root / "Record Node 101" / "experiment1" / "recording1",
                           sample_rate_hz=FS, n_samples=int(t0 * FS / 1e6) + 1000,
                           first_sample_number=FIRST, n_channels=2, events=ev)
    return paths, starts


def _matched(root) -> dict:
    """{session id: first sample of the stretch matched to it}."""
    rec = Recording(root)
    out = {}
    for e in rec.experiments:
        r = e.refreshes
        out[e.session["raw"]["session_id"]] = None if r is None or not r.size else \
            int(r["sample_number"][0])
    return out


def _stretch_of(start, stretches):
    """Index of the stretch whose START block begins at or before ``start`` (latest)."""
    return int(np.searchsorted(np.asarray(stretches), start, side="right") - 1)


def test_twin_sessions_match_their_own_stretch_also_after_renaming(tmp_path):
    paths, starts = _twins(tmp_path)
    got = _matched(tmp_path)
    assert _stretch_of(got["depth1"], starts) == 0
    assert _stretch_of(got["depth2"], starts) == 1
    # swap the file names (and make their times equal): names and order say nothing now
    a, b = paths
    tmp = a.with_name("tmp.session.json")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    for p in (a, b):
        raw = json.loads(p.read_text())
        raw["created_utc"] = "2026-12-07T01:00:00+00:00"
        p.write_text(json.dumps(raw))
    got = _matched(tmp_path)
    assert _stretch_of(got["depth1"], starts) == 0
    assert _stretch_of(got["depth2"], starts) == 1


def test_without_the_code_twins_are_ambiguous_by_frame_log(tmp_path):
    """The frame-log fallback alone cannot tell twins apart (why the code exists): with the
    codes removed from the files, the swapped pair is matched by order, i.e. wrongly."""
    paths, starts = _twins(tmp_path)
    for p in paths:
        raw = json.loads(p.read_text())
        raw["ttl_protocol"].pop("session_code")
        raw["created_utc"] = "2026-12-07T01:00:00+00:00"
        p.write_text(json.dumps(raw))
    a, b = paths
    tmp = a.with_name("tmp.session.json")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    got = _matched(tmp_path)
    assert _stretch_of(got["depth1"], starts) == 1  # the wrong one: no code, no way to know


def test_old_session_without_code_still_matches_by_frame_log(tmp_path):
    paths, starts = _twins(tmp_path, old_style_third=True)
    got = _matched(tmp_path)
    assert [_stretch_of(got[n], starts) for n in ("depth1", "depth2", "depth3")] == [0, 1, 2]
    rec = Recording(tmp_path)
    assert len(rec.experiments) == 3
    assert [c[1] for c in rec.experiment_codes] == ["ok", "ok", "absent"]


def test_a_code_no_file_has_leaves_that_stretch_alone(tmp_path):
    """Only depth2's file is there: it gets its own stretch, not the first one by order."""
    paths, starts = _twins(tmp_path)
    paths[0].unlink()
    got = _matched(tmp_path)
    assert _stretch_of(got["depth2"], starts) == 1


@pytest.mark.parametrize("scheme", ["serial"])
def test_match_sessions_never_gives_a_coded_part_to_another_session(scheme):
    from offline.analysis.adapters import match_sessions

    parts = [np.zeros(3, [("frame_number", "<i8"), ("sweep_index", "<i4")])] * 2
    sessions = [{"path": "a", "session_code": 7, "frame_log": None},
                {"path": "b", "session_code": 9, "frame_log": None}]
    assert match_sessions(parts, sessions, [(9, "ok"), (7, "ok")]) == [1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # b's code arrived corrupted and there is no frame log: b's place in time order
        # (part 1) is a's by its code, so b is left unmatched rather than guessed
        assert match_sessions(parts, sessions, [(None, "corrupt"), (7, "ok")]) == [1, None]
        # a part coded for a, a's file missing: b (by order) must not take it
        assert match_sessions(parts[:1], sessions[1:], [(7, "ok")]) == [None]
    # with b's frame log, b gets its part by the log although its code was lost
    log = {"frame_number": np.arange(3), "code": np.zeros(3, np.int64)}
    sessions[1]["frame_log"] = log
    assert match_sessions(parts, sessions, [(None, "corrupt"), (7, "ok")]) == [1, 0]


def test_monitor_matches_twin_experiments_by_code():
    """The online statistics' experiments carry the decoded code: twin files (same order)
    go to their own experiment, whatever order the files are given in."""
    from pathlib import Path

    from oe_plugin.outputs.stats_file import ExperimentStats
    from offline.monitor import SessionTable, match_sessions

    sig = np.array([3, 1, 2], np.int64)
    exps = [ExperimentStats(k, np.zeros((1, 4), np.int64), np.ones(4, np.int64),
                            np.zeros(1, np.int64), signature=sig, session_code=code)
            for k, code in ((0, None), (1, 111), (2, 222))]
    files = [SessionTable(Path(f"{n}.session.json"), [{}] * 4, sig, code)
             for n, code in (("second", 222), ("first", 111))]
    assert match_sessions(exps, files) == {1: 1, 2: 0}
    # without codes the twins are matched by order of the candidates: the wrong way round
    plain = [SessionTable(f.path, f.sweep_table, f.order) for f in files]
    assert match_sessions([ExperimentStats(e.number, e.sweep_counts, e.sweep_frames,
                                           e.no_sweep_counts, signature=sig)
                           for e in exps], plain) == {1: 0, 2: 1}
