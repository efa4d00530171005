"""TTL backends: file log, serial microcontroller (a pseudo-terminal plays the MCU), NI-DAQ
(a stand-in nidaqmx module), and refusal before the experiment starts."""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
import tty
import types

import numpy as np
import pytest

from oe_plugin.protocol import decode_events
from oe_plugin.protocol.encoder import encode_session, session_codes
from oe_plugin.protocol.spec import ProtocolSettings
from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions
from stimulus.cli import main
from stimulus.ttl.base import TTLError, make_backend
from stimulus.ttl.encoding import FrameEncoder, capacity_problem
from stimulus.ttl.file import read_transition_log
from stimulus.ttl.nidaq import waveform
from stimulus.ttl.serial import SYNC, frame_message

SERIAL = ProtocolSettings()
PARALLEL = ProtocolSettings(scheme="parallel", frame_line=1, parity_line=2,
                            index_lines=tuple(range(3, 11)), counter_lines=(11,))


def drive(backend, settings, codes, t0=1.0):
    """Send a whole code sequence as the runner does: one refresh per period."""
    enc = FrameEncoder(settings)
    period = 1.0 / settings.refresh_hz
    for k, code in enumerate(codes):
        backend.send(enc.frame(int(code), k), t0 + k * period)
    return enc


def test_file_backend_log_matches_the_encoder_and_decodes(tmp_path):
    codes = session_codes(SERIAL, [65535] * 4 + [3] * 5 + [65535] * 2 + [700] * 6)
    b = make_backend(f"file:{tmp_path / 'ttl.tsv'}", SERIAL)
    b.open()
    drive(b, SERIAL, codes)
    b.close()
    tr, proto = read_transition_log(tmp_path / "ttl.tsv")
    assert ProtocolSettings.from_dict(proto) == SERIAL
    want = encode_session(SERIAL, codes, t0_us=1e6).transitions
    assert np.array_equal(tr["line"], want["line"])
    assert np.array_equal(tr["level"], want["level"])
    assert np.allclose(tr["time_us"], want["time_us"], atol=1e-3)
    ev = sample_transitions(tr, SimSettings(sample_rate_hz=30000.0))
    frames, _ = decode_events(SERIAL, 30000.0, ev["sample_number"], ev["line"], ev["state"])
    assert frames["sweep_index"][3:3 + 17].tolist() == [65535] * 4 + [3] * 5 + [65535] * 2 + [
        700] * 6


def test_file_backend_refuses_an_unwritable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    b = make_backend(f"file:{blocker / 'sub' / 'ttl.tsv'}", SERIAL)
    with pytest.raises(TTLError, match="cannot write"):
        b.open()


def test_make_backend_specs():
    assert make_backend("none", SERIAL).name == "none"
    assert make_backend("virtual", SERIAL).name == "virtual"
    for bad, msg in [("serial", "needs a port"), ("file", "needs a path"),
                     ("lpt:1", "unknown TTL backend"), ("nidaq", "needs a port")]:
        with pytest.raises(TTLError, match=msg):
            make_backend(bad, SERIAL)


def test_capacity_check():
    assert capacity_problem(65533, SERIAL) is None
    assert "65534 conditions" in capacity_problem(65534, SERIAL)
    assert capacity_problem(253, PARALLEL) is None  # 8 index lines: indices 0..252
    assert "8 index lines" in capacity_problem(254, PARALLEL)


# -- serial: a pseudo-terminal plays the microcontroller ------------------------------------

