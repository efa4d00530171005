"""Any other format open-ephys-python-tools reads (NWB): its ``samples`` array, sliced per
block."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offline.recording.base import TTL_DTYPE, ContinuousRecording, _stable_by_sample


def _meta(obj, key):
    """python-tools metadata: a dict in 0.1.x, a dataclass in 1.x."""
    meta = obj.metadata
    return meta[key] if isinstance(meta, dict) else getattr(meta, key)


class ToolsStream(ContinuousRecording):
    """Any other format python-tools reads (NWB): its ``samples`` (time, channel), sliced."""

    def __init__(self, directory: Path, recording, continuous, fmt: str):
        self.format = fmt
        self._recording = recording
        self._continuous = continuous
        samples = continuous.samples
        sample_numbers = getattr(continuous, "sample_numbers", None)
        first = int(sample_numbers[0]) if sample_numbers is not None and len(sample_numbers) else 0
        super().__init__(
            path=directory, stream_name=_meta(continuous, "stream_name"),
            sample_rate_hz=_meta(continuous, "sample_rate"), n_samples=samples.shape[0],
            first_sample_number=first, channel_names=_meta(continuous, "channel_names"),
            bit_volts=_meta(continuous, "bit_volts"))

    def _read_into(self, start, stop, chans, out):
        raw = np.asarray(self._continuous.samples[start:stop])[:, chans]
        self._scale_into(raw, chans, out)

    def ttl_events(self) -> np.ndarray:
        df = self._recording.events
        if df is None or len(df) == 0:
            return np.zeros(0, TTL_DTYPE)
        if "stream_name" in df:
            df = df[df["stream_name"].astype(str) == self.stream_name]
        ev = np.zeros(len(df), TTL_DTYPE)
        ev["sample_number"] = df["sample_number"].to_numpy()
        ev["line"] = df["line"].to_numpy().astype(np.int64) - 1
        ev["state"] = df["state"].to_numpy() > 0
        return _stable_by_sample(ev)
