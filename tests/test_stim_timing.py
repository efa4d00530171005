"""Frame timing logic with a fake clock: dropped frames, frame numbers, the frame log, markers,
pause and cancel, and what the acquisition side decodes from the TTL output."""

from __future__ import annotations

import numpy as np
import pytest

from oe_plugin.protocol import ERROR_MASK, decode_events
from oe_plugin.protocol.spec import GAP, SWEEP_NONE, ProtocolSettings
from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions
from stimulus.plan import STIMULUS
from stimulus.rig import RigSettings, ScreenSettings
from stimulus.runner import Runner, prepare
from stimulus.script import Experiment, LoadedScript, Runs, Variable
from stimulus.timing import FakeClock, FrameTimer, measure_refresh
from stimulus.ttl.encoding import CODE_END, CODE_START
from stimulus.ttl.virtual import VirtualBackend

PERIOD = 1 / 200.0


class FakeDisplay:
    """Records what the runner asks for; flips advance nothing (the clock does)."""

    window = None

    def __init__(self, on_flip=None):
        self.cleared = []
        self.photodiode_states = []
        self.n_flips = 0
        self.on_flip = on_flip

    def clear(self, lum):
        self.cleared.append(lum)

    def photodiode(self, on):
        self.photodiode_states.append(on)

    def flip(self):
        self.n_flips += 1
        if self.on_flip:
            self.on_flip(self.n_flips)

    def dispatch_events(self):
        pass


class RecordingStim:
    """A stand-in stimulus (no GL) that records the calls."""

    def __init__(self):
        self.sweeps = []
        self.draws = []

    def begin_sweep(self, params, n_frames):
        self.sweeps.append((dict(params), n_frames))

    def draw(self, frame_in_sweep):
        self.draws.append(frame_in_sweep)


def loaded(exp: Experiment) -> LoadedScript:
    return LoadedScript("inline.py", "experiment = ...", exp)


def blank_experiment(**kw):
    dyn = {"bg_lum": Variable([0.2, 0.8], dim=0), "sweep_s": 0.02, "postsweep_s": 0.01}
    return Experiment(stimulus="blank", dynamic=dyn, runs=Runs(2), preexp_s=0.01,
                      postexp_s=0.01, **kw)


def rig(**screen):
    return RigSettings(screen=ScreenSettings(**{"width_px": 64, "height_px": 48, **screen}))


def run(exp, steps=(), on_flip=None, backend=None):
    p = prepare(loaded(exp), rig(), seed=1)
    clock = FakeClock(PERIOD, steps=steps, t0=10.0)
    backend = backend or VirtualBackend(p.protocol)
    stim = RecordingStim()
    r = Runner(p, FakeDisplay(on_flip), backend, clock, stimulus=stim)
    return p, r, r.run(), backend, stim


def test_frame_timer_detects_drops_and_skips_frame_numbers():
    t = FrameTimer(PERIOD, 1.2)
    times = np.cumsum([0, PERIOD, PERIOD, 2 * PERIOD, 1.19 * PERIOD, 3.1 * PERIOD, PERIOD])
    out = [t.tick(x) for x in times]
    assert [o[0] for o in out] == [0, 1, 2, 4, 5, 8, 9]
    assert [o[1] for o in out] == [False, False, False, True, False, True, False]
    assert t.n_dropped == 2 and t.n_missed == 3
    assert np.isnan(out[0][2]) and out[3][2] == pytest.approx(2 * PERIOD)


def test_measure_refresh_uses_the_median():
    clock = FakeClock(1 / 144.0, steps=[1 / 144.0] * 50 + [0.05] + [1 / 144.0] * 50)
    rate, intervals = measure_refresh(clock.advance, clock, 100)
    assert rate == pytest.approx(144.0)
    assert intervals.max() == pytest.approx(0.05)


def test_log_contents_without_drops():
    p, r, res, backend, stim = run(blank_experiment())
    log = res.log
    m = p.protocol.marker_frames
    n_end = len(log["code"]) - m - p.plan.n_frames
    assert res.status == "completed" and res.n_dropped == 0
    assert log["code"][:m].tolist() == [CODE_START] * m
    assert log["code"][-n_end:].tolist() == [CODE_END] * n_end
    assert np.array_equal(log["code"][m:m + p.plan.n_frames], p.plan.code)
    assert np.array_equal(log["plan_index"][m:m + p.plan.n_frames], np.arange(p.plan.n_frames))
    assert np.array_equal(log["frame_number"], np.arange(log["code"].size))
    assert np.allclose(np.diff(log["flip_time_s"]), PERIOD)
    # the serial scheme ends with the frame line low: an even number of refreshes in all
    assert log["code"].size % 2 == 0
    # the photodiode alternates every refresh, starting white
    d = r.display
    assert d.photodiode_states == [k % 2 == 0 for k in range(d.n_flips)]
    # backgrounds: each sweep's own bg_lum during its stimulus and post-sweep refreshes
    cleared = np.array(d.cleared[m:m + p.plan.n_frames])
    pres = p.plan.presentation
    for k in range(p.table.order.size):
        want = p.table.conditions[p.table.order[k]]["bg_lum"]
        assert np.all(cleared[pres == k] == want)


