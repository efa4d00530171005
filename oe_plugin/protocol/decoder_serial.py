"""Decoder of the ``serial`` scheme: a toggling frame line plus a UART-like data line.

Per refresh (see :mod:`oe_plugin.protocol.spec` and docs/ttl-protocol.md)::

    frame   ____/‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾\\____   one edge per refresh (either way)
    data    _________/S‾\\_b1_b2_..._b16_c0..c3_k0..k3_P\\____   only on word refreshes
            e        e + offset                        e + offset + 26 bits

- a frame edge ``e`` is a candidate until ``e + W`` (W = skew window): a second edge on the
  frame line within W makes both a glitch (``GLITCH``);
- a word may only start within W of ``e + word_offset``; any other data edge while idle is a
  ``STRAY_EDGE`` and makes the current sweep unknown until the next valid word (so a lost or
  garbled word can never leave a stale index unflagged);
- bits are read at their centres, ``start + (i + 0.5) * bit`` samples (the state after every
  edge at or before that point); the start bit must be 1, the stop bit 0 (``FRAMING_ERROR``),
  and the CRC-4 must match (``CHECK_ERROR``); an edge repeating the data line's state
  (``MISSED_EDGE``) spoils the word;
- the frame is finished once its settle window has passed (``e + offset + W + 26 bits + 1``):
  a refresh with a valid word takes the word's code and counter; one without inherits the
  current code; more than ``word_every_frames`` refreshes without a word is ``WORD_MISSING``.
"""

from __future__ import annotations

import math

from oe_plugin.config import SettingsError
from oe_plugin.protocol.decoder import DecoderBase
from oe_plugin.protocol.spec import (
    CHECK_ERROR,
    FRAMING_ERROR,
    GLITCH,
    MAX_LINES,
    MISSED_EDGE,
    OUT_OF_ORDER,
    SERIAL_CODE_BITS,
    SERIAL_COUNTER_BITS,
    SERIAL_PAYLOAD_BITS,
    SERIAL_WORD_BITS,
    STRAY_EDGE,
    SWEEP_UNKNOWN,
    WORD,
    WORD_MISSING,
    canonical_code,
    crc4,
)

_IGNORE, _FRAME, _DATA = 0, 1, 2
_WORD_EDGE_CAPACITY = SERIAL_WORD_BITS + 8
_NO_WORD, _GOOD_WORD, _BAD_WORD = 0, 1, 2
MIN_SAMPLES_PER_BIT = 2.5


