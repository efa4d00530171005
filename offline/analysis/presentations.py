"""Sweep presentations: per refresh (sample number, sweep index) -> one row per shown sweep.

A *presentation* is one showing of one sweep-table row (or a blank sweep): onset and offset
time, sweep index (65535 for a blank), and the row's parameter values. Times are seconds on the
recording's clock (``sample_number / sample_rate_hz``, the same clock as spike times) and
include the display lag: a refresh whose TTL edge is at sample s is taken to be on the screen
from ``s / fs + display_lag_frames / refresh_hz`` (the stimulus computer sends the word after
the flip call returns; the image appears at the next vertical refresh).

Two ways to cut refreshes into presentations:

- **with the frame plan** (``presentation`` per refresh, from the stimulus session's frame log
  joined on frame number): exact, even for back-to-back repeats of one condition;
- **from the codes alone**: runs of equal sweep index, split into pieces of the condition's
  ``sweep_s`` when a run is longer (a shuffle can put one condition twice in a row); runs of
  "no sweep" between stimulus sweeps, after the condition's ``postsweep_s``, are blank
  sweeps of ``blank_s`` when the session has blanks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from oe_plugin.protocol.spec import SWEEP_NONE


@dataclass
class Presentations:
    """One row per presented sweep, in time order.

    onset_s, offset_s : float64 (n,) — on-screen start and end, s (display lag included).
    sweep_index : int64 (n,) — sweep-table row, 65535 for a blank sweep.
    params : dict name -> (n,) array — each sweep-table parameter (NaN / None on blanks).
    first_refresh : int64 (n,) — index of the presentation's first refresh in the experiment's
        refresh arrays.
    """

    onset_s: np.ndarray
    offset_s: np.ndarray
    sweep_index: np.ndarray
    params: dict = field(default_factory=dict)
    first_refresh: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.onset_s.size)

    @property
    def is_blank(self) -> np.ndarray:
        return self.sweep_index == SWEEP_NONE

    @property
    def duration_s(self) -> np.ndarray:
        return self.offset_s - self.onset_s

    def to_intervalset(self, sample_rate_hz: float | None = None):
        """A ``pynapple.IntervalSet`` of the presentations with the sweep parameters as
        metadata (the ``pynapple`` extra); see :func:`offline.analysis.interop.to_intervalset`
        (give the recording's ``sample_rate_hz`` to count the same spikes as our windows)."""
        from offline.analysis.interop import to_intervalset

        return to_intervalset(self, sample_rate_hz)

    def __repr__(self) -> str:
        return (f"<Presentations {len(self)} ({int(self.is_blank.sum())} blank), parameters "
                f"{list(self.params)}>")


def _param_columns(sweep_index: np.ndarray, conditions: list[dict]) -> dict:
    names: list[str] = []
    for row in conditions:
        for k in row:
            if k not in names:
                names.append(k)
    ok = (sweep_index >= 0) & (sweep_index < len(conditions))
    out = {}
    for name in names:
        col = [row.get(name) for row in conditions]
        numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                      for v in col)
        if numeric:
            vals = np.array([math.nan if v is None else float(v) for v in col])
            arr = np.full(sweep_index.size, np.nan)
        else:
            vals = np.empty(len(col), object)
            vals[:] = col
            arr = np.full(sweep_index.size, None, dtype=object)
        arr[ok] = vals[sweep_index[ok]]
        out[name] = arr
    return out


def build_presentations(refresh_sample, refresh_sweep, *, sample_rate_hz: float,
                        refresh_hz: float, conditions: list[dict],
                        refresh_presentation=None, presentation_sweep=None,
                        blank_s: float | None = None, display_lag_frames: float = 1.0
                        ) -> Presentations:
    """Cut an experiment's refreshes into presentations.

    Parameters
    ----------
    refresh_sample : int64 (n_refresh,) — TTL sample number of each refresh, increasing.
    refresh_sweep : int (n_refresh,) — sweep index shown (65535: none).
    sample_rate_hz, refresh_hz : the recording's and the display's rates.
    conditions : list of dict — the sweep table (row i = sweep index i); ``sweep_s`` and
        ``postsweep_s`` in a row are used when cutting from codes alone.
    refresh_presentation : int (n_refresh,), optional — index into the presentation order
        (-1: no presentation, or a post-sweep refresh), from the frame plan. With it,
        ``presentation_sweep`` (the order: sweep index or 65535 per presentation) is required.
    blank_s : duration of a blank sweep (None: the session has no blanks).
    display_lag_frames : refreshes between a refresh's TTL edge and its image on the screen.
    """
    samples = np.asarray(refresh_sample, np.int64)
    codes = np.asarray(refresh_sweep, np.int64)
    period = 1.0 / refresh_hz
    lag_s = display_lag_frames * period
    if refresh_presentation is not None:
        pres = np.asarray(refresh_presentation, np.int64)
        order = np.asarray(presentation_sweep, np.int64)
        valid = pres >= 0
        starts = np.flatnonzero(valid & (np.diff(pres, prepend=-2) != 0))
        ends = np.flatnonzero(valid & (np.diff(pres, append=-2) != 0))
        sweep = order[pres[starts]]
    else:
        starts, ends, sweep = _cut_codes(codes, refresh_hz, conditions, blank_s)
    onset = samples[starts] / sample_rate_hz + lag_s
    offset = samples[ends] / sample_rate_hz + period + lag_s
    return Presentations(onset, offset, sweep, _param_columns(sweep, conditions),
                         starts.astype(np.int64))


def _frames(sec, refresh_hz) -> int:
    return max(1, int(round(float(sec) * refresh_hz))) if sec else 0


def _cut_codes(codes, refresh_hz, conditions, blank_s):
    n = codes.size
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    change = np.flatnonzero(np.diff(codes)) + 1
    run_start = np.r_[0, change]
    run_end = np.r_[change, n] - 1
    run_code = codes[run_start]
    is_stim = (run_code >= 0) & (run_code < len(conditions))
    first_stim = np.flatnonzero(is_stim)
    starts, ends, sweep = [], [], []
    blank_frames = _frames(blank_s, refresh_hz) if blank_s else 0
    for r in range(run_start.size):
        s, e, c = int(run_start[r]), int(run_end[r]), int(run_code[r])
        if is_stim[r]:
            want = _frames(conditions[c].get("sweep_s"), refresh_hz)
            length = e - s + 1
            if want and length >= 1.5 * want:
                for k in range(s, e + 1, want):
                    starts.append(k)
                    ends.append(min(k + want, e + 1) - 1)
                    sweep.append(c)
            else:
                starts.append(s)
                ends.append(e)
                sweep.append(c)
        elif (c == SWEEP_NONE and blank_frames and first_stim.size
              and first_stim[0] < r < first_stim[-1]):
            prev = int(run_code[r - 1])
            post = _frames(conditions[prev].get("postsweep_s"), refresh_hz) \
                if 0 <= prev < len(conditions) else 0
            k = s + post
            while k + blank_frames <= e + 1 + blank_frames // 2:
                starts.append(k)
                ends.append(min(k + blank_frames, e + 1) - 1)
                sweep.append(SWEEP_NONE)
                k += blank_frames
    return (np.asarray(starts, np.int64), np.asarray(ends, np.int64),
            np.asarray(sweep, np.int64))
