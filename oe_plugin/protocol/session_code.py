"""The session code: which stimulus session a stretch of TTLs belongs to (protocol version 2).

A stimulus session sends a 24-bit **session code** (derived from its session id, recorded in the
session file as ``ttl_protocol.session_code``) inside its START markers. The frames of the START
*block* are::

    START x marker_frames, then for each chunk c:  c, START

so every chunk sits between two START refreshes. A chunk is an ordinary refresh code (a value
``0 .. 2^b - 1``, never a reserved code) carried and protected like any sweep word (serial: CRC-8
and frame counter per word; parallel: odd parity and counter lines). ``b`` =
:func:`chunk_bits` (serial 14; parallel ``min(14, N - 2)`` for N index lines, at least 2).

The 32-bit *block* = the code (bits 0..23) and a CRC-8 of it (bits 24..31, polynomial
x^8 + x^2 + x + 1, init :data:`CODE_CRC_INIT`) is cut into ``k = ceil(32 / b)`` chunks, LSB
first (unused high bits of the last chunk are 0 and checked), and sent **twice** (``2 k``
chunks). A copy is valid when all its chunks arrived, the spare bits are 0 and the CRC matches.
The code is the value of the valid copies if there is at least one and they agree; else it is
reported as corrupted (``None``), never guessed.

Version 1 recordings have no chunks: the refresh after the START markers is followed by a
non-START refresh. That is how the decoder tells "no code sent" (status ``absent``) from "code
sent but unreadable" (``corrupt``): a refresh between two START refreshes exists only in a
version 2 block.
"""

from __future__ import annotations

import hashlib
import math

from oe_plugin.protocol.spec import CODE_START, ProtocolSettings, crc8

SESSION_CODE_BITS = 24
CODE_CRC_INIT = 0x3C
"""CRC-8 initial value of the session-code block (differs from the sweep words' 0xA5)."""
BLOCK_BITS = SESSION_CODE_BITS + 8
COPIES = 2
MIN_CHUNK_BITS = 2
MAX_CHUNK_BITS = 14

STATUS_OK = "ok"
STATUS_ABSENT = "absent"     # no chunk in the START block: a version 1 stimulus
STATUS_CORRUPT = "corrupt"   # chunks were sent but no copy could be trusted


def code_from_session_id(session_id: str) -> int:
    """The 24-bit session code of a session id (the first 3 bytes of its SHA-256)."""
    digest = hashlib.sha256(str(session_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:3], "little")


def chunk_bits(settings: ProtocolSettings) -> int:
    """Bits per chunk for this encoding (0: it cannot carry a session code)."""
    n = 16 if settings.scheme == "serial" else len(settings.index_lines)
    b = min(MAX_CHUNK_BITS, n - 2)
    return b if b >= MIN_CHUNK_BITS else 0


def chunks_per_copy(settings: ProtocolSettings) -> int:
    b = chunk_bits(settings)
    return math.ceil(BLOCK_BITS / b) if b else 0


def block_value(code: int) -> int:
    """The 32-bit block for a 24-bit ``code``: code | CRC-8 << 24."""
    if not 0 <= int(code) < (1 << SESSION_CODE_BITS):
        raise ValueError(f"session code must be 0..2^24-1, got {code}")
    code = int(code)
    crc = _crc(code)
    return code | (crc << SESSION_CODE_BITS)


def _crc(code: int) -> int:
    return crc8(code, SESSION_CODE_BITS, CODE_CRC_INIT)


def code_chunks(settings: ProtocolSettings, code: int) -> list[int]:
    """The ``2 k`` chunk values sent for ``code`` (both copies). Raises ValueError when the
    encoding cannot carry a code (parallel with fewer than 4 index lines)."""
    b = chunk_bits(settings)
    if not b:
        raise ValueError("a parallel encoding with fewer than 4 index lines cannot carry the "
                         "session code")
    value = block_value(code)
    mask = (1 << b) - 1
    one = [(value >> (i * b)) & mask for i in range(chunks_per_copy(settings))]
    return one * COPIES


def start_block(settings: ProtocolSettings, code: int | None) -> list[int]:
    """Codes of the START block: ``marker_frames`` STARTs, then (chunk, START) per chunk.
    ``code`` None (or an encoding without room for it): the version 1 block, STARTs only."""
    out = [CODE_START] * settings.marker_frames
    if code is None or not chunk_bits(settings):
        return out
    for c in code_chunks(settings, code):
        out += [c, CODE_START]
    return out


def parse_chunks(settings: ProtocolSettings, chunks: list) -> tuple[int | None, str]:
    """The code from the chunks received in one START block (None = a chunk that arrived
    corrupted), in order. Returns ``(code, status)``; code is None unless status is ``ok``."""
    if not chunks:
        return None, STATUS_ABSENT
    b = chunk_bits(settings)
    k = chunks_per_copy(settings)
    if not b or len(chunks) < k:
        return None, STATUS_CORRUPT
    # copy 1 from the start, copy 2 from the end: a lost or extra chunk spoils one copy only
    copies = [chunks[:k], chunks[-k:]] if len(chunks) >= 2 * k - 1 else [chunks[:k]]
    valid = set()
    for copy in copies:
        if any(c is None or not 0 <= c < (1 << b) for c in copy):
            continue
        value = 0
        for i, c in enumerate(copy):
            value |= int(c) << (i * b)
        if value >> BLOCK_BITS:
            continue  # spare bits must be 0
        code = value & ((1 << SESSION_CODE_BITS) - 1)
        if (value >> SESSION_CODE_BITS) == _crc(code):
            valid.add(code)
    if len(valid) == 1:
        return valid.pop(), STATUS_OK
    return None, STATUS_CORRUPT


__all__ = ["BLOCK_BITS", "CODE_CRC_INIT", "COPIES", "SESSION_CODE_BITS", "STATUS_ABSENT",
           "STATUS_CORRUPT", "STATUS_OK", "block_value", "chunk_bits", "chunks_per_copy",
           "code_chunks", "code_from_session_id", "parse_chunks", "start_block"]