class SerialDecoder(DecoderBase):
    """Event-by-event decoder of the serial scheme (see the module docstring)."""

    def __init__(self, settings, sample_rate_hz, capacity=8192):
        s = settings
        self._roles = [_IGNORE] * MAX_LINES
        self._roles[s.frame_line] = _FRAME
        self._roles[s.data_line] = _DATA
        super().__init__(settings, sample_rate_hz, capacity)
        fs = self.sample_rate_hz
        self.bit_samples = s.bit_us * fs / 1e6
        if self.bit_samples < MIN_SAMPLES_PER_BIT:
            raise SettingsError(
                f"protocol.bit_us: {s.bit_us} µs is {self.bit_samples:.2f} samples at "
                f"{fs:g} Hz; the serial scheme needs >= {MIN_SAMPLES_PER_BIT} samples per bit "
                f"(raise bit_us or the sample rate)")
        self.word_samples = SERIAL_WORD_BITS * self.bit_samples
        self.offset_samples = s.word_offset_us * fs / 1e6
        w = self.skew_samples
        self._settle = math.ceil(self.offset_samples + w + self.word_samples) + 1
        self._bit_centres = [(i + 0.5) * self.bit_samples for i in range(SERIAL_WORD_BITS)]
        self._w_rel = [0] * _WORD_EDGE_CAPACITY
        self._w_lvl = [False] * _WORD_EDGE_CAPACITY

    def _reset_scheme(self) -> None:
        self._state = 0
        self._cand = -1          # candidate frame edge (not yet confirmed), -1 = none
        self._cand_flags = 0
        self._p_edge = -1        # pending (confirmed) frame edge, -1 = none
        self._p_flags = 0
        self._p_word = _NO_WORD
        self._p_code = SWEEP_UNKNOWN
        self._p_counter = -1
        self._w_start = -1       # word being received: start sample, -1 = idle
        self._w_n = 0
        self._w_bad = 0
        self._cur = SWEEP_UNKNOWN  # current code (canonical) between words
        self._last_word_fn = None

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
            if self._p_edge >= 0 or self._cand >= 0 or self._w_start >= 0:
                self._advance(s)
            role = self._roles[line] if 0 <= line < MAX_LINES else _IGNORE
            if role == _IGNORE:
                return
            bit = 1 << line
            level = bool(state)
            missed = bool(self._state & bit) == level
            if level:
                self._state |= bit
            else:
                self._state &= ~bit
            if role == _FRAME:
                if missed:
                    self._flag(MISSED_EDGE)
                if self._cand >= 0:  # a second edge within the skew window: a glitch
                    self._flag(self._cand_flags | GLITCH)
                    self._cand = -1
                else:
                    self._cand = s
                    self._cand_flags = 0
            else:
                self._data_edge(s, level, missed)
        except Exception as exc:
            self._internal(exc)

    def advance_to(self, sample_number) -> None:
        """Declare that no event with a sample number <= ``sample_number`` is still to come.
        Never raises."""
        try:
            s = int(sample_number)
            if s > self._last_s:
                self._advance(s + 1)
        except Exception as exc:
            self._internal(exc)

    def flush(self) -> None:
        """End of the stream: finish what is pending with what has been seen. Never raises."""
        try:
            if self._w_start >= 0:
                self._end_word()
            if self._p_edge >= 0:
                self._finish()
            if self._cand >= 0:
                self._confirm()
                if self._w_start >= 0:
                    self._end_word()
                self._finish()
        except Exception as exc:
            self._internal(exc)

    # -- internals --------------------------------------------------------------------------

    def _flag(self, f: int) -> None:
        if self._p_edge >= 0:
            self._p_flags |= f
        else:
            self._carry |= f

    def _advance(self, s: int) -> None:
        """Everything due strictly before an event at ``s``."""
        if self._w_start >= 0 and s > self._w_start + self.word_samples:
            self._end_word()
        if self._p_edge >= 0 and s > self._p_edge + self._settle:
            self._finish()
        if self._cand >= 0 and s > self._cand + self.skew_samples:
            self._confirm()

    def _confirm(self) -> None:
        """The candidate frame edge survived its skew window: it becomes the pending frame."""
        if self._p_edge >= 0:  # the previous frame is still open: the edge came early
            if self._w_start >= 0:
                self._end_word()
            self._finish()
        self._p_edge = self._cand
        self._p_flags = self._carry | self._cand_flags
        self._carry = 0
        self._cand = -1
        self._p_word = _NO_WORD

    def _data_edge(self, s: int, level: bool, missed: bool) -> None:
        if self._w_start >= 0:
            n = self._w_n
            if n < _WORD_EDGE_CAPACITY:
                self._w_rel[n] = s - self._w_start
                self._w_lvl[n] = level
                self._w_n = n + 1
            else:
                self._w_bad |= FRAMING_ERROR
            if missed:
                self._w_bad |= MISSED_EDGE
            return
        p = self._p_edge
        if (level and not missed and p >= 0 and self._p_word == _NO_WORD
                and abs(s - p - self.offset_samples) <= self.skew_samples + 1):
            self._w_start = s
            self._w_rel[0] = 0
            self._w_lvl[0] = True
            self._w_n = 1
            self._w_bad = 0
            return
        # an edge outside any word window: the index can no longer be trusted
        self._flag(STRAY_EDGE | (MISSED_EDGE if missed else 0))
        self._cur = SWEEP_UNKNOWN
        if p >= 0 and self._p_word == _NO_WORD:
            self._p_word = _BAD_WORD

    def _end_word(self) -> None:
        """Decode the word received so far and attach it to the pending frame."""
        n = self._w_n
        rel = self._w_rel
        lvl = self._w_lvl
        bits = 0
        j = 0
        level = False
        for i, centre in enumerate(self._bit_centres):
            while j < n and rel[j] <= centre:
                level = lvl[j]
                j += 1
            if level:
                bits |= 1 << i
        flags = self._w_bad
        self._w_start = -1
        self._w_n = 0
        if not bits & 1 or (bits >> (SERIAL_WORD_BITS - 1)) & 1:
            # start bit not held for half a bit: a glitch; else a broken word
            flags |= GLITCH if n <= 2 and (n < 2 or rel[1] <= self.skew_samples) else 0
            flags |= FRAMING_ERROR
        payload = (bits >> 1) & ((1 << SERIAL_PAYLOAD_BITS) - 1)
        if not flags and crc4(payload) != (bits >> (1 + SERIAL_PAYLOAD_BITS)) & 0xF:
            flags |= CHECK_ERROR
        if self._p_edge < 0:  # cannot happen (a word starts only while a frame is pending)
            self._carry |= flags | FRAMING_ERROR
            self._cur = SWEEP_UNKNOWN
            return
        if flags:
            self._p_flags |= flags
            self._p_word = _BAD_WORD
            self._cur = SWEEP_UNKNOWN
        else:
            self._p_word = _GOOD_WORD
            self._p_code = payload & ((1 << SERIAL_CODE_BITS) - 1)
            self._p_counter = (payload >> SERIAL_CODE_BITS) & ((1 << SERIAL_COUNTER_BITS) - 1)

    def _finish(self) -> None:
        e = self._p_edge
        flags = self._p_flags
        self._p_edge = -1
        if self._p_word == _GOOD_WORD:
            code = canonical_code(self._p_code, 16)
            fn, flags = self._frame_number(e, self._p_counter, 1 << SERIAL_COUNTER_BITS, code,
                                           flags | WORD)
            self._cur = code
            self._last_word_fn = fn
        elif self._p_word == _BAD_WORD:
            code = SWEEP_UNKNOWN
            self._cur = SWEEP_UNKNOWN
            fn, flags = self._frame_number(e, -1, 1, code, flags)
        else:
            code = self._cur
            fn, flags = self._frame_number(e, -1, 1, code, flags)
            last = self._last_word_fn
            if last is not None and fn - last > self.settings.word_every_frames:
                flags |= WORD_MISSING
                code = SWEEP_UNKNOWN
                self._cur = SWEEP_UNKNOWN
        self._p_word = _NO_WORD
        self._store(e, fn, code, flags)
