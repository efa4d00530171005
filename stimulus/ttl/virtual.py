"""In-memory TTL output (tests, simulations): every word written, with its time."""

from __future__ import annotations

import numpy as np

from stimulus.ttl.base import TTLBackend
from stimulus.ttl.encoding import Changes, words_to_transitions


class VirtualBackend(TTLBackend):
    """Keeps ``(time_us, word)`` for every write (time = flip time + offset)."""

    name = "virtual"

    def __init__(self, settings):
        super().__init__(settings)
        self.times_us: list[float] = []
        self.words: list[int] = []
        self.word = 0
        self.closed = False

    def send(self, changes: Changes, flip_time_s: float) -> None:
        super().send(changes, flip_time_s)
        t0 = flip_time_s * 1e6
        for offset_us, word in changes:
            self.times_us.append(t0 + offset_us)
            self.words.append(int(word))
            self.word = int(word)

    def close(self) -> None:
        if self.word != 0 and self.times_us:
            self.times_us.append(self.times_us[-1] + self.settings.period_us())
            self.words.append(0)
            self.word = 0
        self.closed = True

    def transitions(self) -> np.ndarray:
        """Every line transition (``TRANSITION_DTYPE``), in time order."""
        return words_to_transitions(np.asarray(self.times_us),
                                    np.asarray(self.words, dtype=np.int64),
                                    self.settings.line_mask())
