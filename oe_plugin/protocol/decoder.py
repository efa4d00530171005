"""Sweep TTL decoder: per-line edges in, one record per refresh out.

``make_decoder(settings, sample_rate_hz)`` returns a :class:`ParallelDecoder` or a
:class:`SerialDecoder`; both are driven the same way, online (``handle_ttl_event`` on the GUI's
audio thread) and offline (a recording's TTL events)::

    dec = make_decoder(settings, sample_rate_hz)
    for sample_number, line, state in events:      # in sample order; any order within a sample
        dec.on_edge(sample_number, line, state)
        if dec.n_ready > threshold: consume(dec.take())
    dec.flush()                                    # end of stream: finish the pending frame
    consume(dec.take())

Rules that make it safe on the audio thread (no GIL there, see docs/host-threading.md):
plain Python only (no numba dispatcher, no locks, no logging, no threads); nothing raises —
bad input is counted and flagged; results go into a buffer preallocated at construction
(:attr:`frames`, ``n_ready`` records ready), and counters are plain attributes.

Determinism: the output depends only on the sequence of events, never on how they were cut
into blocks, and not on the order of events that share a sample number. A frame is only
finished once an event past its settle window arrives (or :meth:`flush`), so the latest frame
is reported with a delay of at most about one refresh.

Output records (:data:`DECODED_DTYPE`, shape (n,)):

- ``sample_number`` int64 — sample of the frame/strobe edge (start of the refresh);
- ``frame_number`` int64 — frames since the first START marker frame (0), from the frame-counter
  bits where the wire carries them, else counted from the edge timing (a dropped refresh skips
  a number); before any START, counted from the first frame seen;
- ``sweep_index`` int32 — 0..65532, :data:`SWEEP_NONE` (65535; also on marker frames), or
  :data:`SWEEP_UNKNOWN` (-1, always with ``UNKNOWN_INDEX``);
- ``flags`` uint32 — bits from :mod:`oe_plugin.protocol.spec`; ``flags & ERROR_MASK`` non-zero
  means "this frame, or the stretch just before it, had a problem". A sweep index is never
  wrong without an error flag on its frame.

Session codes (protocol version 2, :mod:`oe_plugin.protocol.session_code`): a refresh between
two START refreshes is a chunk of the session code; it is reported like a marker refresh
(``EXPERIMENT_START``, sweep ``SWEEP_NONE``) plus ``SESSION_CODE``. To tell such a refresh from
the first sweep refresh, the refreshes after a START are held back until the next START (a
chunk) or three consecutive refreshes with a known code and no error flag (sweeps): about two
refreshes of extra delay at each experiment start. When a START block ends,
:attr:`DecoderBase.experiments` gets one record ``(start_sample, session_code, status)``: the
code (or None) and ``"ok"``, ``"absent"`` (a version 1 stimulus: no chunk) or ``"corrupt"``
(chunks sent, no copy trusted).
"""

from __future__ import annotations

import numpy as np

from oe_plugin.protocol.session_code import parse_chunks
from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    COUNTER_MISMATCH,
    ERROR_MASK,
    EXPERIMENT_END,
    EXPERIMENT_START,
    EXTRA_FRAME,
    FLAG_NAMES,
    GAP,
    INTERNAL_ERROR,
    MAX_SWEEP_INDEX,
    OUTSIDE_EXPERIMENT,
    OVERFLOW,
    REPEATED,
    SESSION_CODE,
    SWEEP_CHANGE,
    SWEEP_NONE,
    SWEEP_UNKNOWN,
    TIMING,
    UNKNOWN_INDEX,
    ProtocolSettings,
    skew_samples,
)

MAX_HELD = 8
"""Undecided refreshes kept after a START (a START block's chunk or the first sweep refresh)."""
MAX_EXPERIMENTS = 4096
"""Experiment records kept (:attr:`DecoderBase.experiments`); later ones are counted only."""
_TIMING_ONLY = GAP | TIMING

DECODED_DTYPE = np.dtype([("sample_number", "<i8"), ("frame_number", "<i8"),
                          ("sweep_index", "<i4"), ("flags", "<u4")])
