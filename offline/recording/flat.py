"""A raw flat binary file (Phy/Kilosort ``.dat``): interleaved samples, a gain and an offset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offline.recording.base import ContinuousRecording, RecordingError


class FlatBinary(ContinuousRecording):
    """Raw interleaved samples ``(n_samples, n_channels)`` in one file (Phy/Kilosort ``.dat``)."""

    format = "flat-binary"

    def __init__(self, path, dtype, n_channels, sample_rate_hz, gain_uv, offset=0,
                 offset_uv=0.0, first_sample_number=0, channel_names=None, allow_truncated=False):
        path = Path(path)
        if not path.is_file():
            raise RecordingError(f"{path}: no such file")
        dtype = np.dtype(dtype)
        n_channels = int(n_channels)
        if n_channels <= 0:
            raise RecordingError(f"{path}: n_channels must be positive, got {n_channels}")
        size = path.stat().st_size - int(offset)
        frame = dtype.itemsize * n_channels
        if size < 0:
            raise RecordingError(f"{path}: shorter than the {offset}-byte offset")
        if size % frame and not allow_truncated:
            raise RecordingError(f"{path}: truncated — {size} bytes after the offset is not a "
                                 f"whole number of {n_channels}-channel {dtype} frames; pass "
                                 "--allow-truncated to read the complete frames")
        n = size // frame
        self._samples = (np.memmap(path, mode="r", dtype=dtype, offset=int(offset),
                                   shape=(n, n_channels))
                         if n else np.zeros((0, n_channels), dtype))
        self._offset_uv = float(offset_uv)
        super().__init__(
            path=path, stream_name=path.stem, sample_rate_hz=sample_rate_hz, n_samples=n,
            first_sample_number=first_sample_number,
            channel_names=channel_names or [f"CH{i + 1}" for i in range(n_channels)],
            bit_volts=gain_uv)

    def _read_into(self, start, stop, chans, out):
        self._scale_into(self._samples[start:stop][:, chans], chans, out)
        if self._offset_uv:
            out += np.float32(self._offset_uv)


def open_flat_binary(path, dtype, n_channels, sample_rate_hz, gain_uv, offset=0, *,
                     offset_uv=0.0, first_sample_number=0, channel_names=None,
                     allow_truncated=False) -> FlatBinary:
    """A raw flat binary file: ``µV = raw * gain_uv + offset_uv``.

    ``dtype``: sample type (e.g. ``"int16"``); ``gain_uv``: µV per unit, scalar or per channel;
    ``offset``: bytes to skip at the start of the file (a header), as Phy's ``params.py``.
    """
    return FlatBinary(path, dtype, n_channels, sample_rate_hz, gain_uv, offset, offset_uv,
                      first_sample_number, channel_names, allow_truncated)
