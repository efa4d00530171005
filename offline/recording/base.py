"""What every stream offers: :class:`ContinuousRecording` (µV blocks, TTL events), the TTL
event dtypes and :class:`RecordingError` (conventions: :mod:`offline.recording`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

TTL_DTYPE = np.dtype([("sample_number", "<i8"), ("line", "<i2"), ("state", "?")])
"""TTL events: absolute sample number, 0-based line, new state."""

TTL_WORDS_DTYPE = np.dtype(TTL_DTYPE.descr + [("full_words", "<u8")])
"""TTL events of a Binary recording that stored ``full_words.npy`` (all lines after the event)."""


SCALE_TILE = 256
"""Samples per tile when raw integers are scaled and transposed (:meth:`ContinuousRecording.
_scale_into`): 256 frames of 384 int16 channels are 192 kB."""


class RecordingError(Exception):
    """A recording cannot be found, selected or read; the message says what exists instead."""


class ContinuousRecording:
    """One continuous stream of a recording, read in blocks.

    Attributes
    ----------
    path : Path                 the folder (or file) the samples come from
    format : str                ``"binary"``, ``"open-ephys"``, ``"nwb"`` or ``"flat-binary"``
    stream_name : str
    sample_rate_hz : float
    n_channels, n_samples : int
    first_sample_number : int   sample number of index 0 (GUI counter since acquisition start)
    channel_names : tuple[str, ...]
    bit_volts : np.ndarray      float64 (n_channels,): µV per raw integer unit
    """

    format = "?"

    def __init__(self, *, path, stream_name, sample_rate_hz, n_samples, first_sample_number,
                 channel_names, bit_volts):
        self.path = Path(path)
        self.stream_name = str(stream_name)
        self.sample_rate_hz = float(sample_rate_hz)
        self.channel_names = tuple(str(c) for c in channel_names)
        self.n_channels = len(self.channel_names)
        self.n_samples = int(n_samples)
        self.first_sample_number = int(first_sample_number)
        self.bit_volts = np.asarray(bit_volts, dtype=np.float64).reshape(-1)
        if self.bit_volts.size == 1 and self.n_channels > 1:
            self.bit_volts = np.full(self.n_channels, self.bit_volts[0])
        if self.bit_volts.size != self.n_channels:
            raise RecordingError(f"{self.path}: {self.bit_volts.size} bit_volts values for "
                                 f"{self.n_channels} channels")
        if not self.sample_rate_hz > 0:
            raise RecordingError(f"{self.path}: sample rate {sample_rate_hz!r} is not positive")

    # -- samples --------------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    def channel_indices(self, channels=None) -> np.ndarray:
        """Channel selection (None, indices or names) -> int64 indices; errors list what exists."""
        if channels is None:
            return np.arange(self.n_channels)
        if isinstance(channels, (str, int, np.integer)):
            channels = [channels]
        out = []
        for ch in channels:
            if isinstance(ch, str):
                if ch not in self.channel_names:
                    raise RecordingError(f"no channel named {ch!r}; channels: "
                                         f"{', '.join(self.channel_names)}")
                out.append(self.channel_names.index(ch))
            else:
                i = int(ch)
                if not 0 <= i < self.n_channels:
                    raise RecordingError(f"channel index {i} out of range 0..{self.n_channels - 1}")
                out.append(i)
        return np.asarray(out, dtype=np.int64)

    def read_uv(self, start_index: int, stop_index: int, channels=None) -> np.ndarray:
        """Samples ``[start_index, stop_index)`` in µV.

        Returns float32 ``(n_selected_channels, stop_index - start_index)``, C-contiguous, a new
        array (the caller may write into it). ``channels``: None (all), indices or names.
        """
        start, stop = int(start_index), int(stop_index)
        if not 0 <= start <= stop <= self.n_samples:
            raise RecordingError(f"sample range [{start}, {stop}) outside [0, {self.n_samples})")
        chans = self.channel_indices(channels)
        out = np.empty((chans.size, stop - start), dtype=np.float32)
        if stop > start and chans.size:
            self._read_into(start, stop, chans, out)
        return out

    def read_uv_rows(self, start_index: int, stop_index: int) -> np.ndarray:
        """Samples ``[start_index, stop_index)`` of all channels in µV, **sample-major**: float32
        ``(n, n_channels)``, C-contiguous. Open Ephys Binary stores data this way, so this skips
        the transpose of :meth:`read_uv` (the detection kernel reads either layout)."""
        start, stop = int(start_index), int(stop_index)
        if not 0 <= start <= stop <= self.n_samples:
            raise RecordingError(f"sample range [{start}, {stop}) outside [0, {self.n_samples})")
        out = np.empty((stop - start, self.n_channels), dtype=np.float32)
        if stop > start:
            self._read_rows_into(start, stop, out)
        return out

    def _read_rows_into(self, start: int, stop: int, out: np.ndarray) -> None:
        out[...] = self.read_uv(start, stop).T

    def iter_chunks_uv(self, chunk_samples: int,
                       channels=None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_index, block_uv)`` over the whole stream, ``chunk_samples`` at a time."""
        if chunk_samples <= 0:
            raise ValueError("chunk_samples must be positive")
        for start in range(0, self.n_samples, chunk_samples):
            yield start, self.read_uv(start, min(start + chunk_samples, self.n_samples), channels)

    def _read_into(self, start: int, stop: int, chans: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _scale_into(self, raw_tc: np.ndarray, chans: np.ndarray, out: np.ndarray) -> None:
        """raw (time, channel) integers -> out (channel, time) float32 µV, scaled in float64.

        In tiles of :data:`SCALE_TILE` samples: the whole block transposed at once walks the
        input a sample frame per element (~12 ns per sample at 384 channels); a tile's frames
        stay in cache (~3 ns). Same arithmetic, same bits. (A numba kernel was as fast but
        hung under the native host runner, whose driver reads the recording: the reader stays
        plain numpy.)"""
        gain = self.bit_volts[chans][:, None]
        for t0 in range(0, raw_tc.shape[0], SCALE_TILE):
            t1 = t0 + SCALE_TILE
            np.multiply(raw_tc[t0:t1].T, gain, out=out[:, t0:t1], casting="unsafe")

    # -- events ---------------------------------------------------------------------------------
    def ttl_events(self) -> np.ndarray:
        """TTL events of this stream: :data:`TTL_DTYPE` (or :data:`TTL_WORDS_DTYPE` when the
        recording stored full words), sorted by sample number, file order kept for ties."""
        return np.zeros(0, TTL_DTYPE)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.format} {self.path} stream={self.stream_name!r} "
                f"{self.n_channels} ch × {self.n_samples} samples @ {self.sample_rate_hz:g} Hz, "
                f"first sample {self.first_sample_number}>")


def _stable_by_sample(events: np.ndarray) -> np.ndarray:
    return events[np.argsort(events["sample_number"], kind="stable")]
