"""Sweep TTL encoder: each refresh's code -> timed changes of the output word.

The stimulus driver calls :meth:`SweepEncoder.frame` once per flip and hands the result to its
TTL backend (a microcontroller, a NI-DAQ buffered output, a file, a virtual port): a tuple of
``(offset_us, word)`` pairs meaning "``offset_us`` µs after the flip, set the output port to
``word``" (bit ``l`` of ``word`` = line ``l``, 0-based as in the GUI). Only lines the protocol
owns are ever set. The layout and timing are defined in :mod:`oe_plugin.protocol.spec`.

A session looks like this (``frame_number`` counts refreshes from the first START frame, which
is frame 0; a refresh the stimulus missed skips a number, a frame shown twice repeats one)::

    enc = SweepEncoder(settings)
    for k in range(settings.marker_frames):      backend.send(enc.frame(CODE_START, k))
    for sweep_index, n in shown_frames:          backend.send(enc.frame(sweep_index, n))
    for n in enc.end_frame_numbers(last + 1):    backend.send(enc.frame(CODE_END, n))
    backend.send(enc.finish())                   # all protocol lines low

:func:`session_codes` and :func:`encode_session` do this for a whole frame sequence at once
(tests, the TTL simulator, the ``file`` backend).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    SERIAL_WORD_BITS,
    SWEEP_NONE,
    ProtocolSettings,
    serial_word_bits,
    wire_code,
)

TRANSITION_DTYPE = np.dtype([("time_us", "<f8"), ("line", "<i2"), ("level", "?")])
"""One line transition in continuous time: µs since the session's time origin, line, new level."""


class SweepEncoder:
    """Stateful per-refresh encoder (one per session; :meth:`reset` to start over).

    Parameters
    ----------
    settings : ProtocolSettings
        Checked here (``SettingsError`` on bad values).
    """

    def __init__(self, settings: ProtocolSettings):
        settings.check()
        self.settings = settings
        self._parallel = settings.scheme == "parallel"
        self._frame_bit = 1 << settings.frame_line
        self._data_bit = 1 << settings.data_line if settings.data_line >= 0 else 0
        self._n_index = len(settings.index_lines)
        self.reset()

    def reset(self) -> None:
        """Back to the idle state (all lines low, no word sent yet)."""
        self.word = 0
        self._last_code: int | None = None
        self._last_word_frame: int | None = None
        self._last_frame = -1

    # -- per refresh ------------------------------------------------------------------------

    def frame(self, code: int, frame_number: int) -> tuple[tuple[float, int], ...]:
        """The output-word changes for one refresh.

        Parameters
        ----------
        code : int
            Sweep index (``0..settings.max_sweep_index()``), :data:`SWEEP_NONE`,
            :data:`CODE_START` or :data:`CODE_END`.
        frame_number : int
            The refresh's frame number (>= 0): refreshes since the first START frame.

        Returns
        -------
        tuple of (offset_us: float, word: int)
            Sorted by offset; the first at offset 0 (the flip).

        Raises
        ------
        ValueError
            A sweep index that the encoding cannot carry.
        """
        code = int(code)
        frame_number = int(frame_number)
        if frame_number < 0:
            raise ValueError(f"frame_number must be >= 0, got {frame_number}")
        if self._parallel:
            out = self._parallel_frame(code, frame_number)
        else:
            out = self._serial_frame(code, frame_number)
        self._last_code = code
        self._last_frame = frame_number
        return out

    def finish(self) -> tuple[tuple[float, int], ...]:
        """Bring every protocol line low (after the END frames); empty if already low."""
        if self.word == 0:
            return ()
        self.word = 0
        return ((0.0, 0),)

    def end_frame_numbers(self, first: int) -> range:
        """Frame numbers for the END marker: ``marker_frames`` of them, one more in the serial
        scheme when needed so that the frame line ends low (lines left high upset readers that
        pair rising and falling edges, e.g. neo)."""
        n = self.settings.marker_frames
        if not self._parallel:
            frame_high = bool(self.word & self._frame_bit)
            if frame_high != (n % 2 == 1):  # after n toggles the frame line must be low
                n += 1
        return range(first, first + n)

    # -- schemes ----------------------------------------------------------------------------

    def _parallel_frame(self, code: int, frame_number: int) -> tuple[tuple[float, int], ...]:
        s = self.settings
        wire = wire_code(code, self._n_index)
        data = 0
        bits = 0
        for i, line in enumerate(s.index_lines):
            if (wire >> i) & 1:
                data |= 1 << line
                bits += 1
        counter = frame_number % (1 << len(s.counter_lines)) if s.counter_lines else 0
        for i, line in enumerate(s.counter_lines):
            if (counter >> i) & 1:
                data |= 1 << line
                bits += 1
        if not bits & 1:  # odd parity over index, counter and parity lines
            data |= 1 << s.parity_line
        on = data | self._frame_bit
        off = 0 if s.return_to_zero else data
        self.word = off
        return ((0.0, on), (s.strobe_us, off))

    def _serial_frame(self, code: int, frame_number: int) -> tuple[tuple[float, int], ...]:
        s = self.settings
        word = self.word ^ self._frame_bit
        out = [(0.0, word)]
        if (code in (CODE_START, CODE_END) or code != self._last_code
                or self._last_word_frame is None or frame_number <= self._last_frame
                or frame_number - self._last_word_frame >= s.word_every_frames):
            bits = serial_word_bits(wire_code(code, 16), frame_number)
            level = 0
            for i in range(SERIAL_WORD_BITS + 1):  # the last position returns the line to idle
                b = (bits >> i) & 1
                if b != level:
                    word ^= self._data_bit
                    out.append((s.word_offset_us + i * s.bit_us, word))
                    level = b
            self._last_word_frame = frame_number
        self.word = word
        return tuple(out)


