"""The session file, the `sweepstim run` command end to end (offscreen), and Open Ephys control
against a local stand-in of the GUI's HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from oe_plugin.protocol import ERROR_MASK, ProtocolSettings, decode_events
from oe_plugin.protocol.spec import SWEEP_NONE
from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions
from stimulus.cli import main
from stimulus.oe_control import OEControl, OEControlError
from stimulus.rig import load_rig
from stimulus.runner import prepare
from stimulus.session_file import load_session, paths_for, write_session
from stimulus.ttl.encoding import CODE_END, CODE_START
from stimulus.ttl.file import read_transition_log

SCRIPT = """\
from stimulus.script import Blanks, Experiment, Runs, Variable

experiment = Experiment(
    stimulus="grating",
    static=dict(mask="circle"),
    dynamic=dict(
        ori_deg=Variable([0, 45, 90], dim=0, shuffle=True),
        sf_cpd=Variable([0.1, 0.2], dim=1, shuffle=True),
        tf_hz=2.0,
        sweep_s=0.03,
        postsweep_s=0.01,
    ),
    runs=Runs(2, reshuffle=True),
    blanks=Blanks(every=4, duration_s=0.02),
    preexp_s=0.02,
    postexp_s=0.02,
)
"""

RIG = """\
[screen]
width_px = 96
height_px = 72
fullscreen = false

