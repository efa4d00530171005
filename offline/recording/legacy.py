"""The legacy Open Ephys format: one ``.continuous`` file per channel (a 1024-byte header, then
records of 1024 big-endian int16 samples), memory-mapped record by record; TTL events from the
``.events`` file."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from offline.recording.base import TTL_DTYPE, ContinuousRecording, RecordingError, _stable_by_sample

_LEGACY_HEADER_BYTES = 1024
_LEGACY_RECORD = np.dtype(
    [("sample_number", "<i8"), ("n_samples", "<u2"), ("recording", "<u2"),
     ("samples", ">i2", (1024,)), ("marker", "u1", (10,))]
)
_LEGACY_MARKER = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 255], dtype=np.uint8)
_LEGACY_EVENT = np.dtype(
    [("sample_number", "<i8"), ("position", "<i2"), ("type", "u1"), ("processor", "u1"),
     ("state", "u1"), ("channel", "u1"), ("recording", "<u2")]
)
_LEGACY_TTL_TYPE = 3


class LegacyStream(ContinuousRecording):
    """A stream of the legacy Open Ephys format (one ``.continuous`` file per channel, records of
    1024 big-endian int16 samples), memory-mapped record by record."""

    format = "open-ephys"

    def __init__(self, directory: Path, info: dict, files: Sequence[str], recording_index: int,
                 events_file: Path | None, allow_truncated=False):
        self._recording_index = int(recording_index)
        self._events_file = events_file
        self._maps = []
        valid = None
        for name in files:
            path = Path(directory) / name
            if not path.is_file():
                raise RecordingError(f"{path}: missing (listed in the structure file)")
            size = path.stat().st_size - _LEGACY_HEADER_BYTES
            extra = size % _LEGACY_RECORD.itemsize if size > 0 else 0
            if size < 0 or (extra and not allow_truncated):
                raise RecordingError(
                    f"{path}: truncated — {max(size, 0)} data bytes is not a whole number of "
                    f"{_LEGACY_RECORD.itemsize}-byte records ({extra} bytes left over); pass "
                    "--allow-truncated to read the complete records")
            n_rec = size // _LEGACY_RECORD.itemsize
            mm = np.memmap(path, mode="r", dtype=_LEGACY_RECORD, offset=_LEGACY_HEADER_BYTES,
                           shape=(n_rec,)) if n_rec else np.zeros(0, _LEGACY_RECORD)
            if valid is None:
                valid = np.flatnonzero(mm["recording"] == self._recording_index)
                counts = mm["n_samples"][valid].astype(np.int64)
                first_record = mm[valid[0]] if valid.size else None
                if valid.size and not (
                    np.array_equal(first_record["marker"], _LEGACY_MARKER)
                    and np.array_equal(mm[valid[-1]]["marker"], _LEGACY_MARKER)
                ):
                    raise RecordingError(f"{path}: record markers missing — corrupt file?")
                if np.any(counts > 1024):
                    raise RecordingError(f"{path}: a record claims more than 1024 samples")
            elif mm.shape[0] <= (valid[-1] if valid.size else -1):
                raise RecordingError(f"{path}: {mm.shape[0]} records, fewer than the first "
                                     f"channel's (truncated?)")
            self._maps.append(mm)
        if valid is None:
            raise RecordingError(f"{directory}: stream {info.get('stream_name')!r} has no channels")
        self._valid = valid
        self._counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._full = bool(np.all(counts == 1024))
        super().__init__(
            path=directory, stream_name=info.get("stream_name", "?"),
            sample_rate_hz=info["sample_rate"], n_samples=int(self._starts[-1]),
            first_sample_number=int(first_record["sample_number"]) if valid.size else 0,
            channel_names=info["channel_names"], bit_volts=info["bit_volts"])

    def _read_into(self, start, stop, chans, out):
        r0 = int(np.searchsorted(self._starts, start, side="right")) - 1
        r1 = int(np.searchsorted(self._starts, stop, side="left"))
        rows = self._valid[r0:r1]
        lo, hi = start - int(self._starts[r0]), stop - int(self._starts[r0])
        for k, ch in enumerate(chans):
            block = self._maps[ch]["samples"][rows]  # (records, 1024) big-endian copy
            if self._full:
                flat = block.reshape(-1)
            else:
                counts = self._counts[r0:r1]
                flat = np.concatenate([b[:n] for b, n in zip(block, counts, strict=True)])
            np.multiply(flat[lo:hi], self.bit_volts[ch], out=out[k], casting="unsafe")

    def ttl_events(self) -> np.ndarray:
        if self._events_file is None or not self._events_file.is_file():
            return np.zeros(0, TTL_DTYPE)
        size = self._events_file.stat().st_size - _LEGACY_HEADER_BYTES
        n = max(size, 0) // _LEGACY_EVENT.itemsize
        raw = np.fromfile(self._events_file, dtype=_LEGACY_EVENT, count=n,
                          offset=_LEGACY_HEADER_BYTES)
        raw = raw[(raw["recording"] == self._recording_index) & (raw["type"] == _LEGACY_TTL_TYPE)]
        ev = np.zeros(raw.size, TTL_DTYPE)
        ev["sample_number"] = raw["sample_number"]
        ev["line"] = raw["channel"]
        ev["state"] = raw["state"] > 0
        return _stable_by_sample(ev)


def _legacy_streams(rec) -> list[tuple[dict, list[str], Path | None]]:
    files, stream_of_file, stream_ids, infos = rec.find_continuous_files()
    root = ElementTree.parse(rec.experiment_info).getroot()
    events = {}
    for r_index, child in enumerate(root):
        if r_index == rec.recording_index:
            for s_index, stream in enumerate(child):
                for item in stream:
                    if item.tag == "EVENTS":
                        events[s_index] = Path(rec.directory) / item.get("filename")
    out = []
    for s in stream_ids:
        own = [f for f, k in zip(files, stream_of_file, strict=True) if k == s]
        out.append((infos[s], own, events.get(s)))
    return out
