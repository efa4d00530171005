"""The stream's sample numbers as a module sees them: its own count, re-based on TTL events.

``process()`` is not told a block's sample number: a module counts samples from
``start_acquisition()``. That equals the GUI's sample numbers (and the Record Node's
``sample_numbers.npy``) for sources that restart at 0 with every acquisition (acquisition
boards). A source that does not — the File Reader carries its playback position over from one
acquisition to the next — is ``offset`` samples ahead of the count. ``handle_ttl_event`` gets
*absolute* sample numbers, and the GUI delivers a block's events before ``process()`` of that
block, so each event bounds the offset: with ``count`` the samples before the block and ``n`` its
length, ``0 <= sample_number - (count + offset) < n``. :class:`SampleClock` intersects these
bounds over the acquisition:

- while ``0`` is inside them (every restart-at-0 source), ``offset`` stays 0;
- otherwise ``offset`` is the upper bound, the value for which the earliest event seen in any
  block sits at that block's first sample; it is exact once an event has fallen on a block's
  first sample or the bounds have met (``uncertainty == 0``), which TTL edges of a 200 Hz
  stimulus do within a second or so;
- bounds that contradict each other (the source jumped) start again from the latest block.

Without TTL events nothing can be learnt and the count is used as it is. Plain Python on
preallocated ints: safe on the GUI's GIL-less audio thread.
"""

from __future__ import annotations


class SampleClock:
    """Absolute sample number of the current block's first sample = ``count + offset``."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """At ``start_acquisition()``."""
        self.count = 0          # samples before the current block (the module's own count)
        self.offset = 0
        self.lo: int | None = None
        self.hi: int | None = None
        self.rebases = 0        # times the offset changed
        self.jumps = 0          # times the bounds contradicted each other
        self._blk_min: int | None = None
        self._blk_max: int | None = None
        self._in_block = False

    def on_event(self, sample_number: int) -> None:
        """An absolute sample number of an event of the block about to be processed."""
        d = int(sample_number) - self.count
        if self._blk_min is None or d < self._blk_min:
            self._blk_min = d
        if self._blk_max is None or d > self._blk_max:
            self._blk_max = d

    def begin_block(self, n: int) -> int:
        """Start of ``process()`` of an ``n``-sample block: fold its events in; returns the
        block's first absolute sample number."""
        if self._blk_min is not None:
            lo = self._blk_max - int(n) + 1
            hi = self._blk_min
            if self.lo is not None and (lo > self.hi or hi < self.lo):
                self.jumps += 1
                self.lo, self.hi = lo, hi
            else:
                self.lo = lo if self.lo is None else max(self.lo, lo)
                self.hi = hi if self.hi is None else min(self.hi, hi)
            new = 0 if self.lo <= 0 <= self.hi else self.hi
            if new != self.offset:
                self.offset = new
                self.rebases += 1
            self._blk_min = self._blk_max = None
        first = self.count + self.offset
        self.count += int(n)
        return first

    @property
    def now(self) -> int:
        """Absolute sample number just after the last block begun."""
        return self.count + self.offset

    def describe(self) -> dict:
        return {"sample_offset": self.offset, "offset_bounds": [self.lo, self.hi],
                "rebases": self.rebases, "jumps": self.jumps}