def test_dropped_frames_flagged_numbered_and_seen_by_the_decoder():
    steps = [PERIOD] * 12 + [2 * PERIOD] + [PERIOD] * 5 + [3 * PERIOD] + [PERIOD] * 200
    p, r, res, backend, stim = run(blank_experiment(), steps=steps)
    log = res.log
    assert res.n_dropped == 2 and res.n_missed == 3
    dropped = np.flatnonzero(log["dropped"])
    assert dropped.tolist() == [12, 18]  # the clock advances by steps[k] at flip k
    fn = log["frame_number"]
    assert fn[12] - fn[11] == 2 and fn[18] - fn[17] == 3
    # every planned image is still shown once
    assert np.array_equal(log["plan_index"][log["plan_index"] >= 0], np.arange(p.plan.n_frames))
    # the acquisition side: sample the TTL lines at 30 kHz and decode
    ev = sample_transitions(backend.transitions(), SimSettings(sample_rate_hz=30000.0))
    frames, _dec = decode_events(p.protocol, 30000.0, ev["sample_number"], ev["line"],
                                 ev["state"])
    assert frames.size == log["code"].size
    assert np.array_equal(frames["frame_number"], fn)
    gaps = np.flatnonzero(frames["flags"] & GAP)
    assert gaps.tolist() == [12, 18]
    shown = log["code"].copy()
    shown[np.isin(shown, [CODE_START, CODE_END])] = SWEEP_NONE  # markers decode as 'none'
    assert np.array_equal(frames["sweep_index"], shown)


def test_decoded_sweeps_match_the_table_for_a_parallel_rig():
    proto = ProtocolSettings(scheme="parallel", frame_line=1, parity_line=2,
                             index_lines=tuple(range(3, 11)), counter_lines=(11, 12))
    exp = Experiment(stimulus="blank", dynamic={"bg_lum": Variable([0.1, 0.2, 0.3], dim=0,
                                                                   shuffle=True),
                                                "sweep_s": 0.015},
                     runs=Runs(3, reshuffle=True), preexp_s=0.0, postexp_s=0.0)
    p = prepare(loaded(exp), RigSettings(screen=ScreenSettings(width_px=64, height_px=48),
                                         protocol=proto), seed=9)
    backend = VirtualBackend(p.protocol)
    res = Runner(p, FakeDisplay(), backend, FakeClock(PERIOD), stimulus=RecordingStim()).run()
    ev = sample_transitions(backend.transitions(), SimSettings(sample_rate_hz=25000.0))
    frames, _ = decode_events(p.protocol, 25000.0, ev["sample_number"], ev["line"], ev["state"])
    assert not np.any(frames["flags"] & ERROR_MASK)
    stim = frames["sweep_index"][(frames["sweep_index"] != SWEEP_NONE)]
    # each presented sweep's index, 3 refreshes each, in the table's order
    assert np.array_equal(stim, np.repeat(p.table.order, 3))
    assert res.log["code"].size == frames.size


def test_stimulus_gets_each_sweep_and_every_frame():
    exp = Experiment(stimulus="blank", dynamic={"bg_lum": Variable([0.2, 0.4], dim=0),
                                                "sweep_s": 0.02}, preexp_s=0.0,
                     postexp_s=0.0)
    p, r, res, backend, stim = run(exp)
    assert [s[0]["bg_lum"] for s in stim.sweeps] == [0.2, 0.4]
    assert [s[1] for s in stim.sweeps] == [4, 4]
    assert stim.draws == [0, 1, 2, 3, 0, 1, 2, 3]
    assert np.count_nonzero(p.plan.phase == STIMULUS) == 8


def test_pause_at_sweep_boundary_then_resume():
    holder = {}

    def on_flip(n):
        r = holder["runner"]
        if n == 7:
            r.pause_requested = True     # during the first sweep (flips 5..8)
        if n == 40:
            r.pause_requested = False    # resume after some paused refreshes

    exp = blank_experiment()
    p = prepare(loaded(exp), rig(), seed=1)
    backend = VirtualBackend(p.protocol)
    r = Runner(p, FakeDisplay(on_flip), backend, FakeClock(PERIOD), stimulus=RecordingStim())
    holder["runner"] = r
    res = r.run()
    log = res.log
    paused = np.flatnonzero((log["plan_index"] == -1) & (log["code"] == SWEEP_NONE))
    assert paused.size > 20
    # the pause starts exactly where the first sweep (and its post-sweep part) ended
    first_end = int(p.plan.presentation_start()[1])
    m = p.protocol.marker_frames
    assert paused[0] == m + first_end
    assert np.array_equal(log["plan_index"][log["plan_index"] >= 0], np.arange(p.plan.n_frames))
    assert res.status == "completed"


def test_cancel_stops_at_once_and_still_sends_end_markers():
    holder = {}

    def on_flip(n):
        if n == 9:
            holder["runner"].cancel_requested = True

    p = prepare(loaded(blank_experiment()), rig(), seed=1)
    backend = VirtualBackend(p.protocol)
    r = Runner(p, FakeDisplay(on_flip), backend, FakeClock(PERIOD), stimulus=RecordingStim())
    holder["runner"] = r
    res = r.run()
    assert res.status == "cancelled"
    codes = res.log["code"]
    assert codes[9:].tolist() == [CODE_END] * (codes.size - 9)
    assert backend.word == 0 or backend.closed is False
    ev = sample_transitions(backend.transitions(), SimSettings(sample_rate_hz=30000.0))
    frames, _ = decode_events(p.protocol, 30000.0, ev["sample_number"], ev["line"], ev["state"])
    assert frames.size == codes.size
