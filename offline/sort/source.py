"""A picklable description of the input recording, reopened inside every worker process.

Chunk tasks run in other processes (a local pool or Dask workers), so they receive this small
spec instead of an open memory map, and open the recording themselves (cheap: memory maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecordingSource:
    """``kind="open-ephys"``: ``path`` + ``node``/``recording``/``stream`` selectors, read by
    :func:`offline.recording.open_recording`; ``kind="flat"``: ``path`` + ``flat`` = keyword
    arguments of :func:`offline.recording.open_flat_binary` (dtype, n_channels,
    sample_rate_hz, gain_uv, offset, ...)."""

    path: str
    kind: str = "open-ephys"
    node: object = None
    recording: int | None = None
    stream: object = None
    flat: dict = field(default_factory=dict)
    allow_truncated: bool = False
    """Read the complete frames of a file that ends mid-frame (a GUI that died) instead of
    failing."""

    def open(self):
        from offline.recording import open_flat_binary, open_recording

        if self.kind == "flat":
            return open_flat_binary(self.path, **self.flat,
                                    allow_truncated=self.allow_truncated)
        return open_recording(self.path, self.node, self.recording, self.stream,
                              allow_truncated=self.allow_truncated)

    def identity(self) -> dict:
        """What the sort file records about its input (``allow_truncated`` only when set, so
        that the work keys of earlier sorts stay valid)."""
        out = {"path": str(self.path), "kind": self.kind, "node": _plain(self.node),
               "recording": self.recording, "stream": _plain(self.stream),
               "flat": {k: _plain(v) for k, v in self.flat.items()}}
        if self.allow_truncated:
            out["allow_truncated"] = True
        return out


def _plain(value):
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    try:
        return [float(v) for v in value]
    except TypeError:
        return str(value)
