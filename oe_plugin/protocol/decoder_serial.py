"""Decoder of the ``serial`` scheme: a toggling frame line plus a UART-like data line.

Per refresh (see :mod:`oe_plugin.protocol.spec` and docs/ttl-protocol.md)::

    frame   ____/‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾\\____  one edge per refresh
    data    ________/S‾\\_code(16)_count(4)_crc8(8)_\\______________  only on word refreshes
            e       e + offset                   e + offset + 29 bits

- a frame edge ``e`` is a candidate until ``e + W`` (W = skew window): a second edge on the
  frame line within W makes both a glitch (``GLITCH``); a frame edge confirmed while the
  previous frame's word is still arriving cuts that word short (``TIMING``, and it fails);
- a word may only start within W of ``e + word_offset``; any other data edge while idle is a
  ``STRAY_EDGE`` and makes the current sweep unknown until the next trusted word (so a lost or
  garbled word can never leave a stale index unflagged);
- bits are read at their centres, ``start + (i + 0.5) * bit`` samples (the state after every
  edge at or before that point); the start bit must read 1, every high or low run must last
  at least ``bit - 1.5`` samples (a shorter pulse is a glitch), the line must be low after the
  word (``FRAMING_ERROR``), and the CRC-8 must match (``CHECK_ERROR``); an edge repeating the
  data line's state (``MISSED_EDGE``) spoils the word;
- a word that passes is *trusted* when its frame counter equals the frame count (timing-based:
  one per refresh, a dropped refresh skips one), or it is a START word with counter <
  ``marker_frames`` (sets the count), or it repeats the previous frame's code and number
  (``REPEATED``). Otherwise ``COUNTER_MISMATCH``: the frame is unknown, unless the previous
  untrusted word agrees with this one (then the count is corrected and the word trusted);
- the frame is finished once its word has been decoded, or once its word slot
  (``e + offset + W + 29 bits + 2``) has passed without one, or when the next frame edge is
  confirmed: a refresh with a trusted word takes its code; one without inherits the current
  code — unless data edges appeared in its slot (a word whose start edge was lost), which make
  it unknown; more than ``word_every_frames`` refreshes without a trusted word is
  ``WORD_MISSING``.
"""

from __future__ import annotations

import math

from oe_plugin.config import SettingsError
from oe_plugin.protocol.decoder import DecoderBase
from oe_plugin.protocol.spec import (
    CHECK_ERROR,
    CODE_START,
    COUNTER_MISMATCH,
    FRAMING_ERROR,
    GLITCH,
    MAX_LINES,
    MISSED_EDGE,
    OUT_OF_ORDER,
    REPEATED,
    SERIAL_CODE_BITS,
    SERIAL_COUNTER_BITS,
    SERIAL_PAYLOAD_BITS,
    SERIAL_WORD_BITS,
    STRAY_EDGE,
    SWEEP_UNKNOWN,
    TIMING,
    WORD,
    WORD_MISSING,
    canonical_code,
    crc8,
    crc_wire,
)

_IGNORE, _FRAME, _DATA = 0, 1, 2
_WORD_EDGE_CAPACITY = SERIAL_WORD_BITS + 9
_NO_WORD, _GOOD_WORD, _BAD_WORD = 0, 1, 2
_COUNTER_MOD = 1 << SERIAL_COUNTER_BITS
MIN_SAMPLES_PER_BIT = 2.5
RUN_TOLERANCE_SAMPLES = 1.5