# -- whole sessions ----------------------------------------------------------------------------

class EncodedSession(NamedTuple):
    """A session encoded in continuous time.

    Attributes
    ----------
    transitions : np.ndarray, TRANSITION_DTYPE, shape (n_transitions,)
        Every line transition, sorted by time (stable: lines in bit order within one change).
    flip_time_us : np.ndarray float64, shape (n_frames,)
        Each refresh's flip time, µs.
    codes : np.ndarray int32, shape (n_frames,)
        Each refresh's code (sweep index, SWEEP_NONE, CODE_START, CODE_END).
    frame_numbers : np.ndarray int64, shape (n_frames,)
        Each refresh's frame number as sent.
    """

    transitions: np.ndarray
    flip_time_us: np.ndarray
    codes: np.ndarray
    frame_numbers: np.ndarray


def session_codes(settings: ProtocolSettings, sweep_per_frame,
                  session_code: int | None = None) -> np.ndarray:
    """Wrap a per-refresh sweep sequence in START and END markers.

    Parameters
    ----------
    sweep_per_frame : sequence of int, shape (n,)
        Sweep index (or SWEEP_NONE) shown at each refresh.
    session_code : int, optional
        24-bit session code sent in the START block (protocol version 2,
        :func:`oe_plugin.protocol.session_code.start_block`); None: START markers only.

    Returns
    -------
    np.ndarray int32, shape (n_start + n + n_end,)
        Codes; ``n_start`` is ``marker_frames`` (plus two per chunk with a code), ``n_end``
        is ``marker_frames`` or one more (see :meth:`SweepEncoder.end_frame_numbers`).
    """
    from oe_plugin.protocol.session_code import start_block

    body = np.asarray(sweep_per_frame, dtype=np.int64).astype(np.int32)
    m = settings.marker_frames
    start = np.asarray(start_block(settings, session_code), np.int32)
    n_start = start.size
    total_before_end = n_start + body.size
    n_end = m
    if settings.scheme == "serial" and (total_before_end + m) % 2:
        n_end += 1  # the frame line toggles once per refresh: end low
    return np.concatenate([start, body,
                           np.full(n_end, CODE_END, np.int32)])


