"""Hardware-realistic TTL simulator: line transitions in continuous time -> Open Ephys events.

What the acquisition system does with a digital input, reproduced here:

- every line is **sampled** at the acquisition rate: a transition at time t is seen at the first
  sample at or after it (``first_sample_number + ceil(t * fs)``); several transitions of one line
  within one sample period collapse into their net effect (a pulse shorter than a sample can
  vanish), and an event is reported only where the sampled level changes;
- lines have a constant **skew** each (cable, level shifter, output port; ``line_delay_us``) and
  every transition a random **jitter** (``jitter_us``, uniform ±);
- the host hands out per-line edges only, several edges of one sample in **no guaranteed
  order** (``shuffle_ties``).

Faults, with a record of each for the tests (:class:`Fault`):

- :func:`add_glitch` — a spurious pulse of a given width on one line (before sampling);
- :func:`drop_events` — edges the acquisition lost (after sampling: a "missed edge");
- dropped and repeated frames are made at the encoding stage (skip or repeat a frame number in
  :func:`oe_plugin.protocol.encoder.encode_session`; :func:`frame_log_with_faults` does it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from oe_plugin.protocol.encoder import TRANSITION_DTYPE

TTL_EVENT_DTYPE = np.dtype([("sample_number", "<i8"), ("line", "<i2"), ("state", "?")])
"""A TTL event as the GUI delivers it: absolute sample number, 0-based line, new state (the
same layout as ``offline.recording.TTL_DTYPE`` and the host simulator's events)."""


class Fault(NamedTuple):
    """One injected fault: kind ("glitch", "missed_edge", "dropped_frame", "repeated_frame"),
    time in µs of the session (``nan`` if only the sample is known), sample number (-1 before
    sampling), line (-1 for frame-level faults)."""

    kind: str
    time_us: float
    sample_number: int
    line: int


@dataclass(frozen=True)
class SimSettings:
    """Acquisition model.

    sample_rate_hz : acquisition rate, Hz.
    first_sample_number : the sample number of time 0 (sample numbers count from acquisition
        start in the GUI, so a recording rarely starts at 0).
    line_delay_us : per-line constant delay, µs, as ``((line, delay_us), ...)``; lines not
        listed get 0.
    jitter_us : each transition moves by a uniform random amount in ±jitter_us.
    shuffle_ties : deliver events of one sample in random order.
    seed : random seed for jitter and tie order.
    """

    sample_rate_hz: float = 30000.0
    first_sample_number: int = 0
    line_delay_us: tuple[tuple[int, float], ...] = ()
    jitter_us: float = 0.0
    shuffle_ties: bool = True
    seed: int = 0


def random_line_delays(lines, max_skew_us: float, rng: np.random.Generator
                       ) -> tuple[tuple[int, float], ...]:
    """A constant delay per line, uniform in [0, max_skew_us]."""
    return tuple((int(line), float(rng.uniform(0.0, max_skew_us))) for line in lines)


def sample_transitions(transitions: np.ndarray, sim: SimSettings) -> np.ndarray:
    """Sample continuous-time transitions into TTL events.

    Parameters
    ----------
    transitions : TRANSITION_DTYPE, shape (n,)
        ``time_us``, ``line``, ``level``; per line in time order (levels alternating or not:
        only changes of the sampled level become events). Every line starts low.
    sim : SimSettings

    Returns
    -------
    np.ndarray, TTL_EVENT_DTYPE, shape (n_events,)
        Sorted by sample number; ties in random order if ``sim.shuffle_ties``.
    """
    rng = np.random.default_rng(sim.seed)
    tr = np.asarray(transitions, dtype=TRANSITION_DTYPE)
    t = tr["time_us"].astype(np.float64)
    if sim.jitter_us > 0 and t.size:
        t = t + rng.uniform(-sim.jitter_us, sim.jitter_us, size=t.size)
    delays = dict(sim.line_delay_us)
    if delays:
        t = t + np.array([delays.get(int(x), 0.0) for x in tr["line"]])
    fs = float(sim.sample_rate_hz)
    samples = np.ceil(t * (fs / 1e6) - 1e-9).astype(np.int64) + int(sim.first_sample_number)
    parts = []
    for line in np.unique(tr["line"]):
        idx = np.flatnonzero(tr["line"] == line)
        order = idx[np.argsort(t[idx], kind="stable")]
        s = samples[order]
        v = tr["level"][order]
        # net level per sample: the last transition within each sample wins
        last_of_group = np.r_[s[1:] != s[:-1], True]
        s = s[last_of_group]
        v = v[last_of_group]
        prev = np.r_[False, v[:-1]]
        keep = v != prev
        ev = np.zeros(int(keep.sum()), TTL_EVENT_DTYPE)
        ev["sample_number"] = s[keep]
        ev["line"] = line
        ev["state"] = v[keep]
        parts.append(ev)
    if not parts:
        return np.zeros(0, TTL_EVENT_DTYPE)
    events = np.concatenate(parts)
    key = events["sample_number"].astype(np.float64)
    if sim.shuffle_ties:
        key = key + rng.uniform(0.0, 0.5, size=key.size)
    return events[np.argsort(key, kind="stable")]


def add_glitch(transitions: np.ndarray, line: int, time_us: float, width_us: float
               ) -> tuple[np.ndarray, Fault]:
    """Add one glitch (see :func:`add_glitches`)."""
    out, faults = add_glitches(transitions, [(line, time_us, width_us)])
    return out, faults[0]


def add_glitches(transitions: np.ndarray, glitches) -> tuple[np.ndarray, list[Fault]]:
    """Add glitches: during each, the level seen on its line is inverted (noise adds to the
    signal: the line's own transitions inside the interval still happen, inverted, and after it
    the line follows its signal again). Overlapping glitches on one line combine (XOR).

    Parameters
    ----------
    transitions : TRANSITION_DTYPE (n,) — per line alternating levels, lines start low.
    glitches : iterable of (line, time_us, width_us).

    Returns
    -------
    The new transitions (sorted by time, stable) and one :class:`Fault` per glitch.
    """
    tr = np.asarray(transitions, dtype=TRANSITION_DTYPE)
    glitches = [(int(li), float(t), float(w)) for li, t, w in glitches]
    faults = [Fault("glitch", t, -1, li) for li, t, _w in glitches]
    out = [tr[~np.isin(tr["line"], [g[0] for g in glitches])]]
    for line in sorted({g[0] for g in glitches}):
        own = tr[tr["line"] == line]
        own = own[np.argsort(own["time_us"], kind="stable")]
        t_sig = own["time_us"]
        v_sig = own["level"]
        edges = np.array(sorted([g[1] for g in glitches if g[0] == line]
                                + [g[1] + g[2] for g in glitches if g[0] == line]))
        # noise mask toggles at every glitch edge; observed = signal XOR mask
        times = np.concatenate([t_sig, edges])
        order = np.argsort(times, kind="stable")
        times = times[order]
        is_sig = np.concatenate([np.ones(t_sig.size, bool), np.zeros(edges.size, bool)])[order]
        sig_level = np.concatenate([v_sig, np.zeros(edges.size, bool)])[order]
        # signal level after each event: forward-fill the signal's own levels
        idx = np.where(is_sig, np.arange(times.size), -1)
        np.maximum.accumulate(idx, out=idx)
        signal = np.where(idx >= 0, sig_level[np.maximum(idx, 0)], False)
        mask = (np.cumsum(~is_sig) % 2).astype(bool)
        observed = signal ^ mask
        new = np.zeros(times.size, TRANSITION_DTYPE)
        new["time_us"] = times
        new["line"] = line
        new["level"] = observed
        out.append(new)
    res = np.concatenate(out)
    return res[np.argsort(res["time_us"], kind="stable")], faults


def drop_events(events: np.ndarray, indices) -> tuple[np.ndarray, list[Fault]]:
    """Remove events (edges the acquisition lost). Returns the events and one fault per edge."""
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    faults = [Fault("missed_edge", float("nan"), int(events["sample_number"][i]),
                    int(events["line"][i])) for i in indices]
    keep = np.ones(events.size, bool)
    keep[indices] = False
    return events[keep], faults


def frame_log_with_faults(codes, period_us: float, *, dropped=(), repeated=(),
                          t0_us: float = 0.0):
    """A stimulus run's frame log with dropped and repeated frames.

    Parameters
    ----------
    codes : int, shape (n,)
        The code of each frame the stimulus means to show, one refresh each.
    period_us : refresh period, µs.
    dropped : indices k: the display missed the refresh before frame k, so frame k (and all
        after it) is shown one refresh late and its frame number skips one.
    repeated : indices k >= 1: frame k-1 is shown (and sent: same code, same frame number) a
        second time on the refresh before frame k, e.g. a hardware vsync strobe while the
        stimulus stalled; frame k is then one refresh late.

    Returns
    -------
    codes : int32 (m,), frame_numbers : int64 (m,), flip_time_us : float64 (m,),
    faults : list[Fault] (time = the flip of the frame after the missed refresh, or of the
    repeated copy).
    """
    codes = np.asarray(codes)
    dropped = {int(k) for k in dropped}
    repeated = {int(k) for k in repeated if int(k) >= 1}
    out_codes, out_fn, out_refresh, faults = [], [], [], []
    refresh = 0
    fn = 0
    for k in range(codes.size):
        if k in repeated:
            out_codes.append(out_codes[-1])
            out_fn.append(out_fn[-1])
            out_refresh.append(refresh)
            faults.append(Fault("repeated_frame", t0_us + refresh * period_us, -1, -1))
            refresh += 1
        if k in dropped:
            refresh += 1
            fn += 1
            faults.append(Fault("dropped_frame", t0_us + refresh * period_us, -1, -1))
        out_codes.append(int(codes[k]))
        out_fn.append(fn)
        out_refresh.append(refresh)
        refresh += 1
        fn += 1
    flips = t0_us + np.asarray(out_refresh, np.float64) * period_us
    return (np.asarray(out_codes, np.int32), np.asarray(out_fn, np.int64), flips, faults)
