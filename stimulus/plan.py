"""The frame plan: what every refresh of an experiment shows, before anything is drawn.

The sweep table says which conditions come in which order; the plan turns that into refreshes
at the display's refresh rate R (durations are rounded to whole refreshes, at least one for a
non-zero duration, see :func:`stimulus.params.frames`)::

    pre-experiment background | sweep 0 (stimulus, then post-sweep background) | blank | ...
    | post-experiment background

The START/END marker refreshes of the TTL protocol are added by the runner around the plan.
Built with numpy (``np.repeat``): the seed lab's 77-minute experiment (~0.9 M refreshes at
200 Hz) plans in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oe_plugin.protocol.spec import SWEEP_NONE
from stimulus.params import frames
from stimulus.sweeptable import SweepTable

PRE, STIMULUS, POST_SWEEP, BLANK, POST = 0, 1, 2, 3, 4
PHASE_NAMES = ("pre", "stimulus", "post_sweep", "blank", "post")


@dataclass(frozen=True)
class FramePlan:
    """Per refresh (shape (n_frames,) each):

    code : int32 — the sweep index on the TTL lines (SWEEP_NONE outside stimulus refreshes).
    presentation : int32 — index into ``table.order`` (-1 before the first / after the last).
    frame_in_sweep : int32 — refreshes since the start of the presentation's current phase.
    phase : uint8 — PRE, STIMULUS, POST_SWEEP, BLANK or POST.

    sweep_frames, post_frames : int32 (n_presented,) — refreshes of each presented sweep's
    stimulus and post-sweep parts (blanks: blank refreshes and 0).
    """

    code: np.ndarray
    presentation: np.ndarray
    frame_in_sweep: np.ndarray
    phase: np.ndarray
    sweep_frames: np.ndarray
    post_frames: np.ndarray
    refresh_hz: float

    @property
    def n_frames(self) -> int:
        return int(self.code.size)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.refresh_hz

    def presentation_start(self) -> np.ndarray:
        """First refresh of each presented sweep, int64 (n_presented,)."""
        starts = np.flatnonzero((self.presentation >= 0)
                                & (np.diff(self.presentation, prepend=-2) != 0))
        return starts


def build_plan(table: SweepTable, refresh_hz: float, *, preexp_s: float, postexp_s: float,
               blank_s: float = 0.0) -> FramePlan:
    """Lay out every refresh of the experiment (see the module docstring)."""
    order = table.order.astype(np.int64)
    n_pres = order.size
    sweep_n = np.zeros(n_pres, np.int64)
    post_n = np.zeros(n_pres, np.int64)
    cond_sweep = np.array([frames(c["sweep_s"], refresh_hz) for c in table.conditions])
    cond_post = np.array([frames(c["postsweep_s"], refresh_hz) for c in table.conditions])
    is_blank = order == SWEEP_NONE
    sweep_n[~is_blank] = cond_sweep[order[~is_blank]]
    post_n[~is_blank] = cond_post[order[~is_blank]]
    sweep_n[is_blank] = frames(blank_s, refresh_hz)
    n_pre = frames(preexp_s, refresh_hz)
    n_post = frames(postexp_s, refresh_hz)

    # segments: pre, then (sweep, post) per presentation, then post
    seg_len = np.concatenate([[n_pre], np.column_stack([sweep_n, post_n]).ravel(), [n_post]])
    seg_pres = np.concatenate([[-1], np.repeat(np.arange(n_pres), 2), [-1]])
    seg_phase = np.concatenate([[PRE], np.column_stack(
        [np.where(is_blank, BLANK, STIMULUS), np.full(n_pres, POST_SWEEP)]).ravel(), [POST]])
    seg_code = np.concatenate([[SWEEP_NONE], np.column_stack(
        [np.where(is_blank, SWEEP_NONE, order), np.full(n_pres, SWEEP_NONE)]).ravel(),
        [SWEEP_NONE]])
    total = int(seg_len.sum())
    starts = np.cumsum(seg_len) - seg_len
    frame_in = np.arange(total, dtype=np.int64) - np.repeat(starts, seg_len)
    return FramePlan(
        code=np.repeat(seg_code, seg_len).astype(np.int32),
        presentation=np.repeat(seg_pres, seg_len).astype(np.int32),
        frame_in_sweep=frame_in.astype(np.int32),
        phase=np.repeat(seg_phase, seg_len).astype(np.uint8),
        sweep_frames=sweep_n.astype(np.int32),
        post_frames=post_n.astype(np.int32),
        refresh_hz=float(refresh_hz),
    )