class FakeMCU(threading.Thread):
    """Reads the host's bytes on the pty master, answers like the sketch, records frames."""

    def __init__(self, fd, corrupt_after: int | None = None, answer_hello: bool = True):
        super().__init__(daemon=True)
        self.fd = fd
        self.frames: list[list[tuple[int, int]]] = []
        self.resets = 0
        self.stop = False
        self.buf = bytearray()
        self.answer_hello = answer_hello
        self.corrupt_after = corrupt_after

    def _need(self, n):
        while len(self.buf) < n and not self.stop:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                self.stop = True
                break
            if not chunk:
                self.stop = True
                break
            self.buf += chunk
        return len(self.buf) >= n

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def run(self):
        while not self.stop:
            if not self._need(2):
                return
            sync, kind = self._take(2)
            if sync != SYNC:
                os.write(self.fd, b"ES")
                continue
            if kind == ord("H"):
                if self.answer_hello:
                    os.write(self.fd, b"SWEEPSTIM-TTL 1\n")
            elif kind == ord("Z"):
                self._need(1)
                self._take(1)
                self.resets += 1
                os.write(self.fd, b"z")
            elif kind == ord("F"):
                self._need(1)
                n = self._take(1)[0]
                self._need(4 * n + 1)
                body = self._take(4 * n)
                chk = self._take(1)[0]
                ok = (ord("F") + n + sum(body)) & 0xFF == chk
                if self.corrupt_after is not None and len(self.frames) >= self.corrupt_after:
                    ok = False
                if not ok:
                    os.write(self.fd, b"EC")
                    continue
                self.frames.append([struct.unpack_from("<HH", body, 4 * i) for i in range(n)])


@pytest.fixture
def pty_pair():
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("pseudo-terminals are POSIX")
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(slave)
    os.close(master)


def test_frame_message_layout():
    msg = frame_message(((0.0, 0b10), (300.0, 0b110)))
    assert msg == bytes([0xA5, ord("F"), 2, 0, 0, 2, 0, 44, 1, 6, 0,
                         (ord("F") + 2 + 2 + 44 + 1 + 6) & 0xFF])
    with pytest.raises(TTLError):
        frame_message(((70000.0, 1),))