[timing]
priority = false
"""


@pytest.fixture
def files(tmp_path):
    script = tmp_path / "gratings.py"
    script.write_text(SCRIPT)
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG)
    return script, rig, tmp_path


class StandInGUI(BaseHTTPRequestHandler):
    """The Open Ephys GUI's HTTP API, as far as sweepstim uses it."""

    calls: list = []
    mode = "ACQUIRE"
    can_record = True

    def _reply(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        type(self).calls.append(("GET", self.path, None))
        if self.path == "/api/status":
            self._reply({"mode": type(self).mode})
        else:
            self._reply({})

    def do_PUT(self):  # noqa: N802
        n = int(self.headers.get("Content-Length", 0))
        payload = json.loads(self.rfile.read(n) or b"{}")
        cls = type(self)
        cls.calls.append(("PUT", self.path, payload))
        if self.path == "/api/status":
            if payload["mode"] != "RECORD" or cls.can_record:
                cls.mode = payload["mode"]
            self._reply({"mode": cls.mode})
        elif self.path == "/api/message":
            self._reply({"message": "ok"})
        else:
            self._reply({})

    def log_message(self, *args):
        pass


@pytest.fixture
def gui():
    handler = type("Handler", (StandInGUI,), {"calls": [], "mode": "ACQUIRE",
                                              "can_record": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, server.server_address[1]
    server.shutdown()
    server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_session_file_round_trip_and_atomic(tmp_path):
    meta = {"session_id": "x", "seed": np.int64(3), "sweep_table": {"conditions": [{"a": 1}]},
            "values": np.arange(3)}
    frames = {"flip_time_s": np.array([0.0, 0.005]), "code": np.array([1, 65535], np.int32)}
    path = write_session(tmp_path / "s", meta, frames)
    assert path.name == "s.session.json"
    write_session(tmp_path / "s.session.json", {**meta, "seed": 4}, frames)  # replaces
    s = load_session(path)
    assert s.meta["seed"] == 4 and s.meta["format"] == "sweepstim-session"
    assert s.meta["values"] == [0, 1, 2]
    assert s.condition(0) == {"a": 1}
    assert np.array_equal(s.frames["code"], frames["code"])
    assert s.frames["code"].dtype == np.int32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.frames.npz", "s.session.json"]
    assert paths_for(tmp_path / "s.json")[1].name == "s.frames.npz"
    with pytest.raises(ValueError):
        write_session(tmp_path / "bad", {"x": float("nan")}, frames)  # no NaN in the JSON


def test_run_offscreen_end_to_end_with_ttl_and_open_ephys(files, gui):
    script, rig, tmp = files
    handler, port = gui
    out = tmp / "sessions"
    code = main(["run", str(script), "--config", str(rig), "--seed", "77", "--offscreen",
                 "--ttl", f"file:{tmp / 'ttl.tsv'}", "--oe-host", "127.0.0.1",
                 "--oe-port", str(port), "--out", str(out) + "/", "--quiet"])
    assert code == 0
    (json_path,) = out.glob("*.session.json")
    s = load_session(json_path)
    m = s.meta
    assert m["status"] == "completed" and m["seed"] == 77 and m["script"]["text"] == SCRIPT
    assert m["sweep_table"]["n_conditions"] == 6
    assert len(m["sweep_table"]["conditions"]) == 6
    assert m["ttl_protocol"]["protocol_version"] == 2
    from oe_plugin.protocol.session_code import code_from_session_id

    assert m["ttl_protocol"]["session_code"] == code_from_session_id(m["session_id"])
    assert m["frames"]["n_dropped"] == 0 and m["display"]["simulated_vsync"] is True

    # the same script and seed rebuild the same table, bit for bit
    p = prepare(script, load_rig(rig), seed=m["seed"])
    assert m["sweep_table"]["order"] == p.table.order.tolist()
    assert m["sweep_table"]["conditions"] == [dict(c) for c in p.table.conditions]
    assert np.array_equal(s.frames["plan_code"], p.plan.code)

    # the acquisition side: decode the TTL log and join it with the session's sweep table
    tr, proto = read_transition_log(tmp / "ttl.tsv")
    settings = ProtocolSettings.from_dict(proto)
    ev = sample_transitions(tr, SimSettings(sample_rate_hz=30000.0, first_sample_number=1000))
    frames, dec = decode_events(settings, 30000.0, ev["sample_number"], ev["line"],
                                ev["state"])
    # the session code went out on the TTL lines and comes back with the experiment
    assert [e[1:] for e in dec.experiments] == [(m["ttl_protocol"]["session_code"], "ok")]
    log = s.frames
    assert frames.size == log["code"].size
    assert not np.any(frames["flags"] & ERROR_MASK)
    assert np.array_equal(frames["frame_number"], log["frame_number"])
    from oe_plugin.protocol.verify import sent_sweeps

    assert np.array_equal(frames["sweep_index"], sent_sweeps(log["code"]))
    chunks = (log["plan_index"] < 0) & ~np.isin(log["code"], [CODE_START, CODE_END,
                                                               SWEEP_NONE])
    assert chunks.sum() == 6  # 2 copies x 3 chunks of 14 bits, each between two STARTs
    shown = frames["sweep_index"][frames["sweep_index"] != SWEEP_NONE]
    conds = [m["sweep_table"]["conditions"][i] for i in shown]
    assert {(c["ori_deg"], c["sf_cpd"]) for c in conds} == {(o, f) for o in (0, 45, 90)
                                                            for f in (0.1, 0.2)}
    # six refreshes per sweep (0.03 s at 200 Hz), 12 sweeps
    assert shown.size == 6 * 12
    # the offline package reads this session file and joins it with the decoded frames
    from offline.sweeps import compare_with_frame_log, frame_parameters, read_session_file

    session = read_session_file(json_path)
    assert session.protocol == settings and session.seed == 77
    cmp = compare_with_frame_log(frames, session.frame_log)
    assert cmp["matched"] == cmp["agree"] == frames.size
    params = frame_parameters(frames, session.sweep_table)
    stim_frames = frames["sweep_index"] != SWEEP_NONE
    assert np.array_equal(params["ori_deg"][stim_frames], [c["ori_deg"] for c in conds])
    assert np.all(np.isnan(params["ori_deg"][~stim_frames]))

    # Open Ephys: recording started before the first sweep, identity posted, back to ACQUIRE
    puts = [(path, body) for verb, path, body in handler.calls if verb == "PUT"]
    assert puts[0] == ("/api/status", {"mode": "RECORD"})
    assert puts[1][0] == "/api/message"
    ident = puts[1][1]["text"]
    assert f"session={m['session_id']}" in ident and "seed=77" in ident
    assert f"sha256={m['script']['sha256'][:12]}" in ident
    assert puts[2] == ("/api/message", {"text": f"sweepstim session={m['session_id']} end "
                                                f"status=completed"})
    assert puts[3] == ("/api/status", {"mode": "ACQUIRE"})
    assert handler.mode == "ACQUIRE"
    assert m["open_ephys"]["previous_mode"] == "ACQUIRE"


def test_open_ephys_unreachable_refuses_before_the_window(files, capsys):
    script, rig, tmp = files
    code = main(["run", str(script), "--config", str(rig), "--offscreen", "--oe-host",
                 "127.0.0.1", "--oe-port", str(free_port()), "--out", str(tmp / "o") + "/"])
    assert code == 2
    assert "not reachable" in capsys.readouterr().err
    assert not (tmp / "o").exists()


def test_open_ephys_without_record_node_is_an_error(gui):
    handler, port = gui
    handler.can_record = False
    handler.mode = "IDLE"
    oe = OEControl("127.0.0.1", port, timeout_s=0.3)
    with pytest.raises(OEControlError, match="did not start recording"):
        oe.start_recording()
    oe.stop_recording()
    assert handler.calls[-1] == ("PUT", "/api/status", {"mode": "IDLE"})


def test_dry_run_prints_summary_and_renders_nothing(files, capsys):
    script, rig, tmp = files
    assert main(["run", str(script), "--config", str(rig), "--dry-run", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 condition(s)" in out and "12 stimulus sweeps" in out and "seed 1" in out
    assert "refreshes at 200 Hz" in out
    assert main(["run", str(script), "--config", str(rig), "--dry-run", "--seed", "1",
                 "--out", str(tmp / "dry.session.json")]) == 0
    s = load_session(tmp / "dry.session.json")
    assert s.meta["status"] == "dry-run" and s.frames["plan_code"].size > 0


def test_refresh_rate_mismatch_refused_or_allowed(files, monkeypatch, capsys):
    import stimulus.timing

    script, rig, tmp = files
    monkeypatch.setattr(stimulus.timing, "measure_refresh",
                        lambda flip, clock, n: (150.0, np.full(n, 1 / 150.0)))
    code = main(["run", str(script), "--config", str(rig), "--window", "--quiet",
                 "--out", str(tmp / "r") + "/"])
    assert code == 2
    assert "refreshes at 150.000 Hz, not the configured 200 Hz" in capsys.readouterr().err
    code = main(["run", str(script), "--config", str(rig), "--window", "--quiet",
                 "--allow-refresh-mismatch", "--out", str(tmp / "r") + "/"])
    assert code == 0
    (path,) = (tmp / "r").glob("*.session.json")
    m = load_session(path).meta
    assert m["display"]["refresh_hz_measured"] == 150.0
    assert m["frames"]["refresh_hz"] == 150.0
    assert m["ttl_protocol"]["refresh_hz"] == 150.0


@pytest.mark.parametrize("kind,static,dynamic", [
    ("bar", {}, "speed_dps=Variable([-20.0, 20.0], dim=0)"),
    ("sparse_noise", {"n_cells_x": 4, "n_cells_y": 4, "n_spots": 3},
     "pattern_i=Variable(range(4), dim=0, shuffle=True)"),
    ("msequence", {"order": 6, "n_cells_x": 3, "n_cells_y": 3},
     "frame_i=Variable(range(0, 60, 6), dim=0)"),
    ("movie", {"refreshes_per_frame": 2}, "frame_i=Variable([0, 4], dim=0)"),
    ("blank", {}, "bg_lum=Variable([0.0, 1.0], dim=0)"),
])
def test_every_stimulus_runs_offscreen(tmp_path, kind, static, dynamic):
    if kind == "movie":
        np.save(tmp_path / "m.npy", np.zeros((20, 4, 4), np.uint8))
        static = {**static, "path": str(tmp_path / "m.npy")}
    script = tmp_path / f"{kind}.py"
    script.write_text("from stimulus.script import Experiment, Runs, Variable\n"
                      f"experiment = Experiment(stimulus={kind!r}, static={static!r},\n"
                      f"    dynamic=dict({dynamic}, sweep_s=0.02),\n"
                      "    runs=Runs(2, reshuffle=True), preexp_s=0.01, postexp_s=0.01)\n")
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG)
    assert main(["run", str(script), "--config", str(rig), "--offscreen", "--quiet",
                 "--out", str(tmp_path / "s.session.json")]) == 0
    s = load_session(tmp_path / "s.session.json")
    assert s.meta["status"] == "completed" and s.meta["stimulus"] == kind
    log = s.frames
    assert np.array_equal(log["plan_index"][log["plan_index"] >= 0],
                          np.arange(s.frames["plan_code"].size))


def test_keys_pause_and_cancel_through_the_window(tmp_path):
    from pyglet.window import key

    from stimulus.display import Display
    from stimulus.runner import Runner
    from stimulus.timing import FakeClock
    from stimulus.ttl.virtual import VirtualBackend

    script = tmp_path / "b.py"
    script.write_text("from stimulus.script import Experiment\n"
                      "experiment = Experiment(stimulus='blank', dynamic={'sweep_s': 10.0})\n")
    rig_path = tmp_path / "rig.toml"
    rig_path.write_text(RIG)
    p = prepare(script, load_rig(rig_path), seed=0)
    display = Display(32, 24)
    try:
        r = Runner(p, display, VirtualBackend(p.protocol), FakeClock(0.005))
        w = display.window

        def press(symbol):
            w.dispatch_event("on_key_press", symbol, 0)  # queued like a real key press
            display.dispatch_events()

        press(key.SPACE)
        assert r.pause_requested
        press(key.SPACE)
        assert not r.pause_requested
        press(key.ESCAPE)
        assert r.cancel_requested and not display.window.has_exit  # Esc does not close it
        res = r.run()  # cancelled before the first planned refresh: markers only
        assert res.status == "cancelled"
        assert set(res.log["plan_index"].tolist()) == {-1}
    finally:
        display.close()


def test_display_without_vsync_is_refused(files, monkeypatch, capsys):
    import stimulus.timing

    script, rig, tmp = files
    monkeypatch.setattr(stimulus.timing, "measure_refresh",
                        lambda flip, clock, n: (6000.0, np.full(n, 1 / 6000.0)))
    code = main(["run", str(script), "--config", str(rig), "--window", "--quiet",
                 "--allow-refresh-mismatch", "--out", str(tmp / "v") + "/"])
    assert code == 2
    assert "does not wait for the vertical blank" in capsys.readouterr().err
    assert not (tmp / "v").exists()


@pytest.mark.slow
def test_gui_that_cannot_record_refuses_before_the_first_refresh(files, gui, capsys):
    script, rig, tmp = files
    handler, port = gui
    handler.can_record = False
    code = main(["run", str(script), "--config", str(rig), "--offscreen", "--quiet",
                 "--oe-host", "127.0.0.1", "--oe-port", str(port), "--out", str(tmp / "n") + "/"])
    assert code == 2
    assert "did not start recording" in capsys.readouterr().err
    assert handler.mode == "ACQUIRE"  # left as it was
    assert not (tmp / "n").exists()


@pytest.mark.parametrize("fail_at", ["runner", "refresh",
                                     pytest.param("oe", marks=pytest.mark.slow)])
def test_run_closes_display_and_ttl_backend_on_every_exit(files, gui, monkeypatch, capsys,
                                                          fail_at):
    """A failure after the window opened (the runner cannot be built; the refresh check
    refuses; the GUI cannot record) still closes the window and the TTL backend, once each."""
    import stimulus.display
    import stimulus.runner
    import stimulus.timing
    import stimulus.ttl.base

    script, rig, tmp = files
    handler, port = gui
    closed = []

    class Display(stimulus.display.Display):
        def close(self):
            closed.append("display")
            super().close()

    make_backend = stimulus.ttl.base.make_backend

    def tracked_backend(spec, settings):
        backend = make_backend(spec, settings)
        close = backend.close
        backend.close = lambda: (closed.append("ttl"), close())
        return backend

    monkeypatch.setattr(stimulus.display, "Display", Display)
    monkeypatch.setattr(stimulus.ttl.base, "make_backend", tracked_backend)
    args = ["run", str(script), "--config", str(rig), "--quiet", "--ttl", "virtual",
            "--out", str(tmp / "x") + "/"]
    if fail_at == "runner":
        def broken_runner(*a, **k):
            raise RuntimeError("runner broke")

        monkeypatch.setattr(stimulus.runner, "Runner", broken_runner)
        with pytest.raises(RuntimeError, match="runner broke"):
            main(args + ["--offscreen"])
    elif fail_at == "refresh":
        monkeypatch.setattr(stimulus.timing, "measure_refresh",
                            lambda flip, clock, n: (150.0, np.full(n, 1 / 150.0)))
        assert main(args + ["--window"]) == 2
        assert "refreshes at 150.000 Hz" in capsys.readouterr().err
    else:
        handler.can_record = False
        assert main(args + ["--offscreen", "--oe-host", "127.0.0.1", "--oe-port",
                            str(port)]) == 2
        assert "did not start recording" in capsys.readouterr().err
    assert sorted(closed) == ["display", "ttl"]
    assert not (tmp / "x").exists()
