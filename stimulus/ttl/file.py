"""TTL output to a file: a text log of line transitions (for dry runs and offline checks).

Format (UTF-8, tab-separated, one transition per line, after ``#`` header lines that hold
the protocol settings as JSON)::

    # sweepstim ttl log v1
    # protocol {"scheme": "serial", ...}
    time_us	line	level
    100000.000	1	1
    100300.000	2	1

``time_us`` is the flip clock (s × 1e6) plus the protocol offset; ``line`` is the GUI's 0-based
TTL line. :func:`read_transition_log` reads it back as ``TRANSITION_DTYPE``, which
``oe_plugin.protocol.ttl_sim.sample_transitions`` turns into the events the GUI would record.
The file is flushed every second, so a crash loses at most the last second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from stimulus.ttl.base import TTLBackend, TTLError
from stimulus.ttl.encoding import TRANSITION_DTYPE, Changes

HEADER = "# sweepstim ttl log v1"


class FileBackend(TTLBackend):
    name = "file"

    def __init__(self, settings, path: str | Path):
        super().__init__(settings)
        self.path = Path(path)
        self._f = None
        self.word = 0
        self._last_flush = 0.0
        self._lines = [line for _k, line in settings.lines()]

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise TTLError(f"cannot write the TTL log {self.path}: {exc}") from None
        self._f.write(f"{HEADER}\n# protocol {json.dumps(self.settings.to_dict())}\n")
        self._f.write("time_us\tline\tlevel\n")
        self._last_t = None

    def send(self, changes: Changes, flip_time_s: float) -> None:
        super().send(changes, flip_time_s)
        t0 = flip_time_s * 1e6
        out = []
        for offset_us, word in changes:
            diff = self.word ^ int(word)
            for line in self._lines:
                if (diff >> line) & 1:
                    out.append(f"{t0 + offset_us:.3f}\t{line}\t{(int(word) >> line) & 1}\n")
            self.word = int(word)
        self._f.write("".join(out))
        now = time.monotonic()
        if now - self._last_flush > 1.0:
            self._f.flush()
            self._last_flush = now
        self._last_t = t0

    def close(self) -> None:
        if self._f is None:
            return
        if self.word and self._last_t is not None:
            self.send(((self.settings.period_us(), 0),), self._last_t / 1e6)
        self._f.close()
        self._f = None

    def describe(self) -> dict:
        return {"backend": self.name, "path": str(self.path)}


def read_transition_log(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a TTL log: (transitions as TRANSITION_DTYPE (n,), protocol settings dict)."""
    protocol: dict = {}
    rows = []
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
        if first != HEADER:
            raise ValueError(f"{path}: not a sweepstim TTL log")
        for line in f:
            if line.startswith("# protocol "):
                protocol = json.loads(line[len("# protocol "):])
            elif line.startswith("#") or line.startswith("time_us"):
                continue
            elif line.strip():
                t, ln, lv = line.split("\t")
                rows.append((float(t), int(ln), lv.strip() == "1"))
    out = np.array(rows, dtype=TRANSITION_DTYPE) if rows else np.zeros(0, TRANSITION_DTYPE)
    return out, protocol
