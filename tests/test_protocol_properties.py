"""Property tests (hypothesis) of the decoder: block invariance, tie-order invariance, never
raising on arbitrary input, and consistency of its output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_cases import PARALLEL, SERIAL, build

from oe_plugin.protocol import make_decoder
from oe_plugin.protocol.decoder import DECODED_DTYPE
from oe_plugin.protocol.spec import ERROR_MASK, SWEEP_UNKNOWN, UNKNOWN_INDEX

SESSIONS = {}


def session(scheme: str, faults: bool):
    key = (scheme, faults)
    if key not in SESSIONS:
        settings_ = SERIAL if scheme == "serial" else PARALLEL
        SESSIONS[key] = build(settings_, 30000.0, 500, seed=5, n_faults=10 if faults else 0)
    return SESSIONS[key]


def run_blocks(s, cuts, drain_every, advance):
    """Feed the events block by block (blocks end at sample numbers ``cuts``), taking the output
    every ``drain_every`` blocks and, if ``advance``, declaring each block's end with
    advance_to (what a host knows after a block: no earlier event is still to come)."""
    dec = make_decoder(s.settings, s.sample_rate_hz, capacity=64)
    ev = s.events
    bounds = np.searchsorted(ev["sample_number"], cuts, side="right")
    out = []
    start = 0
    for k, stop in enumerate(list(bounds) + [ev.size]):
        for i in range(start, stop):
            dec.on_edge(int(ev["sample_number"][i]), int(ev["line"][i]), bool(ev["state"][i]))
            if dec.n_ready >= dec.capacity:
                out.append(dec.take())
        if advance and k < len(cuts):
            dec.advance_to(int(cuts[k]))
        if k % drain_every == 0:
            out.append(dec.take())
        start = stop
    dec.flush()
    out.append(dec.take())
    return np.concatenate(out), dec


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme=st.sampled_from(["serial", "parallel"]), faults=st.booleans(),
       block_sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=40),
       drain_every=st.integers(1, 5), advance=st.booleans())
def test_block_invariance(scheme, faults, block_sizes, drain_every, advance):
    s = session(scheme, faults)
    first = int(s.events["sample_number"][0])
    last = int(s.events["sample_number"][-1])
    cuts = first + np.cumsum(np.array(block_sizes * (1 + (last - first) // sum(block_sizes))))
    cuts = cuts[cuts < last]
    reference, _ = run_blocks(s, np.array([], np.int64), 1, False)
    got, dec = run_blocks(s, cuts, drain_every, advance)
    np.testing.assert_array_equal(got, reference)
    assert dec.n_overflow == 0


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["serial", "parallel"])
def test_block_invariance_down_to_one_sample(scheme):
    """The extreme cut: a block per sample, each declared finished (advance_to), on a long
    session with faults, gives the same frames as one pass."""
    s = build(SERIAL if scheme == "serial" else PARALLEL, 30000.0, 2000, seed=17, n_faults=40)
    first = int(s.events["sample_number"][0])
    last = int(s.events["sample_number"][-1])
    reference, _ = run_blocks(s, np.array([], np.int64), 1, False)
    got, _ = run_blocks(s, np.arange(first, last), 50, True)
    np.testing.assert_array_equal(got, reference)


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(scheme=st.sampled_from(["serial", "parallel"]), faults=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_order_of_same_sample_events_does_not_matter(scheme, faults, seed):
    s = session(scheme, faults)
    ev = s.events
    rng = np.random.default_rng(seed)
    key = ev["sample_number"] + rng.uniform(0, 0.5, ev.size)
    shuffled = ev[np.argsort(key, kind="stable")]
    a = make_decoder(s.settings, s.sample_rate_hz)
    b = make_decoder(s.settings, s.sample_rate_hz)
    for e in ev:
        a.on_edge(int(e["sample_number"]), int(e["line"]), bool(e["state"]))
    for e in shuffled:
        b.on_edge(int(e["sample_number"]), int(e["line"]), bool(e["state"]))
    a.flush()
    b.flush()
    np.testing.assert_array_equal(a.take(), b.take())


event = st.tuples(st.integers(-5, 400), st.integers(-3, 300), st.sampled_from([0, 1, True,
                                                                               False, 2, None]))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(scheme=st.sampled_from(["serial", "parallel"]), events=st.lists(event, max_size=300),
       backwards=st.booleans())
def test_garbage_never_raises_and_output_is_consistent(scheme, events, backwards):
    settings_ = SERIAL if scheme == "serial" else PARALLEL
    dec = make_decoder(settings_, 20000.0, capacity=16)
    sample = 0
    for step, line, state in events:
        sample = sample + step if backwards else sample + abs(step)
        dec.on_edge(sample, line, state)
    dec.on_edge("not a number", 1, True)  # counted, never raised
    dec.flush()
    frames = dec.frames[:dec.n_ready]
    assert frames.dtype == DECODED_DTYPE
    unknown = frames["sweep_index"] == SWEEP_UNKNOWN
    assert ((frames["flags"][unknown] & UNKNOWN_INDEX) != 0).all()
    assert ((frames["flags"][unknown] & ERROR_MASK) != 0).all()
    assert dec.n_internal_errors == 1  # only the string sample number
    assert dec.n_ready + dec.n_overflow == dec.n_frames


def two_sessions(settings_, pause_s, seed, drop=None):
    """Two stimulus sessions (START ... END each) ``pause_s`` apart in one acquisition, no
    frames in the pause; ``drop``: index of a refresh of the second session's body not sent
    (a real dropped frame). Returns the TTL events."""
    from oe_plugin.protocol.encoder import encode_session, session_codes
    from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions

    rng = np.random.default_rng(seed)
    trans, t0 = [], 0.0
    for k in range(2):
        body = np.repeat(rng.integers(0, 40, 12), rng.integers(2, 9, 12)).astype(np.int32)
        codes = session_codes(settings_, body)
        period = 1e6 / settings_.refresh_hz
        flips = t0 + period * np.arange(codes.size)
        numbers = np.arange(codes.size)
        if k == 1 and drop is not None:
            i = settings_.marker_frames + drop
            codes, flips, numbers = (np.delete(a, i) for a in (codes, flips, numbers))
        enc = encode_session(settings_, codes, numbers, flips)
        trans.append(enc.transitions)
        t0 = enc.flip_time_us[-1] + pause_s * 1e6
    return sample_transitions(np.concatenate(trans),
                              SimSettings(30000.0, first_sample_number=777, jitter_us=5.0,
                                          seed=seed))


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme=st.sampled_from(["serial", "parallel"]),
       pause_s=st.floats(0.012, 20.0), seed=st.integers(0, 2**16),
       block=st.integers(1, 5000), drop=st.one_of(st.none(), st.integers(3, 20)))
def test_a_pause_between_experiments_is_no_gap(scheme, pause_s, seed, block, drop):
    """The START marker after a pause between stimulus sessions opens experiment 2 without a
    GAP (or TIMING) flag, in any block cut; a refresh really dropped inside experiment 2 is
    still a GAP."""
    from oe_plugin.protocol.spec import EXPERIMENT_START, GAP, TIMING

    settings_ = SERIAL if scheme == "serial" else PARALLEL
    ev = two_sessions(settings_, pause_s, seed, drop)
    s = type("S", (), {"settings": settings_, "sample_rate_hz": 30000.0, "events": ev})
    first = int(ev["sample_number"][0])
    cuts = np.arange(first + block, int(ev["sample_number"][-1]), block)
    got, dec = run_blocks(s, cuts, 1, True)
    whole, _ = run_blocks(s, np.array([], np.int64), 1, False)
    np.testing.assert_array_equal(got, whole)          # block invariant
    assert dec.n_experiments == 2
    f = got["flags"]
    start = np.flatnonzero(f & EXPERIMENT_START)
    second = start[np.flatnonzero(np.diff(start) > 1)[0] + 1]   # first START of experiment 2
    assert not f[second] & (GAP | TIMING), "a pause between experiments flagged as a gap"
    gaps = np.flatnonzero(f & GAP)
    if drop is None:
        assert gaps.size == 0 and not (f & ERROR_MASK).any()
    else:  # the refresh after the dropped one, inside experiment 2
        assert gaps.size == 1 and gaps[0] == second + settings_.marker_frames + drop
