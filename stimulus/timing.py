"""Frame timing: flip timestamps, dropped-frame detection, refresh-rate measurement.

The runner timestamps the return of every flip with one clock (``time.perf_counter`` by
default; tests inject a fake). An interval longer than ``drop_threshold`` (1.2) periods means
at least one refresh passed without a new image: the frame is marked *dropped* and the frame
number (the TTL protocol's refresh count) skips the refreshes that were missed,
``round(interval / period) - 1``, so the acquisition side sees the same gap. The plan itself
is not skipped: every planned image is shown once, and the experiment ends that much later
(dimstim's behaviour; the frame log says exactly when each image was up).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FrameTimer:
    """Turns flip times into frame numbers and dropped-frame flags.

    period_s : nominal refresh period, s.
    drop_threshold : intervals above this many periods are drops.
    """

    period_s: float
    drop_threshold: float = 1.2
    frame_number: int = -1
    last_time: float | None = None
    n_dropped: int = 0
    n_missed: int = 0

    def tick(self, t: float) -> tuple[int, bool, float]:
        """Record a flip at time ``t`` (s). Returns (frame_number, dropped, interval_s);
        the first flip is frame 0 with interval NaN."""
        if self.last_time is None:
            self.frame_number = 0
            self.last_time = t
            return 0, False, float("nan")
        interval = t - self.last_time
        self.last_time = t
        dropped = interval > self.drop_threshold * self.period_s
        missed = max(1, int(round(interval / self.period_s))) - 1 if dropped else 0
        if dropped:
            self.n_dropped += 1
            self.n_missed += missed
        self.frame_number += 1 + missed
        return self.frame_number, dropped, interval


@dataclass
class FrameLog:
    """Per-refresh record of what was shown, appended by the runner (growing arrays).

    Columns (all shape (n,)): flip_time_s float64 (clock after the flip), interval_s float64,
    frame_number int64 (as sent on the TTL lines), code int32 (sent code), plan_index int64
    (refresh of the plan shown; -1 for marker and pause refreshes), dropped bool.
    """

    capacity: int = 1024
    n: int = 0
    cols: dict = field(default_factory=dict)

    DTYPES = {"flip_time_s": np.float64, "interval_s": np.float64, "frame_number": np.int64,
              "code": np.int32, "plan_index": np.int64, "dropped": np.bool_}

    def __post_init__(self):
        self.cols = {k: np.zeros(self.capacity, dt) for k, dt in self.DTYPES.items()}

    def append(self, flip_time_s: float, interval_s: float, frame_number: int, code: int,
               plan_index: int, dropped: bool) -> None:
        if self.n == self.capacity:
            self.capacity *= 2
            for k in self.cols:
                self.cols[k] = np.resize(self.cols[k], self.capacity)
        i = self.n
        c = self.cols
        c["flip_time_s"][i] = flip_time_s
        c["interval_s"][i] = interval_s
        c["frame_number"][i] = frame_number
        c["code"][i] = code
        c["plan_index"][i] = plan_index
        c["dropped"][i] = dropped
        self.n += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """The filled part of every column (copies)."""
        return {k: v[: self.n].copy() for k, v in self.cols.items()}


class FakeClock:
    """A clock for tests: returns ``t`` and advances it by the next of ``steps`` (or
    ``period``) on every flip."""

    def __init__(self, period_s: float, steps=None, t0: float = 100.0):
        self.t = t0
        self.period_s = period_s
        self._steps = list(steps or [])

    def advance(self) -> None:
        self.t += self._steps.pop(0) if self._steps else self.period_s

    def __call__(self) -> float:
        return self.t


def measure_refresh(flip: Callable[[], None], clock: Callable[[], float] = time.perf_counter,
                    n_frames: int = 200) -> tuple[float, np.ndarray]:
    """Flip ``n_frames`` times and estimate the refresh rate (Hz) from the median interval.

    Returns (rate_hz, intervals_s). The median ignores the odd late flip. A display that
    does not wait for vsync (offscreen, Xvfb) gives an absurd rate, which the caller refuses.
    """
    times = np.empty(n_frames + 1)
    flip()
    times[0] = clock()
    for i in range(1, n_frames + 1):
        flip()
        times[i] = clock()
    intervals = np.diff(times)
    med = float(np.median(intervals))
    return (1.0 / med if med > 0 else float("inf")), intervals
