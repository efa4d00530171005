"""The sweep TTL protocol, version 1: constants, reserved codes, bit layouts, flags, settings.

One module that both sides import: the stimulus encoder (:mod:`oe_plugin.protocol.encoder`)
and the acquisition decoder (:mod:`oe_plugin.protocol.decoder`). docs/ttl-protocol.md explains
the timing with diagrams; this file is the normative definition.

Codes (16-bit canonical values; the decoder reports them like this whatever the wire width):

- ``0 .. MAX_SWEEP_INDEX`` (65532): a sweep-table row is on the screen;
- :data:`SWEEP_NONE` (65535): no sweep (pre/post-experiment blank, blank sweeps, post-sweep
  background) — dimstim's reserved value;
- :data:`CODE_START` (65534) / :data:`CODE_END` (65533): experiment start / end markers, sent on
  ``marker_frames`` consecutive refreshes; the first START refresh is frame number 0;
- decoded only: :data:`SWEEP_UNKNOWN` (-1) — the decoder cannot tell (always with an error flag).

Two encodings (``scheme``):

``parallel`` (16+ line systems): on every refresh the data lines carry the code (``index_lines``,
LSB first, N <= 16 bits), the frame-counter bits (``counter_lines``, frame number mod 2^k) and an
**odd** parity bit (``parity_line``) over those lines, and the strobe (``frame_line``) rises at
the flip and falls ``strobe_us`` later. With ``return_to_zero`` (default) every data line
falls with the strobe, so each refresh re-sends the whole word and any lost edge spoils at most
that one refresh. Odd parity makes the all-zero rest state invalid. With N index lines the top
three N-bit values are the reserved codes: ``2^N-1`` NONE, ``2^N-2`` START, ``2^N-3`` END, so
the largest sweep index is ``2^N - 4``.

``serial`` (8- and 2-line systems): ``frame_line`` toggles at every flip; ``data_line`` idles
low and carries, starting ``word_offset_us`` after the flip, a UART-like word of
:data:`SERIAL_WORD_BITS` bits of ``bit_us`` each, LSB first, then returns low (idle)::

    bit 0        start (1)
    bits 1..16   code (16 bits)
    bits 17..20  frame number mod 16
    bits 21..28  CRC-8 (x^8 + x^2 + x + 1, init 0xA5) over bits 1..20 fed in wire order,
                 sent MSB first (so the word is a codeword in wire order: every error burst
                 of up to 8 bits is detected)
    after bit 28 the line is low (the decoder checks it: a "stop" condition)

A word is sent on every marker refresh, on every refresh whose code differs from the previous
refresh's, on a frame number that does not advance (a repeated frame), and at least every
``word_every_frames`` refreshes (a keep-alive that bounds the recovery time after a corrupted
word). With the defaults (150 µs bits, 300 µs offset) a word ends 4.65 ms after the flip, inside
a 5 ms refresh at 200 Hz, with bits of 3 samples at 20 kHz.

The skew window ``skew_tolerance_us`` (default 150 µs = 3 samples at 20 kHz, 6 at 40 kHz):
the acquisition samples all digital inputs at once, so edges written together arrive within the
output device's inter-line skew (a DAQ port: < 1 µs; a microcontroller writing two ports in
turn or opto-isolators/level shifters with unequal delays: up to tens of µs) plus one sample of
quantisation each, i.e. 1-2 samples. 150 µs covers that with margin at 20 kHz while staying
well below the shortest protocol intervals (the 1 ms strobe, the 300 µs word offset). The
decoder latches the data lines ``skew`` samples after the strobe edge and treats a pulse
narrower than the window on a frame/strobe line as a glitch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from oe_plugin.config import choice, require

PROTOCOL_VERSION = 2
"""2: the START block may carry a 24-bit session code (:mod:`oe_plugin.protocol.session_code`);
version 1 recordings (no code) decode unchanged."""
READ_VERSIONS = (1, 2)

SWEEP_NONE = 65535
CODE_START = 65534
CODE_END = 65533
MAX_SWEEP_INDEX = 65532
SWEEP_UNKNOWN = -1

SERIAL_CODE_BITS = 16
SERIAL_COUNTER_BITS = 4
SERIAL_CRC_BITS = 8
SERIAL_PAYLOAD_BITS = SERIAL_CODE_BITS + SERIAL_COUNTER_BITS
SERIAL_WORD_BITS = 1 + SERIAL_PAYLOAD_BITS + SERIAL_CRC_BITS  # 29, then idle low
CRC8_POLY = 0x07  # x^8 + x^2 + x + 1 (the CRC-8/SMBUS polynomial; the x^8 term implicit)
CRC8_INIT = 0xA5  # non-zero: a lone start pulse (all-zero payload and CRC) must not pass, nor
#                   any high pulse of 1..29 bits from the start bit (a stuck line)

MAX_LINES = 256  # the GUI's TTL lines 0..255

# -- per-frame flags (uint32) ------------------------------------------------------------------
# informational
EXPERIMENT_START = 1 << 0   # a START marker refresh
EXPERIMENT_END = 1 << 1     # an END marker refresh
SWEEP_CHANGE = 1 << 2       # code differs from the previous decoded frame's
OUTSIDE_EXPERIMENT = 1 << 3  # before the first START seen, or after an END
WORD = 1 << 4               # serial: this refresh carried a valid word
SESSION_CODE = 1 << 5       # a START-block refresh carrying a session-code chunk (version 2)
# errors: any of these means "look before trusting this frame" (ERROR_MASK)
GAP = 1 << 8                # >= 1 refresh without a frame edge before this frame
EXTRA_FRAME = 1 << 9        # frame edge < half a period after the previous one
TIMING = 1 << 10            # interval not within timing_tolerance of a whole number of periods
GLITCH = 1 << 11            # a pulse narrower than the skew window on a protocol line
MISSED_EDGE = 1 << 12       # an edge repeated its line's state: an edge was lost
CHECK_ERROR = 1 << 13       # parallel parity or serial CRC failed
FRAMING_ERROR = 1 << 14     # bad strobe width, serial start/stop bit, misplaced/cut word
COUNTER_MISMATCH = 1 << 15  # frame-counter bits disagree with the decoder's frame count
REPEATED = 1 << 16          # frame counter did not advance (the same frame strobed twice)
STRAY_EDGE = 1 << 17        # a data-line edge outside the latch windows
WORD_MISSING = 1 << 18      # serial: no word for more than word_every_frames refreshes
OUT_OF_ORDER = 1 << 19      # an event's sample number went backwards
UNKNOWN_INDEX = 1 << 20     # sweep_index is SWEEP_UNKNOWN
OVERFLOW = 1 << 21          # the decoder's output buffer was full: frames were lost
INTERNAL_ERROR = 1 << 22    # the decoder caught an exception of its own (a bug; counted)

ERROR_MASK = (GAP | EXTRA_FRAME | TIMING | GLITCH | MISSED_EDGE | CHECK_ERROR | FRAMING_ERROR
              | COUNTER_MISMATCH | REPEATED | STRAY_EDGE | WORD_MISSING | OUT_OF_ORDER
              | UNKNOWN_INDEX | OVERFLOW | INTERNAL_ERROR)

FLAG_NAMES = {
    EXPERIMENT_START: "EXPERIMENT_START", EXPERIMENT_END: "EXPERIMENT_END",
    SWEEP_CHANGE: "SWEEP_CHANGE", OUTSIDE_EXPERIMENT: "OUTSIDE_EXPERIMENT", WORD: "WORD",
    SESSION_CODE: "SESSION_CODE",
    GAP: "GAP", EXTRA_FRAME: "EXTRA_FRAME", TIMING: "TIMING", GLITCH: "GLITCH",
    MISSED_EDGE: "MISSED_EDGE", CHECK_ERROR: "CHECK_ERROR", FRAMING_ERROR: "FRAMING_ERROR",
    COUNTER_MISMATCH: "COUNTER_MISMATCH", REPEATED: "REPEATED", STRAY_EDGE: "STRAY_EDGE",
    WORD_MISSING: "WORD_MISSING", OUT_OF_ORDER: "OUT_OF_ORDER", UNKNOWN_INDEX: "UNKNOWN_INDEX",
    OVERFLOW: "OVERFLOW", INTERNAL_ERROR: "INTERNAL_ERROR",
}


def flag_names(flags: int) -> list[str]:
    """Names of the bits set in ``flags`` (for messages and reports)."""
    return [name for bit, name in FLAG_NAMES.items() if int(flags) & bit]


@dataclass(frozen=True)
class ProtocolSettings:
    """How sweep indices travel on the TTL lines (TOML section ``[protocol]``).

    Lines are 0-based, as inside the GUI (the GUI's editor shows line + 1). The same settings
    must be used by the stimulus encoder and by the decoder; the stimulus session file stores
    them (``ttl_protocol``).
    """

    scheme: str = choice("serial", "parallel", default="serial")
    refresh_hz: float = 200.0
    """Nominal display refresh rate (Hz): one frame edge per refresh."""
    sync_line: int = 0
    """The Record Node's synchronisation line: never used by the protocol (-1: none)."""
    frame_line: int = 1
    """serial: the line toggling at every refresh; parallel: the strobe line."""
    data_line: int = 2
    """serial: the line carrying the words."""
    index_lines: tuple[int, ...] = ()
    """parallel: the code bits, LSB first (1..16 lines)."""
    counter_lines: tuple[int, ...] = ()
    """parallel: frame number mod 2^k, LSB first (0..8 lines; needed to see repeated frames)."""
    parity_line: int = -1
    """parallel: odd parity over index and counter lines (required)."""
    strobe_us: float = 1000.0
    """parallel: strobe pulse width, µs."""
    return_to_zero: bool = True
    """parallel: data lines fall with the strobe (every refresh re-sends the whole word)."""
    bit_us: float = 150.0
    """serial: bit duration, µs (>= 2.5 samples at the acquisition rate; 3 recommended)."""
    word_offset_us: float = 300.0
    """serial: start bit this long after the frame edge, µs."""
    word_every_frames: int = 20
    """serial: a word at least every this many refreshes (keep-alive)."""
    marker_frames: int = 3
    """refreshes carrying each of the START and END markers."""
    skew_tolerance_us: float = 150.0
    """latch delay after a frame edge, and the widest pulse treated as a glitch, µs."""
    timing_tolerance: float = 0.25
    """frame intervals within this fraction of a period of a whole number of periods are fine."""

    def check(self, section: str = "protocol") -> None:
        period_us = 1e6 / self.refresh_hz if self.refresh_hz > 0 else 0.0
        require(20.0 <= self.refresh_hz <= 1000.0, f"{section}.refresh_hz",
                f"must be 20..1000 Hz, got {self.refresh_hz}")
        require(0 < self.skew_tolerance_us <= 2000, f"{section}.skew_tolerance_us",
                f"must be in (0, 2000] µs, got {self.skew_tolerance_us}")
        require(0.05 <= self.timing_tolerance <= 0.45, f"{section}.timing_tolerance",
                f"must be 0.05..0.45 (fraction of a period), got {self.timing_tolerance}")
        require(1 <= self.marker_frames <= 100, f"{section}.marker_frames",
                f"must be 1..100, got {self.marker_frames}")
        require(-1 <= self.sync_line < MAX_LINES, f"{section}.sync_line",
                f"must be -1 (none) or 0..255, got {self.sync_line}")
        lines = self.lines()
        for key, line in lines:
            require(0 <= line < MAX_LINES, f"{section}.{key}", f"must be a line 0..255, got {line}")
            require(line != self.sync_line, f"{section}.{key}",
                    f"line {line} is the sync line (sync_line); the Record Node's sync line "
                    f"must not carry a fast pulse train: pick another line")
        seen: dict[int, str] = {}
        for key, line in lines:
            require(line not in seen, f"{section}.{key}",
                    f"line {line} is already used by {seen.get(line)}")
            seen[line] = key
        skew = self.skew_tolerance_us
        if self.scheme == "parallel":
            require(1 <= len(self.index_lines) <= 16, f"{section}.index_lines",
                    f"parallel needs 1..16 index lines, got {len(self.index_lines)}")
            require(len(self.counter_lines) <= 8, f"{section}.counter_lines",
                    f"at most 8 counter lines, got {len(self.counter_lines)}")
            require(self.parity_line >= 0, f"{section}.parity_line",
                    "parallel needs a parity line (odd parity makes lost edges visible)")
            require(self.strobe_us >= 3 * skew, f"{section}.strobe_us",
                    f"must be >= 3 x skew_tolerance_us ({3 * skew:g} µs), got {self.strobe_us}")
            require(self.strobe_us + 2 * skew <= period_us / 2, f"{section}.strobe_us",
                    f"strobe plus twice the skew window must fit in half a refresh "
                    f"({period_us / 2:g} µs), got {self.strobe_us}")
        else:
            require(1 <= self.word_every_frames <= 10000, f"{section}.word_every_frames",
                    f"must be 1..10000, got {self.word_every_frames}")
            require(self.bit_us > 0, f"{section}.bit_us", f"must be > 0, got {self.bit_us}")
            require(self.word_offset_us >= 2 * skew, f"{section}.word_offset_us",
                    f"must be >= 2 x skew_tolerance_us ({2 * skew:g} µs), "
                    f"got {self.word_offset_us}")
            end_us = self.word_offset_us + SERIAL_WORD_BITS * self.bit_us + skew
            require(end_us <= period_us - skew, f"{section}.bit_us",
                    f"a word ends {end_us:g} µs after the flip (offset + {SERIAL_WORD_BITS} bits "
                    f"+ skew window), past the next refresh minus the skew window "
                    f"({period_us - skew:g} µs): shorten bit_us or word_offset_us, or lower "
                    f"skew_tolerance_us")

    def lines(self) -> list[tuple[str, int]]:
        """The lines the scheme uses, as (setting name, line)."""
        if self.scheme == "parallel":
            out = [("frame_line", self.frame_line), ("parity_line", self.parity_line)]
            out += [(f"index_lines[{i}]", v) for i, v in enumerate(self.index_lines)]
            out += [(f"counter_lines[{i}]", v) for i, v in enumerate(self.counter_lines)]
            return out
        return [("frame_line", self.frame_line), ("data_line", self.data_line)]

    def line_mask(self) -> int:
        """Bit mask of the lines the scheme drives (bit ``l`` = line ``l``)."""
        mask = 0
        for _key, line in self.lines():
            if line >= 0:
                mask |= 1 << line
        return mask

    def period_us(self) -> float:
        """Nominal refresh period, µs."""
        return 1e6 / self.refresh_hz

    def max_sweep_index(self) -> int:
        """The largest sweep index this encoding can send (sweep tables need <= this + 1 rows)."""
        if self.scheme == "parallel":
            return min(MAX_SWEEP_INDEX, (1 << len(self.index_lines)) - 4)
        return MAX_SWEEP_INDEX

    def to_dict(self) -> dict:
        """JSON-ready dict (for the session file and output headers), with the version."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["index_lines"] = list(self.index_lines)
        out["counter_lines"] = list(self.counter_lines)
        out["protocol_version"] = PROTOCOL_VERSION
        return out

    @classmethod
    def from_dict(cls, table: dict | None, section: str = "protocol") -> ProtocolSettings:
        """Inverse of :meth:`to_dict` (checks the version; unknown keys are an error)."""
        from oe_plugin.config import SettingsError, from_table

        table = dict(table or {})
        version = table.pop("protocol_version", PROTOCOL_VERSION)
        if version not in READ_VERSIONS:
            raise SettingsError(f"{section}.protocol_version: this sweepsort reads TTL protocol "
                                f"versions {', '.join(map(str, READ_VERSIONS))}, got {version!r}")
        code = table.pop("session_code", None)  # the session's identity, not a setting
        if code is not None and not (isinstance(code, int) and 0 <= code < 1 << 24):
            raise SettingsError(f"{section}.session_code: must be a 24-bit integer or null, "
                                f"got {code!r}")
        return from_table(cls, table, section)


# -- codes on the wire -------------------------------------------------------------------------

def wire_code(code: int, n_bits: int) -> int:
    """The ``n_bits``-wide value sent for a canonical ``code`` (sweep index or reserved code).

    Raises ValueError for a sweep index that does not fit (the top three values are reserved).
    """
    top = (1 << n_bits) - 1
    if code == SWEEP_NONE:
        return top
    if code == CODE_START:
        return top - 1
    if code == CODE_END:
        return top - 2
    if not 0 <= code <= min(MAX_SWEEP_INDEX, top - 3):
        raise ValueError(f"sweep index {code} does not fit a {n_bits}-bit code "
                         f"(0..{min(MAX_SWEEP_INDEX, top - 3)}; the top three are reserved)")
    return code


def canonical_code(wire: int, n_bits: int) -> int:
    """Inverse of :func:`wire_code` (any ``n_bits``-wide value maps to something)."""
    top = (1 << n_bits) - 1
    if wire == top:
        return SWEEP_NONE
    if wire == top - 1:
        return CODE_START
    if wire == top - 2:
        return CODE_END
    return wire


def crc8(payload: int, n_bits: int = SERIAL_PAYLOAD_BITS, init: int = CRC8_INIT) -> int:
    """CRC-8 (x^8 + x^2 + x + 1, init 0xA5 unless given, no final xor) of the ``n_bits`` low
    bits of ``payload``, fed LSB first (the transmission order). Detects every error of up to
    3 bits and every burst of up to 8 bits in a word; random garbage passes 1 time in 256."""
    crc = init
    for i in range(n_bits):
        feedback = ((crc >> 7) & 1) ^ ((payload >> i) & 1)
        crc = (crc << 1) & 0xFF
        if feedback:
            crc ^= CRC8_POLY
    return crc


def serial_word_bits(code16: int, counter: int) -> int:
    """The 29 serial bits (bit i = i-th bit on the wire) for a 16-bit code and frame number."""
    payload = (code16 & 0xFFFF) | ((counter % (1 << SERIAL_COUNTER_BITS)) << SERIAL_CODE_BITS)
    return 1 | (payload << 1) | (crc_wire(crc8(payload)) << (1 + SERIAL_PAYLOAD_BITS))


def crc_wire(crc: int) -> int:
    """The CRC's 8 bits in wire order (MSB first): bit i of the result is sent i-th. Its own
    inverse."""
    return _REVERSE8[crc & 0xFF]


_REVERSE8 = [int(f"{i:08b}"[::-1], 2) for i in range(256)]


def skew_samples(settings: ProtocolSettings, sample_rate_hz: float) -> int:
    """The skew window in samples (at least 1)."""
    return max(1, math.ceil(settings.skew_tolerance_us * sample_rate_hz / 1e6 - 1e-9))