class SerialDecoder(DecoderBase):
    """Event-by-event decoder of the serial scheme (see the module docstring)."""

    def __init__(self, settings, sample_rate_hz, capacity=8192):
        s = settings
        self._roles = [_IGNORE] * MAX_LINES
        self._roles[s.frame_line] = _FRAME
        self._roles[s.data_line] = _DATA
        self._data_bit = 1 << s.data_line
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
        self._word_done = math.ceil(self.word_samples) + 1
        self._slot = math.ceil(self.offset_samples + w + self.word_samples) + 2
        self._min_run = self.bit_samples - RUN_TOLERANCE_SAMPLES
        self._bit_centres = [(i + 0.5) * self.bit_samples for i in range(SERIAL_WORD_BITS)]
        self._w_rel = [0] * _WORD_EDGE_CAPACITY
        self._w_lvl = [False] * _WORD_EDGE_CAPACITY
        self._marker_frames = s.marker_frames

    def _reset_scheme(self) -> None:
        self._state = 0
        self._cand = -1          # candidate frame edge (not yet confirmed), -1 = none
        self._p_edge = -1        # pending (confirmed) frame edge, -1 = none
        self._p_flags = 0
        self._p_word = _NO_WORD
        self._p_code = SWEEP_UNKNOWN
        self._p_counter = -1
        self._w_start = -1       # word being received: start sample, -1 = idle
        self._w_n = 0
        self._w_bad = 0
        self._cur = SWEEP_UNKNOWN  # current code (canonical) between words
        self._last_word_fn = None  # frame number of the last trusted word
        self._suspect_fn = -1      # last untrusted (counter-mismatched) word: frame count ...
        self._suspect_counter = -1  # ... and its counter

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
                if missed:  # reported on the frame after the gap, with its GAP
                    self._carry |= MISSED_EDGE
                if self._cand >= 0:  # a second edge within the skew window: a glitch
                    self._flag(GLITCH)
                    self._cand = -1
                else:
                    self._cand = s
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
                self._finish()
            self._flush_block()
        except Exception as exc:
            self._internal(exc)

    # -- internals --------------------------------------------------------------------------

    def _flag(self, f: int) -> None:
        if self._p_edge >= 0:
            self._p_flags |= f
        else:
            self._carry |= f

    def _advance(self, s: int) -> None:
        """Everything due strictly before an event at ``s``; every decision depends on event
        times only, never on when the next event happens to arrive (block invariance): two
        deadlines that have both passed are taken in time order."""
        if (self._cand >= 0 and self._w_start >= 0 and s > self._cand + self.skew_samples
                and self._cand + self.skew_samples < self._w_start + self._word_done):
            # the next frame edge was confirmed while this frame's word was still arriving
            self._confirm()
        if self._w_start >= 0 and s > self._w_start + self._word_done:
            self._end_word()
        p = self._p_edge
        if p >= 0 and self._w_start < 0 and (self._p_word != _NO_WORD or s > p + self._slot):
            # done: its word is decoded, or its whole word slot passed without one (data
            # edges inside the slot -- a word whose start edge was lost -- still count here)
            self._finish()
        if self._cand >= 0 and s > self._cand + self.skew_samples:
            self._confirm()

    def _confirm(self) -> None:
        """The candidate frame edge survived its skew window: it becomes the pending frame."""
        if self._p_edge >= 0:  # the previous frame is still open
            if self._w_start >= 0:  # its word was still arriving: a collision
                self._p_flags |= TIMING
                self._end_word()
            self._finish()
        self._p_edge = self._cand
        self._p_flags = self._carry
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
        if (level and p >= 0 and self._p_word == _NO_WORD
                and abs(s - p - self.offset_samples) <= self.skew_samples + 1):
            if missed:  # the line was believed high: its last falling edge was lost
                self._p_flags |= MISSED_EDGE
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
        flags = self._w_bad
        self._w_start = -1
        self._w_n = 0
        bits = 0
        j = 0
        level = False
        for i, centre in enumerate(self._bit_centres):
            while j < n and rel[j] <= centre:
                level = lvl[j]
                j += 1
            if level:
                bits |= 1 << i
        min_run = self._min_run
        for k in range(1, n):
            if rel[k] - rel[k - 1] < min_run:
                flags |= GLITCH | FRAMING_ERROR  # a pulse shorter than a bit
                break
        if self._state & self._data_bit:
            # the line must idle low after the word: resynchronise (a lost falling edge, or a
            # stuck line; either way this word is spoiled and the next one starts clean)
            self._state &= ~self._data_bit
            flags |= MISSED_EDGE | FRAMING_ERROR
        if not bits & 1:
            flags |= FRAMING_ERROR
        payload = (bits >> 1) & ((1 << SERIAL_PAYLOAD_BITS) - 1)
        if not flags and crc8(payload) != crc_wire((bits >> (1 + SERIAL_PAYLOAD_BITS)) & 0xFF):
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
            self._p_code = canonical_code(payload & ((1 << SERIAL_CODE_BITS) - 1), 16)
            self._p_counter = payload >> SERIAL_CODE_BITS

    def _finish(self) -> None:
        e = self._p_edge
        flags = self._p_flags
        self._p_edge = -1
        word = self._p_word
        self._p_word = _NO_WORD
        fn, flags = self._frame_number(e, -1, 1, None, flags)  # timing-based count
        if word == _GOOD_WORD:
            code = self._p_code
            c = self._p_counter
            trusted = True
            in_block = self._blk_open and self._last_code != CODE_START
            if code == CODE_START and c < self._marker_frames and not in_block:
                # a START word sets the count (not the STARTs between session-code chunks:
                # their counters run on past marker_frames)
                fn = c
                if self._last_code != CODE_START and not self._blk_open:
                    flags = self._new_experiment(e, fn, flags)  # no GAP for the pause
            elif (c - fn) % _COUNTER_MOD:
                if ((c - self._fn) % _COUNTER_MOD == 0 and self._fn >= 0
                        and code == self._last_code):
                    flags |= REPEATED          # the previous frame again
                    fn = self._fn
                else:
                    flags |= COUNTER_MISMATCH
                    if (self._suspect_fn >= 0 and (c - self._suspect_counter) % _COUNTER_MOD
                            == (fn - self._suspect_fn) % _COUNTER_MOD):
                        d = (c - fn) % _COUNTER_MOD  # two words agree: our count is off
                        if d > _COUNTER_MOD // 2:
                            d -= _COUNTER_MOD
                        fn += d
                    else:
                        trusted = False
                        self._suspect_fn = fn
                        self._suspect_counter = c
            self._renumber(e, fn)
            if trusted:
                flags |= WORD
                self._suspect_fn = -1
                self._cur = code
                self._last_word_fn = fn
            else:
                code = SWEEP_UNKNOWN
                self._cur = SWEEP_UNKNOWN
        elif word == _BAD_WORD:
            code = SWEEP_UNKNOWN
            self._cur = SWEEP_UNKNOWN
        else:
            code = self._cur
            last = self._last_word_fn
            if last is not None and fn - last > self.settings.word_every_frames:
                flags |= WORD_MISSING
                code = SWEEP_UNKNOWN
                self._cur = SWEEP_UNKNOWN
        self._store(e, fn, code, flags)
