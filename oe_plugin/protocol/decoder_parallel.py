"""Decoder of the ``parallel`` scheme: a code on N data lines latched by a strobe pulse.

Per strobe pulse (see :mod:`oe_plugin.protocol.spec` and docs/ttl-protocol.md)::

    strobe   ____/‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾\\____        rise r, fall r + strobe
    data     ====X=====word=============X====      (return-to-zero: all low after the fall)
                 |<W>| latch at r + W   |
                 r                       deadline r + strobe + W: the frame is finished

- the data lines are read at ``r + W`` (W = skew window, samples): the state after every edge
  with sample number <= r + W, so edges written together with the strobe but arriving a few
  samples late still count, whatever order same-sample events come in;
- a strobe falling again within W of its rise is a glitch (dropped, ``GLITCH``); a rise within
  W after a fall inside a pulse is a negative glitch (ignored, ``GLITCH``);
- the latched word must have odd parity over index, counter and parity lines (``CHECK_ERROR``
  and ``SWEEP_UNKNOWN`` otherwise); a pulse whose width is off by more than W gets
  ``FRAMING_ERROR``; a data-line edge farther than W from every strobe edge gets
  ``STRAY_EDGE``; an edge repeating its line's state gets ``MISSED_EDGE``.
"""

from __future__ import annotations

import math

from oe_plugin.protocol.decoder import DecoderBase
from oe_plugin.protocol.spec import (
    CHECK_ERROR,
    FRAMING_ERROR,
    GLITCH,
    MAX_LINES,
    MISSED_EDGE,
    OUT_OF_ORDER,
    STRAY_EDGE,
    SWEEP_UNKNOWN,
    TIMING,
    canonical_code,
)

_IGNORE, _STROBE, _DATA = 0, 1, 2