def encode_session(settings: ProtocolSettings, codes, frame_numbers=None,
                   flip_time_us=None, *, t0_us: float = 0.0) -> EncodedSession:
    """Encode a sequence of refreshes into line transitions.

    Parameters
    ----------
    codes : sequence of int, shape (n_frames,)
        Per refresh (usually from :func:`session_codes`).
    frame_numbers : sequence of int, shape (n_frames,), optional
        As sent (default ``0..n_frames-1``); skip a number for a dropped frame, repeat one for
        a frame shown twice.
    flip_time_us : sequence of float, shape (n_frames,), optional
        Flip times, µs (default ``t0_us + k * period`` for the k-th refresh).
    t0_us : float
        Time of the first flip when ``flip_time_us`` is not given.

    Returns
    -------
    EncodedSession
        Transitions end with every line low.
    """
    codes = np.asarray(codes, dtype=np.int64)
    n = codes.size
    if frame_numbers is None:
        frame_numbers = np.arange(n, dtype=np.int64)
    frame_numbers = np.asarray(frame_numbers, dtype=np.int64)
    if flip_time_us is None:
        flip_time_us = t0_us + np.arange(n, dtype=np.float64) * settings.period_us()
    flip_time_us = np.asarray(flip_time_us, dtype=np.float64)
    if frame_numbers.shape != (n,) or flip_time_us.shape != (n,):
        raise ValueError("codes, frame_numbers and flip_time_us must have the same length")
    enc = SweepEncoder(settings)
    times: list[float] = []
    words: list[int] = []
    for k in range(n):
        t = float(flip_time_us[k])
        for offset, word in enc.frame(int(codes[k]), int(frame_numbers[k])):
            times.append(t + offset)
            words.append(word)
    last_t = float(flip_time_us[-1]) + settings.period_us() if n else t0_us
    for offset, word in enc.finish():
        times.append(last_t + offset)
        words.append(word)
    transitions = words_to_transitions(np.asarray(times), np.asarray(words, dtype=np.int64),
                                       settings.line_mask())
    return EncodedSession(transitions, flip_time_us, codes.astype(np.int32), frame_numbers)


def words_to_transitions(time_us: np.ndarray, words: np.ndarray, line_mask: int,
                         initial_word: int = 0) -> np.ndarray:
    """Per-line transitions from a sequence of output words.

    Parameters
    ----------
    time_us : float64, shape (n,) — when each word is written (non-decreasing), µs.
    words : int, shape (n,) — the output word written (bit l = line l).
    line_mask : int — lines to consider.
    initial_word : int — the port before the first word.

    Returns
    -------
    np.ndarray, TRANSITION_DTYPE — one row per line that changed, in time order, lines
    ascending within one write.
    """
    lines = np.array([b for b in range(256) if (line_mask >> b) & 1], dtype=np.int64)
    words = np.asarray(words, dtype=object if lines.size and lines.max() >= 63 else np.int64)
    time_us = np.asarray(time_us, dtype=np.float64)
    prev = np.concatenate([[int(initial_word)], words[:-1]]) if words.size else words
    levels = np.zeros((words.size, lines.size), bool)
    before = np.zeros((words.size, lines.size), bool)
    for j, b in enumerate(lines.tolist()):
        levels[:, j] = (words >> b) & 1 == 1
        before[:, j] = (prev >> b) & 1 == 1
    rows, cols = np.nonzero(levels != before)  # row-major: time order, then line order
    out = np.zeros(rows.size, TRANSITION_DTYPE)
    out["time_us"] = time_us[rows]
    out["line"] = lines[cols]
    out["level"] = levels[rows, cols]
    return out


__all__ = ["EncodedSession", "SweepEncoder", "TRANSITION_DTYPE", "encode_session",
           "session_codes", "words_to_transitions", "SWEEP_NONE"]
