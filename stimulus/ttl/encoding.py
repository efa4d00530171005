"""The one place sweepstim touches the sweep TTL protocol (``oe_plugin.protocol``).

The protocol module is the normative definition shared with the acquisition-side decoder;
this adapter gives the runner and the backends the few things they need from it, so that a
change of its API is absorbed here: per-refresh encoding, the end marker, the capacity check.
"""

from __future__ import annotations

from oe_plugin.protocol.encoder import TRANSITION_DTYPE, SweepEncoder, words_to_transitions
from oe_plugin.protocol.session_code import chunk_bits, code_from_session_id, start_block
from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    PROTOCOL_VERSION,
    SWEEP_NONE,
    ProtocolSettings,
)

Changes = tuple[tuple[float, int], ...]
"""One refresh's output: ``((offset_us, word), ...)``, offsets from the flip, word bit l =
GUI line l."""

__all__ = ["CODE_END", "CODE_START", "PROTOCOL_VERSION", "SWEEP_NONE", "TRANSITION_DTYPE",
           "Changes", "FrameEncoder", "ProtocolSettings", "capacity_problem",
           "session_code_for", "start_block", "words_to_transitions"]


def session_code_for(settings: ProtocolSettings, session_id: str) -> int | None:
    """The 24-bit session code a session sends in its START block, or None when the encoding
    has no room for it (parallel with fewer than 4 index lines)."""
    return code_from_session_id(session_id) if chunk_bits(settings) else None


class FrameEncoder:
    """Per-refresh encoder for one session (wraps :class:`SweepEncoder`)."""

    def __init__(self, settings: ProtocolSettings):
        self.settings = settings
        self._enc = SweepEncoder(settings)

    @property
    def marker_frames(self) -> int:
        return self.settings.marker_frames

    def frame(self, code: int, frame_number: int) -> Changes:
        """The output changes for a refresh showing ``code`` (sweep index, SWEEP_NONE,
        CODE_START or CODE_END) with protocol frame number ``frame_number``."""
        return self._enc.frame(code, frame_number)

    def end_count(self) -> int:
        """How many END marker refreshes to send now (the serial scheme may need one more
        so that the frame line ends low)."""
        return len(self._enc.end_frame_numbers(0))

    def finish(self) -> Changes:
        """All protocol lines low."""
        return self._enc.finish()


def capacity_problem(n_conditions: int, settings: ProtocolSettings) -> str | None:
    """Why a table of ``n_conditions`` does not fit the encoding, or None."""
    top = settings.max_sweep_index()
    if n_conditions - 1 > top:
        how = (f"{len(settings.index_lines)} index lines" if settings.scheme == "parallel"
               else "the 16-bit serial word")
        return (f"the sweep table has {n_conditions} conditions (sweep indices 0.."
                f"{n_conditions - 1}) but {how} carry at most index {top}")
    return None