class ParallelDecoder(DecoderBase):
    """Event-by-event decoder of the parallel scheme (see the module docstring)."""

    def __init__(self, settings, sample_rate_hz, capacity=8192):
        s = settings
        self._roles = [_IGNORE] * MAX_LINES
        self._roles[s.frame_line] = _STROBE
        for line in (*s.index_lines, *s.counter_lines, s.parity_line):
            self._roles[line] = _DATA
        self._index_bits = [1 << line for line in s.index_lines]
        self._counter_bits = [1 << line for line in s.counter_lines]
        self._data_mask = 1 << s.parity_line
        for line in (*s.index_lines, *s.counter_lines):
            self._data_mask |= 1 << line
        self._n_index = len(s.index_lines)
        self._strobe_bit = 1 << s.frame_line
        self._rz = bool(s.return_to_zero)
        self._counter_mod = 1 << len(s.counter_lines)
        super().__init__(settings, sample_rate_hz, capacity)
        self.strobe_samples = s.strobe_us * self.sample_rate_hz / 1e6
        self._deadline_after = math.ceil(self.strobe_samples) + self.skew_samples + 1

    def _reset_scheme(self) -> None:
        self._state = 0          # line levels (bit l = line l)
        self._p_rise = -1        # pending strobe rise sample, -1 = none
        self._p_latched = False
        self._p_fall = -1
        self._p_flags = 0
        self._p_wire = 0
        self._p_counter = -1
        self._p_parity_ok = False
        self._last_strobe = -(1 << 62)  # sample of the last strobe edge
        self._stray = -1         # first data edge not yet explained by a strobe edge

    # -- the real-time entry point ----------------------------------------------------------

    def on_edge(self, sample_number, line, state) -> None:
        """One TTL edge (``line`` 0-based, ``state`` the new level). Never raises."""
        try:
            s = int(sample_number)
            self.n_events += 1
            if s < self._last_s:
                self._flag(OUT_OF_ORDER)
                s = self._last_s
            self._last_s = s
            if self._p_rise >= 0 or self._stray >= 0:
                self._advance(s)
            role = self._roles[line] if 0 <= line < MAX_LINES else _IGNORE
            if role == _IGNORE:
                return
            bit = 1 << line
            level = bool(state)
            if bool(self._state & bit) == level:
                self._flag(MISSED_EDGE)
            if level:
                self._state |= bit
            else:
                self._state &= ~bit
            w = self.skew_samples
            if role == _STROBE:
                self._last_strobe = s
                if self._stray >= 0 and s - self._stray <= w:
                    self._stray = -1
                if level:
                    self._rise(s)
                else:
                    self._fall(s)
            elif s - self._last_strobe > w and self._stray < 0:
                self._stray = s
        except Exception as exc:
            self._internal(exc)

    def advance_to(self, sample_number) -> None:
        """Declare that no event with a sample number <= ``sample_number`` is still to come
        (finishes frames whose windows have passed). Never raises."""
        try:
            s = int(sample_number)
            if s > self._last_s:
                self._advance(s + 1)
        except Exception as exc:
            self._internal(exc)

    def flush(self) -> None:
        """End of the stream: finish the pending frame with what has been seen. Never raises."""
        try:
            if self._stray >= 0:
                self._flag(STRAY_EDGE)
                self._stray = -1
            if self._p_rise >= 0:
                if not self._p_latched:
                    self._latch()
                self._finish()
            self._flush_block()
        except Exception as exc:
            self._internal(exc)

    # -- internals --------------------------------------------------------------------------

    def _flag(self, f: int) -> None:
        if self._p_rise >= 0:
            self._p_flags |= f
        else:
            self._carry |= f

    def _advance(self, s: int) -> None:
        """Everything due strictly before an event at ``s``."""
        w = self.skew_samples
        r = self._p_rise
        if r >= 0 and not self._p_latched and s > r + w:
            self._latch()
        if self._stray >= 0 and s > self._stray + w:
            # reported on the next frame: where it lands must not depend on when the next
            # event arrives (block invariance), only on the event times
            self._stray = -1
            self._carry |= STRAY_EDGE
        if r >= 0 and s > r + self._deadline_after:
            self._finish()

    def _rise(self, s: int) -> None:
        w = self.skew_samples
        if self._p_rise >= 0:
            if self._p_latched and self._p_fall >= 0 and s - self._p_fall <= w:
                self._p_fall = -1          # negative glitch inside the pulse
                self._p_flags |= GLITCH
                return
            if self._p_latched:
                self._p_flags |= TIMING    # the next strobe came before this one settled
                self._finish()
            else:
                self._carry |= self._p_flags | GLITCH
                self._p_rise = -1
        self._p_rise = s
        self._p_latched = False
        self._p_fall = -1
        self._p_flags = self._carry
        self._carry = 0

    def _fall(self, s: int) -> None:
        r = self._p_rise
        if r < 0:
            return  # no pulse pending (its rise was lost: MISSED_EDGE already flagged)
        if not self._p_latched:
            # falling within the skew window of the rise: a glitch, not a frame
            self._carry |= self._p_flags | GLITCH
            self._p_rise = -1
            return
        if self._p_fall < 0:
            self._p_fall = s

    def _latch(self) -> None:
        st = self._state
        wire = 0
        for i, bit in enumerate(self._index_bits):
            if st & bit:
                wire |= 1 << i
        counter = 0
        for i, bit in enumerate(self._counter_bits):
            if st & bit:
                counter |= 1 << i
        self._p_wire = wire
        self._p_counter = counter if self._counter_bits else -1
        self._p_parity_ok = bin(st & self._data_mask).count("1") & 1 == 1
        self._p_latched = True

    def _finish(self) -> None:
        r = self._p_rise
        flags = self._p_flags
        self._p_rise = -1
        fall = self._p_fall
        if fall < 0 or abs((fall - r) - self.strobe_samples) > self.skew_samples + 1:
            flags |= FRAMING_ERROR
            self._state &= ~self._strobe_bit  # resynchronise: the strobe rests low
        if self._rz and self._state & self._data_mask:
            # return-to-zero: every data line must be low after the pulse; one that is not lost
            # its falling edge (or is stuck): resynchronise so one lost edge spoils one frame
            flags |= MISSED_EDGE
            self._state &= ~self._data_mask
        if self._p_parity_ok:
            code = canonical_code(self._p_wire, self._n_index)
            counter = self._p_counter
        else:
            flags |= CHECK_ERROR
            code = SWEEP_UNKNOWN
            counter = -1
        fn, flags = self._frame_number(r, counter, self._counter_mod, code, flags)
        self._store(r, fn, code, flags)
