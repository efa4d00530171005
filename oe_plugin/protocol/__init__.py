"""The sweep TTL protocol: one spec for the stimulus encoder and the acquisition decoder.

- :mod:`~oe_plugin.protocol.spec` — version, reserved codes, bit layouts, flags, settings;
- :mod:`~oe_plugin.protocol.encoder` — refresh codes -> timed output words (stimulus side);
- :mod:`~oe_plugin.protocol.decoder` — per-line edges -> one record per refresh (online and
  offline, the same classes);
- :mod:`~oe_plugin.protocol.ttl_sim` — a hardware-realistic TTL simulator for tests;
- :mod:`~oe_plugin.protocol.oe_binary_events` — TTL events into an Open Ephys Binary recording;
- :mod:`~oe_plugin.protocol.verify` — decoded frames against what was sent (tests, rig checks).

docs/ttl-protocol.md has the timing diagrams, wiring tables and error reporting.
"""

from oe_plugin.protocol.decoder import DECODED_DTYPE, decode_events, make_decoder
from oe_plugin.protocol.encoder import SweepEncoder, encode_session, session_codes
from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    ERROR_MASK,
    MAX_SWEEP_INDEX,
    PROTOCOL_VERSION,
    SWEEP_NONE,
    SWEEP_UNKNOWN,
    ProtocolSettings,
    flag_names,
)

__all__ = [
    "CODE_END", "CODE_START", "DECODED_DTYPE", "ERROR_MASK", "MAX_SWEEP_INDEX",
    "PROTOCOL_VERSION", "SWEEP_NONE", "SWEEP_UNKNOWN", "ProtocolSettings", "SweepEncoder",
    "decode_events", "encode_session", "flag_names", "make_decoder", "session_codes",
]