"""One decoded refresh (24 bytes, packed)."""

DEFAULT_CAPACITY = 8192


class DecoderBase:
    """What both schemes share: frame numbering, markers, the output buffer, counters.

    Parameters
    ----------
    settings : ProtocolSettings
    sample_rate_hz : float
        Acquisition sample rate of the stream the events come from, Hz.
    capacity : int
        Output buffer, frames: take them once ``n_ready >= capacity`` (one event may add up to
        ``MAX_HELD + 1`` frames at once; the buffer has that much room beyond ``capacity``);
        when it is full, further frames are dropped and counted (``n_overflow``) and the next
        stored frame carries ``OVERFLOW``.

    Attributes
    ----------
    frames : np.ndarray, DECODED_DTYPE, shape (capacity + MAX_HELD + 1,)
        Output buffer; the first ``n_ready`` records are ready (see :meth:`take`).
    n_events, n_frames, n_sweep_changes, n_experiments, n_error_frames, n_overflow : int
        Counters since construction or :meth:`reset`.
    flag_counts : list[int], length 32
        Frames with each flag bit set.
    n_internal_errors : int, last_internal_error : str | None
        Exceptions caught inside the decoder (should stay 0).
    """

    def __init__(self, settings: ProtocolSettings, sample_rate_hz: float,
                 capacity: int = DEFAULT_CAPACITY):
        settings.check()
        fs = float(sample_rate_hz)
        if not fs > 0:
            raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
        self.settings = settings
        self.sample_rate_hz = fs
        self.skew_samples = skew_samples(settings, fs)
        self.period_samples = fs / settings.refresh_hz
        self._tol = settings.timing_tolerance
        self.capacity = int(capacity)
        # one event may finish a held START-block run at once: room for it beyond capacity
        self.frames = np.zeros(self.capacity + MAX_HELD + 1, DECODED_DTYPE)
        self._o_sample = self.frames["sample_number"]
        self._o_frame = self.frames["frame_number"]
        self._o_sweep = self.frames["sweep_index"]
        self._o_flags = self.frames["flags"]
        self.reset()

    # -- lifecycle --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything (a new acquisition: sample numbers restart)."""
        self.n_ready = 0
        self.n_events = 0
        self.n_frames = 0
        self.n_sweep_changes = 0
        self.n_experiments = 0
        self.n_error_frames = 0
        self.n_overflow = 0
        self.n_internal_errors = 0
        self.last_internal_error: str | None = None
        self.flag_counts = [0] * 32
        self._carry = 0              # error flags waiting for the next frame
        self._last_s = -(1 << 62)    # last event's sample number
        self._ref_sample = -1        # sample of the last frame on the refresh grid
        self._ref_fn = -1            # ... and its frame number
        self._alt_sample = -1        # the last off-grid frame (a possible new anchor)
        self._alt_fn = -1
        self._fn = -1                # last finished frame number
        self._last_counter = -1      # counter bits of the last frame that had them
        self._last_counter_fn = -1   # ... and that frame's number
        self._last_code = None       # canonical code of the last finished frame
        self._last_known = None      # last emitted sweep index that was not UNKNOWN
        self._inside = False         # between a START and an END
        self._blk_open = False       # a START block is open (session-code chunks may follow)
        self._blk_sample = -1        # ... the sample of its first START refresh
        self._blk_chunks = []        # ... the chunks received (None: arrived corrupted)
        self._held = []              # refreshes after a START, not yet known chunk or sweep
        self._e_marker = False       # the last emitted refresh was a START-block refresh
        self.experiments = []        # (start_sample, session_code | None, status) per block
        self.n_code_ok = 0
        self.n_code_corrupt = 0
        self._reset_scheme()

    def _reset_scheme(self) -> None:  # pragma: no cover - overridden
        pass

    def take(self) -> np.ndarray:
        """A copy of the ready frames, and empty the buffer (allocates: not for the audio
        thread; there, read ``frames[:n_ready]`` and call :meth:`clear`)."""
        out = self.frames[:self.n_ready].copy()
        self.n_ready = 0
        return out

    def clear(self) -> None:
        """Mark the ready frames consumed."""
        self.n_ready = 0

    def stats(self) -> dict:
        """Counters as a dict (for reports and file headers)."""
        return {
            "events": self.n_events, "frames": self.n_frames,
            "sweep_changes": self.n_sweep_changes, "experiments": self.n_experiments,
            "error_frames": self.n_error_frames, "overflow_frames": self.n_overflow,
            "internal_errors": self.n_internal_errors,
            "last_internal_error": self.last_internal_error,
            "session_codes_ok": self.n_code_ok, "session_codes_corrupt": self.n_code_corrupt,
            "experiment_starts": [{"sample_number": int(e[0]), "session_code": e[1],
                                   "status": e[2]} for e in self.experiments],
            "flags": {name: self.flag_counts[bit.bit_length() - 1]
                      for bit, name in FLAG_NAMES.items()
                      if self.flag_counts[bit.bit_length() - 1]},
        }

    # -- shared internals -------------------------------------------------------------------

    def _internal(self, exc: BaseException) -> None:
        """Count an exception caught on the real-time path (never re-raised)."""
        try:
            self.n_internal_errors += 1
            self._carry |= INTERNAL_ERROR
            if self.last_internal_error is None:
                self.last_internal_error = f"{type(exc).__name__}: {exc}"
        except Exception:  # pragma: no cover - nothing left to do
            pass

    def _frame_number(self, sample: int, counter: int, counter_mod: int, code, flags: int):
        """Frame number for a frame edge at ``sample``; returns ``(frame_number, flags)``.

        Timing: ``n = round((sample - ref) / period)`` refreshes after the reference frame (the
        last frame that fell on the refresh grid). ``n == 0`` is an ``EXTRA_FRAME``; ``n >= 2`` a
        ``GAP``; more than ``timing_tolerance`` off the grid is ``TIMING`` and such a frame does
        not become the reference — unless the next frame falls on the grid relative to it (the
        refresh phase really moved, e.g. after a pause), which re-anchors the count there.

        ``counter`` is the frame-counter value the wire carried (mod ``counter_mod``), or -1.
        ``code`` is the canonical code if known (a START after a non-START resets the count).
        """
        if self._ref_sample < 0:
            n = 1
            fn = self._fn + 1
            self._ref_sample = sample
            self._ref_fn = fn
        else:
            period = self.period_samples
            x = (sample - self._ref_sample) / period
            n = int(x + 0.5)
            if n == 0:
                flags |= EXTRA_FRAME
                fn = self._ref_fn
            elif abs(x - n) <= self._tol:
                fn = self._ref_fn + n
                self._ref_sample = sample
                self._ref_fn = fn
                self._alt_sample = -1
            else:
                alt = self._alt_sample
                xa = (sample - alt) / period if alt >= 0 else 0.0
                na = int(xa + 0.5)
                if alt >= 0 and na >= 1 and abs(xa - na) <= self._tol:
                    n = na                      # re-anchor on the previous off-grid frame
                    fn = self._alt_fn + na
                    self._ref_sample = sample
                    self._ref_fn = fn
                    self._alt_sample = -1
                else:
                    flags |= TIMING
                    fn = self._ref_fn + n
                    self._alt_sample = sample
                    self._alt_fn = fn
            if n >= 2:
                flags |= GAP
        restart = (code == CODE_START and self._last_code != CODE_START
                   and not self._blk_open)
        if restart:
            fn = 0
            flags = self._new_experiment(sample, fn, flags)
        if counter >= 0:
            if self._fn < 0 and not restart:
                fn = counter  # first frame ever: adopt the wire's count
            else:
                d = (counter - fn) % counter_mod
                if d:
                    if (not restart and counter == self._last_counter
                            and self._last_counter_fn == self._fn and n >= 1):
                        flags |= REPEATED  # the previous frame's counter again
                        fn = self._fn
                    else:
                        flags |= COUNTER_MISMATCH
                        if d > counter_mod // 2:
                            d -= counter_mod
                        fn += d
            self._last_counter = counter
            self._last_counter_fn = fn
        self._renumber(sample, fn)
        return fn, flags

    def _new_experiment(self, sample: int, fn: int, flags: int) -> int:
        """A START marker after a frame that is not one opens a new experiment: the pause
        before it (between stimulus sessions) is no dropped refresh, so ``GAP`` and ``TIMING``
        are cleared and the refresh grid is anchored on this frame. Returns the flags."""
        self._ref_sample = sample
        self._ref_fn = fn
        self._alt_sample = -1
        return flags & ~(GAP | TIMING)

    def _renumber(self, sample: int, fn: int) -> None:
        """The frame at ``sample`` is frame ``fn`` after all (a reset or a counter correction):
        move the timing reference with it."""
        if self._ref_sample == sample:
            self._ref_fn = fn
        if self._alt_sample == sample:
            self._alt_fn = fn

    def _store(self, sample: int, fn: int, code, flags: int) -> None:
        """One finished frame, in order: the START-block logic, then :meth:`_emit`.

        ``code``: canonical code (0..MAX_SWEEP_INDEX, SWEEP_NONE, CODE_START, CODE_END) or
        SWEEP_UNKNOWN/None."""
        self._last_code = code
        self._fn = fn
        if code == CODE_START:
            if self._held:
                self._held_are_chunks()
            if not self._blk_open:
                self._blk_open = True
                self._blk_sample = sample
                self._blk_chunks = []
            self._emit(sample, fn, code, flags)
            return
        if not self._blk_open:
            self._emit(sample, fn, code, flags)
            return
        if code == CODE_END:
            self._close_block(False)
            self._emit(sample, fn, code, flags)
            return
        held = self._held
        held.append((sample, fn, code, flags))
        n = len(held)
        if n > MAX_HELD:
            self._close_block(True)
        elif n >= 3 and _clean(held[-1]) and _clean(held[-2]) and _clean(held[-3]):
            # three clean sweep refreshes in a row: the block is over. Two were not enough: a
            # glitch edge on the frame line just after a chunk makes a refresh that repeats the
            # chunk's code cleanly (no word of its own), and the real START edge right after it
            # is the one flagged EXTRA_FRAME (found by the property test, 2026-12-07)
            self._close_block(False)

    def _held_are_chunks(self) -> None:
        """The held refreshes came before a START: they are the block's chunk slot. One
        refresh is one chunk; a longer run (a START in it arrived corrupted) has its chunks at
        even positions."""
        run, self._held = self._held, []
        single = len(run) == 1
        for i, (sample, fn, code, flags) in enumerate(run):
            if single or i % 2 == 0:
                ok = _known(code) and not flags & ERROR_MASK & ~_TIMING_ONLY
                self._blk_chunks.append(code if ok else None)
            self._emit(sample, fn, CODE_START, flags | SESSION_CODE)

    def _close_block(self, at_end: bool) -> None:
        """The START block is over: emit the held refreshes as sweep refreshes and record the
        experiment's session code. A held refresh up to the last unknown or flagged one (a
        START may have been lost or spoiled there; at the end of the stream: all of them) might
        have been a chunk: it is reported unknown, never as a sweep it may not be."""
        run, self._held = self._held, []
        last_unknown = len(run) - 1 if at_end else -1
        if not at_end:
            for i, item in enumerate(run):
                if not _clean(item):
                    last_unknown = i
        for i, (sample, fn, code, flags) in enumerate(run):
            if i <= last_unknown and _known(code):
                code = SWEEP_UNKNOWN
            self._emit(sample, fn, code, flags)
        self._blk_open = False
        value, status = parse_chunks(self.settings, self._blk_chunks)
        self._blk_chunks = []
        if status == "ok":
            self.n_code_ok += 1
        elif status == "corrupt":
            self.n_code_corrupt += 1
        if len(self.experiments) < MAX_EXPERIMENTS:
            self.experiments.append((self._blk_sample, value, status))

    def _flush_block(self) -> None:
        """End of the stream (:meth:`flush`): settle an open START block."""
        if self._blk_open and self._held:
            self._close_block(True)

    def _emit(self, sample: int, fn: int, code, flags: int) -> None:
        """Apply marker/sweep bookkeeping to one finished frame and append it to the buffer."""
        if code == CODE_START:
            flags |= EXPERIMENT_START
            if not self._e_marker:
                self.n_experiments += 1
            self._e_marker = True
            self._inside = True
            sweep = SWEEP_NONE
        elif code == CODE_END:
            self._e_marker = False
            flags |= EXPERIMENT_END
            self._inside = False
            sweep = SWEEP_NONE
        else:
            self._e_marker = False
            if not self._inside:
                flags |= OUTSIDE_EXPERIMENT
            if code == SWEEP_UNKNOWN or code is None:
                sweep = SWEEP_UNKNOWN
                flags |= UNKNOWN_INDEX
            elif 0 <= code <= MAX_SWEEP_INDEX or code == SWEEP_NONE:
                sweep = code
            else:  # unreachable for valid codes; keep it safe
                sweep = SWEEP_UNKNOWN
                flags |= UNKNOWN_INDEX
        if sweep != SWEEP_UNKNOWN:
            if sweep != self._last_known:
                flags |= SWEEP_CHANGE
                self.n_sweep_changes += 1
            self._last_known = sweep
        self.n_frames += 1
        if flags & ERROR_MASK:
            self.n_error_frames += 1
        if self.n_ready >= self.frames.shape[0]:
            self.n_overflow += 1
            self._carry |= OVERFLOW
            return
        i = self.n_ready
        self._o_sample[i] = sample
        self._o_frame[i] = fn
        self._o_sweep[i] = sweep
        self._o_flags[i] = flags
        self.n_ready = i + 1
        counts = self.flag_counts
        b = 0
        f = flags
        while f:
            if f & 1:
                counts[b] += 1
            f >>= 1
            b += 1


