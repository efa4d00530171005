"""Round trips of the sweep TTL protocol: sweep sequence -> encoder -> TTL simulator -> decoder.

Clean sessions (skew and jitter, no faults) must come back exactly: every frame's sample
number, sweep index and frame number, no error flag. Sessions with injected faults must report
every fault, never give a wrong sweep index without a flag, and decode correctly again within
one sweep (criteria in protocol_cases.check_faults).
"""

from __future__ import annotations

import numpy as np
import pytest
from protocol_cases import FIRST_SAMPLE, PARALLEL, SERIAL, build, check_faults, decode

from oe_plugin.protocol import ProtocolSettings, decode_events, session_codes
from oe_plugin.protocol.encoder import encode_session
from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    ERROR_MASK,
    EXPERIMENT_END,
    EXPERIMENT_START,
    OUTSIDE_EXPERIMENT,
    SWEEP_NONE,
)
from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions
from oe_plugin.protocol.verify import sent_sweeps


def assert_exact(session, frames):
    s = session
    events = s.events
    frame_edges = events["sample_number"][events["line"] == s.settings.frame_line]
    if s.settings.scheme == "parallel":
        frame_edges = events["sample_number"][(events["line"] == s.settings.frame_line)
                                              & events["state"]]
    assert frames.size == s.codes.size
    np.testing.assert_array_equal(frames["sample_number"], frame_edges)
    np.testing.assert_array_equal(frames["sweep_index"], sent_sweeps(s.codes))
    np.testing.assert_array_equal(frames["frame_number"], s.frame_numbers)
    assert not (frames["flags"] & ERROR_MASK).any()
    m = s.settings.marker_frames
    assert (frames["flags"][:m] & EXPERIMENT_START).all()
    assert (frames["flags"][-m:] & EXPERIMENT_END).all()
    assert not (frames["flags"] & OUTSIDE_EXPERIMENT).any()


@pytest.mark.slow
@pytest.mark.parametrize("settings, fs", [(SERIAL, 30000.0), (PARALLEL, 20000.0)],
                         ids=["serial-30kHz", "parallel-20kHz"])
def test_clean_roundtrip_1e5_frames_exact(settings, fs):
    s = build(settings, fs, 100_000, seed=11)
    changes = np.flatnonzero(np.diff(s.codes) != 0)
    assert changes.size > 5_000  # many sweeps ...
    assert (np.diff(changes) == 1).sum() > 1_000  # ... many of them single-frame
    assert (s.codes == SWEEP_NONE).sum() > 5_000   # blank sweeps
    frames, dec = decode(s)
    assert_exact(s, frames)
    assert dec.n_experiments == 1
    assert dec.n_internal_errors == 0


@pytest.mark.parametrize("settings, fs", [
    (SERIAL, 20000.0), (SERIAL, 25000.0), (SERIAL, 40000.0),
    (PARALLEL, 30000.0), (PARALLEL, 40000.0),
    (ProtocolSettings(scheme="parallel", frame_line=1, parity_line=2,
                      index_lines=tuple(range(3, 15)), return_to_zero=False), 30000.0),
    (ProtocolSettings(scheme="parallel", frame_line=3, parity_line=4, counter_lines=(5,),
                      index_lines=(6, 7, 0, 1), sync_line=2), 25000.0),
    (ProtocolSettings(refresh_hz=60.0, bit_us=400.0, word_offset_us=500.0), 20000.0),
    (ProtocolSettings(refresh_hz=120.0, frame_line=7, data_line=6), 30000.0),
], ids=["serial-20k", "serial-25k", "serial-40k", "parallel-30k", "parallel-40k",
        "parallel-hold-12bit", "parallel-4bit-odd-lines", "serial-60Hz", "serial-120Hz"])
def test_clean_roundtrip_variants(settings, fs):
    s = build(settings, fs, 8_000, seed=3)
    frames, _ = decode(s)
    assert_exact(s, frames)


@pytest.mark.slow
@pytest.mark.parametrize("settings, fs", [(SERIAL, 20000.0), (SERIAL, 40000.0),
                                          (PARALLEL, 30000.0)],
                         ids=["serial-20kHz", "serial-40kHz", "parallel-30kHz"])
def test_faults_reported_never_silent_and_recovered(settings, fs):
    s = build(settings, fs, 100_000, seed=7, n_faults=500)
    kinds = {f.kind for f in s.faults}
    assert kinds == {"glitch", "missed_edge", "dropped_frame", "repeated_frame", "pulse"}
    frames, dec = decode(s)
    result = check_faults(s, frames, dec.skew_samples + 2)
    assert result["silent"].size == 0, frames[result["silent"][:5]]
    assert result["shifted"].size == 0, frames[result["shifted"][:5]]
    assert result["unreported"] == []
    assert result["not_recovered"] == []
    assert dec.n_internal_errors == 0
    # and the faults did not make the decoder give up: nearly every frame decoded exactly
    cmp = result["comparison"]
    assert cmp.correct.mean() > 0.97


def test_two_experiments_and_restart_numbering():
    settings = SERIAL
    codes = np.concatenate([session_codes(settings, [1, 1, 2, 2, 2]),
                            session_codes(settings, [7] * 30)])
    # second experiment: frame numbers restart at its START frames
    n1 = session_codes(settings, [1, 1, 2, 2, 2]).size
    fn = np.r_[np.arange(n1), np.arange(codes.size - n1)]
    sess = encode_session(settings, codes, fn)
    ev = sample_transitions(sess.transitions, SimSettings(sample_rate_hz=30000.0,
                                                          first_sample_number=FIRST_SAMPLE))
    frames, dec = decode_events(settings, 30000.0, ev["sample_number"], ev["line"], ev["state"])
    assert dec.n_experiments == 2
    np.testing.assert_array_equal(frames["frame_number"], fn)
    starts = np.flatnonzero(frames["flags"] & EXPERIMENT_START)
    assert list(starts) == [0, 1, 2, n1, n1 + 1, n1 + 2]
    assert not (frames["flags"] & ERROR_MASK).any()


def test_markers_are_reserved_codes():
    codes = session_codes(SERIAL, [0, 5, SWEEP_NONE])
    assert list(codes[:3]) == [CODE_START] * 3
    assert codes[-1] == CODE_END
    assert codes.size % 2 == 0  # the frame line toggles once per frame and ends low
