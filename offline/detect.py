"""Offline spike detection with the online kernels, chunk by chunk.

:func:`detect_recording` feeds a recording through one
:class:`~oe_plugin.kernels.detector.SpikeDetector` in chunks (the causal filter, the noise
estimate and the lockout carry across chunks), so the peaks are exactly those the online module
finds over the same stream — and those of one whole-file call (block invariance).

Output: a structured array :data:`PEAK_DTYPE` (``sample_index`` 0-based into the stream,
``channel_index``, ``amplitude_uv``), written by :func:`save_peaks` as ``peaks.npy`` plus a
``peaks.json`` sidecar with the settings, the stream and the counters.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from oe_plugin.formats.atomic import atomic_write
from oe_plugin.kernels.detector import EVENT_DTYPE, SpikeDetector
from oe_plugin.probe import Probe, load_probe, neighbour_lists
from oe_plugin.settings import DetectSettings, FilterSettings

PEAK_DTYPE = np.dtype([(n, EVENT_DTYPE[n]) for n in ("sample_index", "channel_index")]
                      + [("amplitude_uv", EVENT_DTYPE["amplitude"])])
"""``sample_index`` int64 (0-based into the stream), ``channel_index`` int32, ``amplitude_uv``
float32 (the detector's events on µV data, the same layout)."""

DEFAULT_CHUNK_S = 1.0


def detect_recording(
    recording,
    filter_settings: FilterSettings | None = None,
    detect_settings: DetectSettings | None = None,
    probe: Probe | None = None,
    chunk_samples: int | None = None,
    progress: bool = False,
    detector: SpikeDetector | None = None,
) -> tuple[np.ndarray, dict]:
    """Detect spikes over a whole stream.

    recording : anything with ``n_channels``, ``n_samples``, ``sample_rate_hz`` and
        ``read_uv(start, stop) -> (n_channels, n) float32`` (e.g. ``offline.recording``); when it
        also has ``read_uv_rows(start, stop) -> (n, n_channels)``, that is used (no transpose).
    probe : channel geometry (default: ``detect_settings.probe``).
    Returns ``(peaks, stats)``; peaks sorted by (sample_index, channel_index). Spikes whose
    decision would need samples beyond the end of the stream (the last ~0.5 ms) are not
    reported, exactly as online.
    """
    filter_settings = filter_settings or FilterSettings()
    detect_settings = detect_settings or DetectSettings()
    n_channels = int(recording.n_channels)
    fs = float(recording.sample_rate_hz)
    if detector is None:
        if probe is None:
            probe = load_probe(detect_settings.probe, n_channels)
        neighbours = neighbour_lists(probe, detect_settings.lockout_radius_um)
        chunk = int(chunk_samples or round(DEFAULT_CHUNK_S * fs))
        detector = SpikeDetector(
            n_channels, fs, filter_settings, detect_settings, neighbours, max_block=chunk
        )
    chunk = int(chunk_samples or detector.max_block)
    n_total = int(recording.n_samples)
    parts = []
    bar = _progress(n_total, progress)
    sample_major = hasattr(recording, "read_uv_rows")
    for start in range(0, n_total, chunk):
        stop = min(start + chunk, n_total)
        if sample_major:  # the stream's own layout for Binary: no transpose on either side
            parts.append(detector.process_rows(recording.read_uv_rows(start, stop)))
        else:
            parts.append(detector.process(recording.read_uv(start, stop)))
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    peaks = np.concatenate(parts) if parts else np.zeros(0, dtype=EVENT_DTYPE)
    return peaks.view(PEAK_DTYPE), detector.stats  # µV data: the amplitude is in µV


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", unit_scale=True, desc="detect", leave=False)


def save_peaks(out_dir, peaks: np.ndarray, info: dict) -> Path:
    """Write ``out_dir/peaks.npy`` and ``out_dir/peaks.json`` atomically (temp file + rename)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "peaks.npy", lambda f: np.save(f, peaks, allow_pickle=False))
    text = json.dumps(info, indent=2, default=_json_default)
    atomic_write(out / "peaks.json", lambda f: f.write(text.encode()))
    return out / "peaks.npy"


def describe_run(recording, filter_settings, detect_settings, probe, stats) -> dict:
    """The sidecar: what was detected, from what, with which settings."""
    from oe_plugin import __version__

    return {
        "sweepsort_version": __version__,
        "recording": str(getattr(recording, "path", "")),
        "stream": getattr(recording, "stream_name", ""),
        "sample_rate_hz": float(recording.sample_rate_hz),
        "n_channels": int(recording.n_channels),
        "n_samples": int(recording.n_samples),
        "first_sample_number": int(getattr(recording, "first_sample_number", 0)),
        "probe": probe.name if probe is not None else detect_settings.probe,
        "filter": asdict(filter_settings),
        "detect": asdict(detect_settings),
        "stats": stats,
        "fields": {
            "sample_index": "0-based index into the stream (sample_number - first_sample_number)",
            "channel_index": "0-based data channel",
            "amplitude_uv": "signed filtered peak amplitude, microvolts",
        },
    }


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