def _known(code) -> bool:
    return code is not None and code != SWEEP_UNKNOWN


def _clean(item) -> bool:
    """A held refresh with a known code and no error flag."""
    return _known(item[2]) and not item[3] & ERROR_MASK


def make_decoder(settings: ProtocolSettings, sample_rate_hz: float,
                 capacity: int = DEFAULT_CAPACITY) -> DecoderBase:
    """The decoder for ``settings.scheme`` (checks the settings; ``SettingsError`` if the
    sample rate is too low for the serial bit time)."""
    if settings.scheme == "parallel":
        from oe_plugin.protocol.decoder_parallel import ParallelDecoder

        return ParallelDecoder(settings, sample_rate_hz, capacity)
    from oe_plugin.protocol.decoder_serial import SerialDecoder

    return SerialDecoder(settings, sample_rate_hz, capacity)


def decode_events(settings: ProtocolSettings, sample_rate_hz: float, sample_numbers, lines,
                  states) -> tuple[np.ndarray, DecoderBase]:
    """Decode a whole event stream (offline); the same code path as online.

    Parameters
    ----------
    sample_numbers : int, shape (n_events,) — in non-decreasing order.
    lines : int, shape (n_events,) — 0-based lines.
    states : bool, shape (n_events,) — new line states.

    Returns
    -------
    frames : np.ndarray, DECODED_DTYPE, shape (n_frames,)
    decoder : the decoder (for its counters, :meth:`DecoderBase.stats`).
    """
    dec = make_decoder(settings, sample_rate_hz)
    s_list = np.asarray(sample_numbers, dtype=np.int64).tolist()
    l_list = np.asarray(lines, dtype=np.int64).tolist()
    v_list = np.asarray(states, dtype=bool).tolist()
    parts = []
    on_edge = dec.on_edge
    limit = dec.capacity // 2
    chunk = 1024
    for start in range(0, len(s_list), chunk):
        stop = start + chunk
        for s, line, v in zip(s_list[start:stop], l_list[start:stop], v_list[start:stop],
                              strict=True):
            on_edge(s, line, v)
        if dec.n_ready > limit:
            parts.append(dec.take())
    dec.flush()
    parts.append(dec.take())
    return np.concatenate(parts), dec


__all__ = ["DECODED_DTYPE", "DecoderBase", "decode_events", "make_decoder"]