def test_serial_backend_against_a_pty_microcontroller(pty_pair):
    master, port = pty_pair
    mcu = FakeMCU(master)
    mcu.start()
    b = make_backend(f"serial:{port}", SERIAL)
    b.open()
    assert b.describe()["firmware"] == "SWEEPSTIM-TTL 1"
    codes = session_codes(SERIAL, [65535] * 3 + [12] * 4)
    enc = FrameEncoder(SERIAL)
    sent = []
    for k, code in enumerate(codes):
        ch = enc.frame(int(code), k)
        sent.append([(int(round(o)), w) for o, w in ch])
        b.send(ch, k / 200.0)
        assert b.poll_errors() == []
    b.close()
    deadline = time.monotonic() + 2.0
    while (len(mcu.frames) < len(codes) or mcu.resets < 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mcu.frames == sent  # every refresh's changes arrived intact, in order
    assert mcu.resets == 2     # all lines low at open and at close
    mcu.stop = True


def test_serial_backend_reports_mcu_errors(pty_pair):
    master, port = pty_pair
    mcu = FakeMCU(master, corrupt_after=2)
    mcu.start()
    b = make_backend(f"serial:{port}", SERIAL)
    b.open()
    enc = FrameEncoder(SERIAL)
    errors = []
    for k in range(5):
        b.send(enc.frame(65535, k), k / 200.0)
        time.sleep(0.01)
        errors += b.poll_errors()
    deadline = time.monotonic() + 1.0
    while len(errors) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
        errors += b.poll_errors()
    assert errors == ["checksum error"] * 3
    b.close()
    mcu.stop = True


def test_serial_backend_without_firmware_refuses_to_start(pty_pair):
    master, port = pty_pair
    mcu = FakeMCU(master, answer_hello=False)
    mcu.start()
    b = make_backend(f"serial:{port}", SERIAL)
    b.hello_timeout_s = 0.6
    t0 = time.monotonic()
    with pytest.raises(TTLError, match="no sweepstim TTL firmware answered"):
        b.open()
    assert time.monotonic() - t0 < 2.0
    mcu.stop = True


def test_serial_backend_missing_port_refused():
    b = make_backend("serial:/dev/does-not-exist-42", SERIAL)
    with pytest.raises(TTLError, match="cannot open serial port"):
        b.open()


def test_serial_backend_refuses_lines_above_15():
    s = ProtocolSettings(frame_line=20, data_line=21)
    with pytest.raises(TTLError, match="lines 0..15"):
        make_backend("serial:/dev/null", s).open()


# -- NI-DAQ with a stand-in nidaqmx --------------------------------------------------------

class FakeTask:
    instances: list = []

    def __init__(self):
        self.writes = []
        self.rates = []
        self.closed = False
        self.do_channels = types.SimpleNamespace(add_do_chan=self._add)
        self.timing = types.SimpleNamespace(cfg_samp_clk_timing=self._timing)
        FakeTask.instances.append(self)

    def _add(self, port, line_grouping=None):
        self.port = port

    def _timing(self, rate, sample_mode=None, samps_per_chan=None):
        self.rates.append((rate, samps_per_chan))

    def write(self, data, auto_start=False):
        self.writes.append(np.array(data))

    def wait_until_done(self, timeout=None):
        pass

    def stop(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_nidaqmx(monkeypatch):
    mod = types.ModuleType("nidaqmx")
    mod.Task = FakeTask
    consts = types.ModuleType("nidaqmx.constants")
    consts.AcquisitionType = types.SimpleNamespace(FINITE="finite")
    consts.LineGrouping = types.SimpleNamespace(CHAN_FOR_ALL_LINES="all")
    mod.constants = consts
    monkeypatch.setitem(sys.modules, "nidaqmx", mod)
    monkeypatch.setitem(sys.modules, "nidaqmx.constants", consts)
    FakeTask.instances = []
    return mod


def test_nidaq_waveform_lays_changes_on_the_sample_clock():
    w = waveform(((0.0, 0b10), (300.0, 0b110), (450.0, 0b10)), 100_000.0, 0)
    assert w.size == 46
    assert np.all(w[:30] == 0b10) and np.all(w[30:45] == 0b110) and w[45] == 0b10


def test_nidaq_backend_writes_each_refresh(fake_nidaqmx):
    b = make_backend("nidaq:Dev1/port0@100000", PARALLEL)
    b.open()
    task = FakeTask.instances[-1]
    assert task.port == "Dev1/port0"
    enc = drive(b, PARALLEL, [65535, 5, 5])
    b.close()
    assert task.closed
    frames = task.writes[1:-1]  # after the open check, before the closing zeros
    assert len(frames) == 3
    for data, code in zip(frames, [65535, 5, 5], strict=True):
        assert data.size == int(PARALLEL.strobe_us * 0.1) + 1
        assert data[0] & (1 << PARALLEL.frame_line)       # strobe high at the flip
        assert data[-1] == 0                              # everything low after the strobe
        idx = sum(((int(data[0]) >> line) & 1) << i for i, line in enumerate(PARALLEL.index_lines))
        assert idx == (255 if code == 65535 else code)
    assert enc is not None


def test_nidaq_without_the_package_refuses(monkeypatch):
    monkeypatch.setitem(sys.modules, "nidaqmx", None)
    with pytest.raises(TTLError, match="pip install"):
        make_backend("nidaq:Dev1/port0", SERIAL).open()


def test_failing_backend_stops_the_run_before_any_window(tmp_path, capsys):
    script = tmp_path / "s.py"
    script.write_text("from stimulus.script import Experiment\n"
                      "experiment = Experiment(stimulus='blank', dynamic={'sweep_s': 1.0})\n")
    out = tmp_path / "out"
    code = main(["run", str(script), "--ttl", "serial:/dev/does-not-exist-42", "--offscreen",
                 "--out", str(out) + "/"])
    assert code == 2
    assert "cannot open serial port" in capsys.readouterr().err
    assert not out.exists()  # nothing ran, nothing written
