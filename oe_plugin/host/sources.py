"""Data sources a host session plays: synthetic noise with known spikes, or a real recording.

A source has ``sample_rate_hz``, ``n_channels``, ``n_samples``, ``first_sample_number`` (the
sample number of index 0), ``read_uv(start_index, stop_index) -> float32 (n_channels, n)``,
``ttl_events()`` (structured: ``sample_number`` int64 absolute, ``line`` 0-based, ``state``),
``spike_events()`` (upstream Spike Detector events, :class:`~.simulator.SpikeEvent`) and a
JSON-able ``to_spec()`` that :func:`source_from_spec` rebuilds (the native runner's job file).

Reading is block-partition independent: ``read_uv`` over any cut of ``[0, n_samples)`` yields
the same samples, so sessions with different block policies see identical data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from oe_plugin.waveforms import biphasic_spike

from .simulator import EVENT_DTYPE, SpikeEvent

SYNTH_CHUNK_SAMPLES = 1 << 14
SPIKE_PRE_MS = 0.5
SPIKE_POST_MS = 1.0


class InjectedSpike(NamedTuple):
    """A spike added to synthetic data: trough of ``amplitude_uv`` at ``sample_index`` on
    ``channel`` (negative amplitude: a negative trough, as extracellular spikes)."""

    sample_index: int
    channel: int
    amplitude_uv: float = -100.0


def spike_waveform(sample_rate_hz: float) -> tuple[np.ndarray, int]:
    """Unit spike shape (trough -1 at offset 0, rebound ~+0.35 at 0.45 ms) and its pre-samples.

    Returns ``(waveform float32 (n,), n_pre)``: the trough is ``waveform[n_pre]``.
    """
    n_pre = int(round(SPIKE_PRE_MS * 1e-3 * sample_rate_hz))
    n_post = int(round(SPIKE_POST_MS * 1e-3 * sample_rate_hz))
    t_ms = (np.arange(-n_pre, n_post + 1) / sample_rate_hz) * 1e3
    wave = biphasic_spike(t_ms, 0.12 / np.sqrt(2.0), 0.35, 0.45, 0.25 / np.sqrt(2.0))
    return (wave / -wave[n_pre]).astype(np.float32), n_pre


@dataclass(frozen=True)
class SyntheticSource:
    """Gaussian noise (``noise_uv`` RMS) plus injected spikes and TTL events.

    ``spikes``: :class:`InjectedSpike` (or ``(sample_index, channel, amplitude_uv)``) — the
    waveform of :func:`spike_waveform` scaled by ``-amplitude_uv`` so the trough is
    ``amplitude_uv``. ``ttl``: ``(sample_index, line, state)``. ``upstream_spikes``: also deliver
    each injected spike as a Spike Detector event (``handle_spike``). Noise comes from
    ``default_rng([seed, chunk])`` per 16384-sample chunk, so any block cut reads the same data.
    """

    num_channels: int = 4
    sample_rate_hz: float = 30000.0
    duration_s: float = 1.0
    seed: int = 0
    noise_uv: float = 10.0
    spikes: tuple = ()
    ttl: tuple = ()
    first_sample_number: int = 0
    upstream_spikes: bool = False
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        spikes = tuple(sorted((InjectedSpike(int(s[0]), int(s[1]), *map(float, s[2:]))
                               for s in self.spikes), key=lambda s: s.sample_index))
        object.__setattr__(self, "spikes", spikes)
        object.__setattr__(self, "ttl", tuple((int(i), int(ln), bool(st))
                                              for i, ln, st in self.ttl))
        if self.num_channels <= 0 or self.sample_rate_hz <= 0 or self.duration_s < 0:
            raise ValueError("num_channels and sample_rate_hz must be positive, duration >= 0")
        for s in spikes:
            if not 0 <= s.channel < self.num_channels:
                raise ValueError(f"injected spike on channel {s.channel} of {self.num_channels}")

    @property
    def n_channels(self) -> int:
        return int(self.num_channels)

    @property
    def n_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate_hz))

    def _chunk(self, k: int) -> np.ndarray:
        chunk = self._cache.get(k)
        if chunk is None:
            rng = np.random.default_rng([int(self.seed), k])
            chunk = rng.standard_normal((self.n_channels, SYNTH_CHUNK_SAMPLES), np.float32)
            chunk *= np.float32(self.noise_uv)
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = chunk
        return chunk

    def read_uv(self, start_index: int, stop_index: int) -> np.ndarray:
        """Samples ``[start_index, stop_index)``: float32 µV ``(n_channels, n)``, a new array."""
        start, stop = int(start_index), int(stop_index)
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"sample range [{start}, {stop}) outside [0, {self.n_samples})")
        out = np.empty((self.n_channels, stop - start), np.float32)
        pos = start
        while pos < stop:
            k, off = divmod(pos, SYNTH_CHUNK_SAMPLES)
            take = min(stop - pos, SYNTH_CHUNK_SAMPLES - off)
            out[:, pos - start:pos - start + take] = self._chunk(k)[:, off:off + take]
            pos += take
        if self.spikes:
            self._add_spikes(out, start, stop)
        return out

    def _add_spikes(self, out: np.ndarray, start: int, stop: int) -> None:
        wave, n_pre = spike_waveform(self.sample_rate_hz)
        n_post = wave.size - n_pre - 1
        times = np.fromiter((s.sample_index for s in self.spikes), np.int64, len(self.spikes))
        lo = int(np.searchsorted(times, start - n_post, side="left"))
        hi = int(np.searchsorted(times, stop + n_pre, side="right"))
        for s in self.spikes[lo:hi]:
            a, b = s.sample_index - n_pre, s.sample_index + n_post + 1
            i0, i1 = max(a, start), min(b, stop)
            if i0 < i1:
                out[s.channel, i0 - start:i1 - start] += -s.amplitude_uv * wave[i0 - a:i1 - a]

    def ttl_events(self) -> np.ndarray:
        ev = np.array([(self.first_sample_number + i, ln, st) for i, ln, st in self.ttl],
                      dtype=EVENT_DTYPE)
        return ev[np.argsort(ev["sample_number"], kind="stable")]

    def spike_events(self) -> list[SpikeEvent]:
        if not self.upstream_spikes:
            return []
        wave, _ = spike_waveform(self.sample_rate_hz)
        return [SpikeEvent(self.first_sample_number + s.sample_index, f"Electrode {s.channel + 1}",
                           (-s.amplitude_uv * wave)[None, :]) for s in self.spikes]

    def to_spec(self) -> dict:
        return {"kind": "synthetic", "num_channels": int(self.num_channels),
                "sample_rate_hz": float(self.sample_rate_hz),
                "duration_s": float(self.duration_s), "seed": int(self.seed),
                "noise_uv": float(self.noise_uv),
                "spikes": [list(s) for s in self.spikes], "ttl": [list(t) for t in self.ttl],
                "first_sample_number": int(self.first_sample_number),
                "upstream_spikes": bool(self.upstream_spikes)}


class RecordingSource:
    """A stream of an Open Ephys recording (:func:`offline.recording.open_recording`), in µV,
    with its TTL events at their sample numbers; optionally a window ``[start_index,
    stop_index)`` of it (events outside the window are left out).

    ``rebase``: play the window as a *new acquisition* whose first sample is sample number 0,
    as the GUI's File Reader does when it plays a file (the GUI restarts sample numbers at every
    acquisition start, and modules count samples from ``start_acquisition``): TTL sample numbers
    are shifted by the same amount, so a module's own sample count and the TTL numbers agree.
    ``recording_first_sample_number`` maps back: recording sample number = rebased number +
    ``recording_first_sample_number``. Without ``rebase`` the recording's own numbers are kept
    (its acquisition started earlier, so a module's count would not match them).
    """

    def __init__(self, path, node=None, recording=None, stream=None, *, start_index: int = 0,
                 stop_index: int | None = None, allow_truncated: bool = False,
                 rebase: bool = False):
        from offline.recording import open_recording

        self.path, self.node, self.recording_index, self.stream = path, node, recording, stream
        self.allow_truncated = allow_truncated
        self.recording = open_recording(path, node=node, recording=recording, stream=stream,
                                        allow_truncated=allow_truncated)
        total = self.recording.n_samples
        stop = total if stop_index is None else min(int(stop_index), total)
        if not 0 <= int(start_index) <= stop:
            raise ValueError(f"window [{start_index}, {stop_index}) outside [0, {total})")
        self.start_index, self.stop_index = int(start_index), stop
        self.sample_rate_hz = self.recording.sample_rate_hz
        self.n_channels = self.recording.n_channels
        self.n_samples = stop - self.start_index
        self.recording_first_sample_number = self.recording.first_sample_number + self.start_index
        self.rebase = bool(rebase)
        self.first_sample_number = 0 if self.rebase else self.recording_first_sample_number

    def read_uv(self, start_index: int, stop_index: int) -> np.ndarray:
        return self.recording.read_uv(self.start_index + int(start_index),
                                      self.start_index + int(stop_index))

    def ttl_events(self) -> np.ndarray:
        ev = self.recording.ttl_events()
        sn = ev["sample_number"]
        first = self.recording_first_sample_number
        ev = ev[(sn >= first) & (sn < first + self.n_samples)]
        if self.rebase:
            ev = ev.copy()
            ev["sample_number"] -= first
        return ev

    def spike_events(self) -> list[SpikeEvent]:
        return []

    def to_spec(self) -> dict:
        return {"kind": "recording", "path": str(self.path), "node": self.node,
                "recording": self.recording_index, "stream": self.stream,
                "start_index": self.start_index, "stop_index": self.stop_index,
                "allow_truncated": bool(self.allow_truncated), "rebase": self.rebase}

    def __repr__(self) -> str:
        return f"<RecordingSource {self.recording!r} window [{self.start_index}, " \
               f"{self.stop_index})>"


def source_from_spec(spec: dict):
    """Rebuild a source from its ``to_spec()`` dict."""
    args = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec.get("kind")
    if kind == "synthetic":
        return SyntheticSource(**args)
    if kind == "recording":
        path = args.pop("path")
        return RecordingSource(path, args.pop("node", None), args.pop("recording", None),
                               args.pop("stream", None), **args)
    raise ValueError(f"unknown source kind {kind!r} (synthetic, recording)")
