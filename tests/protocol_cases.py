"""Shared builders for the sweep-protocol tests: sweep sequences, simulated sessions, faults,
and the checks the issue asks for (exact round trip, every fault reported, no silent wrong
index, recovery within one sweep)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oe_plugin.protocol import ProtocolSettings, decode_events, session_codes
from oe_plugin.protocol.encoder import encode_session
from oe_plugin.protocol.spec import SWEEP_NONE
from oe_plugin.protocol.ttl_sim import (
    SimSettings,
    add_glitches,
    drop_events,
    frame_log_with_faults,
    random_line_delays,
    sample_transitions,
)
from oe_plugin.protocol.verify import compare_frames, detection_delays, sent_sweeps

FIRST_SAMPLE = 4321

SERIAL = ProtocolSettings()
PARALLEL = ProtocolSettings(scheme="parallel", frame_line=1, parity_line=2, counter_lines=(3, 4),
                            index_lines=tuple(range(5, 21)))


def sweep_sequence(rng: np.random.Generator, n_frames: int, max_index: int) -> np.ndarray:
    """A shuffled sweep table played out frame by frame: stretches of single-frame sweeps
    (m-sequence-like), 2-3-frame sweeps and long sweeps (10-60 frames), with blank sweeps
    (SWEEP_NONE) about one in ten. Returns int64 (n_frames,)."""
    out = []
    total = 0
    while total < n_frames:
        mode = rng.integers(0, 3)
        for _ in range(50):
            if mode == 0:
                d = 1
            elif mode == 1:
                d = int(rng.integers(2, 4))
            else:
                d = int(rng.integers(10, 60))
            idx = SWEEP_NONE if rng.random() < 0.1 else int(rng.integers(0, max_index + 1))
            out.append(np.full(d, idx))
            total += d
    return np.concatenate(out)[:n_frames]


@dataclass
class Session:
    settings: ProtocolSettings
    sample_rate_hz: float
    codes: np.ndarray          # per sent frame
    frame_numbers: np.ndarray  # per sent frame
    flips_us: np.ndarray       # per sent frame
    sent_sample: np.ndarray    # expected frame-edge sample (float) per sent frame
    events: np.ndarray         # TTL events after sampling and faults
    faults: list               # Fault records
    reportable: np.ndarray     # bool per fault: must be reported


def build(settings: ProtocolSettings, fs: float, n_frames: int, seed: int, *,
          n_faults: int = 0, kinds=("glitch", "missed_edge", "dropped_frame", "repeated_frame",
                                    "pulse"), max_skew_us: float = 60.0,
          jitter_us: float = 5.0) -> Session:
    """Encode a random sweep sequence, inject faults (spaced >= 40 frames apart) and sample.

    Fault kinds: ``glitch`` (width 1 sample + 2 x jitter .. skew window, on the serial data line
    at most the run-check tolerance; placed clear of the line's own edges so it is a real
    disturbance: must be reported), ``missed_edge`` (an event removed),
    ``dropped_frame``/``repeated_frame`` (in the frame log), ``pulse`` (a spurious pulse of
    skew window .. 1 ms anywhere: must never cause a silent error, need not be reported).
    """
    rng = np.random.default_rng(seed)
    body = sweep_sequence(rng, n_frames, settings.max_sweep_index())
    codes = session_codes(settings, body)
    period = settings.period_us()
    slots = np.arange(50, codes.size - 50, 40)
    rng.shuffle(slots)
    at = np.sort(slots[:n_faults])
    fault_kind = np.array(kinds)[rng.integers(0, len(kinds), at.size)] if n_faults else \
        np.array([], dtype="<U16")
    codes2, fn, flips, faults = frame_log_with_faults(
        codes, period, dropped=at[fault_kind == "dropped_frame"],
        repeated=at[fault_kind == "repeated_frame"])
    if settings.scheme == "serial" and codes2.size % 2:
        # repeated copies changed the frame count: one more END frame so the frame line ends
        # low (as SweepEncoder.end_frame_numbers does for a live session)
        codes2 = np.r_[codes2, codes2[-1]]
        fn = np.r_[fn, fn[-1] + 1]
        flips = np.r_[flips, flips[-1] + period]
    sess = encode_session(settings, codes2, fn, flips)
    tr = sess.transitions
    lines = [line for _key, line in settings.lines()]
    skew_us = settings.skew_tolerance_us
    glitches = []
    kinds_out = []
    for k, kind in zip(at, fault_kind, strict=True):
        if kind not in ("glitch", "pulse"):
            continue
        k = min(int(k), flips.size - 1)
        for _ in range(200):
            t = float(flips[k] + rng.uniform(0, period))
            line = int(rng.choice(lines))
            if kind == "pulse":
                w = float(rng.uniform(skew_us, 1000.0))
                break
            # wide enough to survive sampling whatever the jitter does to its two edges; on the
            # serial data line narrower than the shortest legitimate run (bit - 1.5 samples):
            # a wider pulse inside a run that misses every bit centre is harmless and looks
            # like edge timing (those are in the "pulse" class)
            w_min = 1e6 / fs + 2 * jitter_us + 1.0
            w_max = skew_us
            if settings.scheme == "serial" and line == settings.data_line:
                # sampled, a pulse can grow by one sample: keep it under bit - 1.5 samples
                w_max = min(w_max, (settings.bit_us * fs / 1e6 - 2.5) * 1e6 / fs
                            - 2 * jitter_us)
                if w_max < w_min:  # e.g. 3-sample bits at 20 kHz: no such width exists
                    kind = "pulse"
            w = float(rng.uniform(w_min, max(w_min, w_max)))
            if settings.scheme == "parallel" and line != settings.frame_line:
                ref = tr["time_us"][tr["line"] == settings.frame_line]
                margin = 2 * skew_us
            else:
                ref = tr["time_us"][tr["line"] == line]
                margin = 2 * skew_us if line == settings.frame_line else 2e6 / fs
            i = np.searchsorted(ref, t - margin)
            if not (i < ref.size and ref[i] <= t + w + margin):
                break
        glitches.append((line, t, w))
        kinds_out.append(kind)
    if glitches:
        tr, gf = add_glitches(tr, glitches)
        faults += [f._replace(kind=kind) for f, kind in zip(gf, kinds_out, strict=True)]
    delays = random_line_delays(lines, max_skew_us, rng)
    sim = SimSettings(sample_rate_hz=fs, first_sample_number=FIRST_SAMPLE,
                      line_delay_us=delays, jitter_us=jitter_us, seed=seed)
    events = sample_transitions(tr, sim)
    missed_at = at[fault_kind == "missed_edge"]
    # frame indices after the frame log inserted the repeated copies
    missed_at = missed_at + np.searchsorted(np.sort(at[fault_kind == "repeated_frame"]),
                                            missed_at, side="right")
    if missed_at.size:
        near = np.searchsorted(events["sample_number"],
                               FIRST_SAMPLE + flips[np.minimum(missed_at, flips.size - 1)]
                               * fs / 1e6)
        idx = np.minimum(near + rng.integers(0, 12, missed_at.size), events.size - 1)
        events, mf = drop_events(events, idx)
        faults += mf
    d_frame = dict(delays)[settings.frame_line]
    sent = FIRST_SAMPLE + (flips + d_frame) * fs / 1e6
    reportable = np.array([f.kind != "pulse" for f in faults], dtype=bool)
    return Session(settings, fs, codes2, fn, flips, sent, events, faults, reportable)


def decode(session: Session):
    ev = session.events
    return decode_events(session.settings, session.sample_rate_hz, ev["sample_number"],
                         ev["line"], ev["state"])


def fault_sample(session: Session, fault) -> float:
    if fault.sample_number >= 0:
        return float(fault.sample_number)
    return FIRST_SAMPLE + fault.time_us * session.sample_rate_hz / 1e6


def check_faults(session: Session, frames: np.ndarray, tolerance_samples: float) -> dict:
    """The issue's criteria on a faulty session; returns a dict of problems (all empty = ok).

    - ``silent``: decoded frames whose sweep index differs from what was on screen at their
      sample (the last frame sent at or before it) and is not SWEEP_UNKNOWN, without an error
      flag;
    - ``shifted``: unflagged frames more than ``timing_tolerance`` periods from any sent frame;
    - ``unreported``: reportable faults with no flagged frame within [fault - 1 period,
      fault + 3 periods];
    - ``not_recovered``: faults after which the frames of the next sweep (from its second
      frame until the next fault) are not all exact and unflagged.
    """
    s = session
    period = s.sample_rate_hz / s.settings.refresh_hz
    cmp = compare_frames(frames, s.sent_sample, s.codes, tolerance_samples)
    shown = np.searchsorted(s.sent_sample, frames["sample_number"] + tolerance_samples,
                            side="right") - 1
    truth = sent_sweeps(s.codes)[np.maximum(shown, 0)]
    decoded = frames["sweep_index"].astype(np.int64)
    silent = np.flatnonzero((decoded != truth) & (decoded != -1) & ~cmp.flagged)
    dist = np.abs(frames["sample_number"] - s.sent_sample[np.clip(shown, 0, None)])
    dist = np.minimum(dist, np.abs(frames["sample_number"]
                                   - s.sent_sample[np.clip(shown + 1, 0, s.sent_sample.size - 1)]))
    shifted = np.flatnonzero((cmp.match < 0) & ~cmp.flagged
                             & (dist > s.settings.timing_tolerance * period))
    f_samples = np.array([fault_sample(s, f) for f in s.faults])
    delays = detection_delays(frames, f_samples - period, 4 * period)
    unreported = [s.faults[i] for i in np.flatnonzero(np.isnan(delays) & s.reportable)]
    # recovery: from the second frame of the first sweep starting after fault + 3 periods
    sent_sweep = sent_sweeps(s.codes)
    onset = np.flatnonzero(np.r_[True, sent_sweep[1:] != sent_sweep[:-1]])
    order = np.argsort(f_samples)
    not_recovered = []
    for n, i in enumerate(order):
        start = f_samples[i] + 3 * period
        k = np.searchsorted(s.sent_sample[onset], start)
        if k >= onset.size:
            continue
        first = onset[k] + 1
        end = f_samples[order[n + 1]] - 1.5 * period if n + 1 < order.size else np.inf
        sel = np.flatnonzero((s.sent_sample >= s.sent_sample[first] - 0.5)
                             & (s.sent_sample < end))
        if sel.size == 0:
            continue
        # every sent frame in that stretch decoded exactly, unflagged
        dec_for = np.full(s.sent_sample.size, -1)
        ok_dec = (cmp.match >= 0) & ~cmp.flagged & cmp.correct
        dec_for[cmp.match[ok_dec]] = np.flatnonzero(ok_dec)
        if (dec_for[sel] < 0).any():
            not_recovered.append(s.faults[i])
    return {"silent": silent, "shifted": shifted, "unreported": unreported,
            "not_recovered": not_recovered, "comparison": cmp}
