"""The protocol spec and encoder: settings checks, reserved codes, bit layouts, CRC strength."""

from __future__ import annotations

import numpy as np
import pytest

from oe_plugin.config import SettingsError, from_table
from oe_plugin.protocol import ProtocolSettings, SweepEncoder
from oe_plugin.protocol.decoder import make_decoder
from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    MAX_SWEEP_INDEX,
    SERIAL_PAYLOAD_BITS,
    SERIAL_WORD_BITS,
    SWEEP_NONE,
    canonical_code,
    crc8,
    crc_wire,
    serial_word_bits,
    wire_code,
)

PARALLEL = ProtocolSettings(scheme="parallel", frame_line=1, parity_line=2,
                            index_lines=tuple(range(3, 15)))


def test_defaults_are_valid_and_avoid_the_sync_line():
    s = ProtocolSettings()
    s.check()
    assert s.sync_line not in [line for _k, line in s.lines()]
    assert s.max_sweep_index() == MAX_SWEEP_INDEX == 65532
    assert PARALLEL.max_sweep_index() == 2 ** 12 - 4


@pytest.mark.parametrize("table, key", [
    ({"frame_line": 0}, "protocol.frame_line"),                      # the sync line
    ({"data_line": 1}, "protocol.data_line"),                        # used twice
    ({"bit_us": 200.0}, "protocol.bit_us"),                          # word too long at 200 Hz
    ({"scheme": "parallel", "index_lines": [3, 4]}, "protocol.parity_line"),
    ({"scheme": "parallel", "parity_line": 2, "index_lines": list(range(3, 21))},
     "protocol.index_lines"),
    ({"frame_line": 300}, "protocol.frame_line"),
    ({"refresh_hz": 5.0}, "protocol.refresh_hz"),
    ({"scheme": "morse"}, "protocol.scheme"),
    ({"bit_ux": 1}, "protocol.bit_ux"),
])
def test_bad_settings_name_the_key(table, key):
    with pytest.raises(SettingsError, match=key.replace(".", r"\.").replace("[", r"\[")):
        from_table(ProtocolSettings, table, "protocol")


def test_sample_rate_too_low_for_the_bit_time():
    with pytest.raises(SettingsError, match="bit_us"):
        make_decoder(ProtocolSettings(), 10000.0)


def test_settings_dict_round_trip():
    d = PARALLEL.to_dict()
    assert d["protocol_version"] == 2
    assert ProtocolSettings.from_dict(d) == PARALLEL
    d["protocol_version"] = 1  # version 1 session files (no session code) still read
    assert ProtocolSettings.from_dict(d) == PARALLEL
    d["session_code"] = 0xABCDEF  # recorded by sweepstim; not a setting
    assert ProtocolSettings.from_dict(d) == PARALLEL
    d["session_code"] = 1 << 24
    with pytest.raises(SettingsError, match="session_code"):
        ProtocolSettings.from_dict(d)
    d["session_code"] = None
    d["protocol_version"] = 3
    with pytest.raises(SettingsError, match="version"):
        ProtocolSettings.from_dict(d)


@pytest.mark.parametrize("n_bits", [1, 4, 12, 16])
def test_wire_codes_reserve_the_top_three(n_bits):
    top = (1 << n_bits) - 1
    for code in (SWEEP_NONE, CODE_START, CODE_END):
        assert canonical_code(wire_code(code, n_bits), n_bits) == code
    assert {wire_code(c, n_bits) for c in (SWEEP_NONE, CODE_START, CODE_END)} == \
        {top, top - 1, top - 2}
    if top >= 3:
        assert canonical_code(wire_code(top - 3, n_bits), n_bits) == top - 3
    with pytest.raises(ValueError):
        wire_code(top - 2 if n_bits < 16 else -1, n_bits)


def test_serial_word_layout():
    bits = serial_word_bits(0x1234, 0x15)  # the counter is taken mod 16
    assert bits & 1  # start bit
    assert (bits >> 1) & 0xFFFF == 0x1234
    assert (bits >> 17) & 0xF == 0x5
    payload = (bits >> 1) & ((1 << SERIAL_PAYLOAD_BITS) - 1)
    assert crc_wire((bits >> 21) & 0xFF) == crc8(payload)
    assert bits < 1 << SERIAL_WORD_BITS


def test_crc8_detects_all_errors_of_up_to_3_bits_and_bursts_up_to_8():
    rng = np.random.default_rng(0)
    n = 1 + SERIAL_PAYLOAD_BITS + 8
    for _ in range(200):
        word = serial_word_bits(int(rng.integers(0, 65536)), int(rng.integers(0, 16)))
        positions = range(1, n)  # everything after the start bit
        flips = [1 << p for p in positions]
        flips += [(1 << a) | (1 << b) for a in positions for b in positions if a < b][::7]
        flips += [(1 << a) | (1 << b) | (1 << c) for a, b, c in
                  rng.choice(np.arange(1, n), (40, 3)) if len({a, b, c}) == 3]
        flips += [((1 << length) - 1) << start for length in range(1, 9)
                  for start in range(1, n - length + 1)]
        for f in flips:
            bad = word ^ f
            payload = (bad >> 1) & ((1 << SERIAL_PAYLOAD_BITS) - 1)
            assert crc8(payload) != crc_wire((bad >> 21) & 0xFF)


def test_crc8_rejects_a_stuck_high_line():
    # a data line stuck high from the start bit for k bits (then low) is never a valid word
    for k in range(1, SERIAL_WORD_BITS + 1):
        bits = (1 << k) - 1
        payload = (bits >> 1) & ((1 << SERIAL_PAYLOAD_BITS) - 1)
        assert crc8(payload) != crc_wire((bits >> 21) & 0xFF)


def test_serial_encoder_sends_words_on_change_keepalive_markers_and_repeats():
    s = ProtocolSettings(word_every_frames=5)
    enc = SweepEncoder(s)
    has_word = []
    for fn, code in enumerate([CODE_START, CODE_START, 3, 3, 3, 3, 3, 3, 3, 3, 4]):
        out = enc.frame(code, fn)
        assert out[0][0] == 0.0
        has_word.append(len(out) > 1)
    assert has_word == [True, True, True, False, False, False, False, True, False, False, True]
    assert len(enc.frame(4, 10)) > 1  # the same frame number again: a repeated frame
    for n in enc.end_frame_numbers(11):
        enc.frame(CODE_END, n)
    assert not enc.word & (1 << s.frame_line)  # the frame line ends low
    enc.finish()
    assert enc.word == 0


def test_parallel_encoder_odd_parity_and_return_to_zero():
    enc = SweepEncoder(PARALLEL)
    for code in (0, 1, 5, 4092, SWEEP_NONE, CODE_START, CODE_END):
        (t0, on), (t1, off) = enc.frame(code, 0)
        assert (t0, t1) == (0.0, PARALLEL.strobe_us)
        data = on & ~(1 << PARALLEL.frame_line)
        assert bin(data).count("1") % 2 == 1  # odd parity: never all zero
        assert on & (1 << PARALLEL.frame_line)
        assert off == 0
    with pytest.raises(ValueError):
        enc.frame(4093, 0)  # 12 index lines: 4093..4095 are reserved
