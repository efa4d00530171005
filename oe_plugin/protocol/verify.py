"""Compare decoded frames with what the stimulus really sent (tests, rig checks, benchmarks).

A lab can check a rig end to end with it: play a known frame sequence through the stimulus
computer's TTL backend, record it, decode the recording, and :func:`compare_frames` against the
frame log. The tests use it on simulated TTLs with injected faults.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    ERROR_MASK,
    SWEEP_NONE,
    SWEEP_UNKNOWN,
)


class Comparison(NamedTuple):
    """Decoded frames matched to the frames sent.

    Attributes
    ----------
    match : int64 (n_decoded,)
        Index of the sent frame each decoded frame belongs to, -1 for a phantom frame (no sent
        frame edge within the tolerance).
    expected_sweep : int64 (n_decoded,)
        The sweep index sent for the matched frame (markers -> SWEEP_NONE), -2 for phantoms.
    flagged : bool (n_decoded,)
        The decoded frame has an error flag.
    correct : bool (n_decoded,)
        Matched and the decoded sweep index equals the sent one.
    silent_errors : int64 (k,)
        Decoded frames that are wrong (phantom, or a different index that is not
        SWEEP_UNKNOWN) **without** an error flag — must be empty.
    missing : int64 (m,)
        Sent frames that no decoded frame matched.
    """

    match: np.ndarray
    expected_sweep: np.ndarray
    flagged: np.ndarray
    correct: np.ndarray
    silent_errors: np.ndarray
    missing: np.ndarray


def sent_sweeps(codes) -> np.ndarray:
    """Sweep index a decoder should report for each sent code (markers, and session-code
    chunks -- a code between two STARTs -- -> SWEEP_NONE)."""
    codes = np.asarray(codes, dtype=np.int64)
    start = codes == CODE_START
    chunk = np.zeros(codes.size, bool)
    if codes.size >= 3:
        chunk[1:-1] = start[:-2] & start[2:] & ~start[1:-1]
    return np.where(start | (codes == CODE_END) | chunk, SWEEP_NONE, codes)


def compare_frames(frames: np.ndarray, sent_sample: np.ndarray, sent_codes,
                   tolerance_samples: float) -> Comparison:
    """Match decoded frames to sent frames by sample number.

    Parameters
    ----------
    frames : DECODED_DTYPE (n,) — decoder output.
    sent_sample : float (m,) — where each sent frame's edge is expected, in samples (e.g.
        ``first_sample_number + flip_time_us * fs / 1e6``, plus the frame line's delay),
        increasing.
    sent_codes : int (m,) — codes sent.
    tolerance_samples : float — how far a decoded edge may be from its sent frame.
    """
    sent_sample = np.asarray(sent_sample, dtype=np.float64)
    expected_all = sent_sweeps(sent_codes)
    s = frames["sample_number"].astype(np.float64)
    pos = np.searchsorted(sent_sample, s)
    lo = np.clip(pos - 1, 0, max(sent_sample.size - 1, 0))
    hi = np.clip(pos, 0, max(sent_sample.size - 1, 0))
    if sent_sample.size:
        d_lo = np.abs(s - sent_sample[lo])
        d_hi = np.abs(s - sent_sample[hi])
        nearest = np.where(d_hi < d_lo, hi, lo)
        dist = np.minimum(d_lo, d_hi)
        match = np.where(dist <= tolerance_samples, nearest, -1)
    else:
        match = np.full(s.size, -1)
    expected = np.where(match >= 0, expected_all[np.maximum(match, 0)], -2)
    flagged = (frames["flags"] & ERROR_MASK) != 0
    decoded = frames["sweep_index"].astype(np.int64)
    correct = (match >= 0) & (decoded == expected)
    wrong = (match < 0) | ((decoded != expected) & (decoded != SWEEP_UNKNOWN))
    silent = np.flatnonzero(wrong & ~flagged)
    seen = np.zeros(sent_sample.size, bool)
    seen[match[match >= 0]] = True
    return Comparison(match, expected, flagged, correct, silent, np.flatnonzero(~seen))


def detection_delays(frames: np.ndarray, fault_samples, window_samples: float) -> np.ndarray:
    """Per fault, the distance (samples) from ``fault_samples[i]`` to the first frame with an
    error flag at or after it, or ``nan`` if there is none within ``window_samples``.

    Pass as ``fault_samples`` the earliest sample at which a fault may be reported (e.g. the
    fault's sample minus one refresh period: a fault is reported on the frame it happened in
    or a later one).
    """
    flagged_s = frames["sample_number"][(frames["flags"] & ERROR_MASK) != 0].astype(np.float64)
    out = np.full(len(fault_samples), np.nan)
    for i, f in enumerate(np.asarray(fault_samples, dtype=np.float64)):
        k = np.searchsorted(flagged_s, f)
        if k < flagged_s.size and flagged_s[k] - f <= window_samples:
            out[i] = flagged_s[k] - f
    return out
