"""Chunk task 1: preprocess a chunk and detect its events with the online detection kernel.

The detector (:class:`oe_plugin.kernels.detector.SpikeDetector`, the same compiled kernel the
online module runs) gets noise-scaled traces, its own band-pass switched off (the chunk is
already filtered) and a fixed threshold of ``threshold_mad`` (noise units), i.e. a fixed
per-channel threshold of ``threshold_mad x noise_uv[c]`` µV. Its lockout decision for a peak at
``t`` depends only on candidates within ``± lockout`` samples, so a fresh detector run over the
chunk plus ``context`` samples on each side decides every peak *inside* the chunk exactly as a
run over the whole file would; peaks in the context belong to the neighbouring chunks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from oe_plugin.kernels.detector import SpikeDetector
from oe_plugin.kernels.localize import localize
from oe_plugin.kernels.snippets import extract_snippets
from oe_plugin.settings import FilterSettings
from offline.sort.job import SortJob, window_samples


def make_detector(job: SortJob, n_channels: int, sample_rate_hz: float, max_block: int,
                  threshold_factor: float = 1.0):
    """The sort's detector on traces in noise units; ``threshold_factor`` scales its threshold
    (``threshold_mad``, ``threshold_uv``, ``threshold_floor_uv``)."""
    d = job.settings.detect
    if threshold_factor != 1.0:
        d = replace(d, threshold_mad=d.threshold_mad * threshold_factor,
                    threshold_uv=d.threshold_uv * threshold_factor,
                    threshold_floor_uv=d.threshold_floor_uv * threshold_factor)
    return SpikeDetector(n_channels, sample_rate_hz, FilterSettings(enabled=False), d,
                         job.lock_nb, max_block=max_block, noise_units=True)


def detection_context(detector: SpikeDetector) -> int:
    """Samples of context a chunk needs on each side for exact decisions."""
    return int(detector.decision_delay + 2 * detector.lockout_samples
               + detector.phase_window_samples + 4)


def detect_traces(detector: SpikeDetector, traces: np.ndarray) -> np.ndarray:
    """Run a fresh copy of the detector's state over (C, n) traces; EVENT_DTYPE events with
    ``sample_index`` relative to column 0."""
    detector.reset()
    return detector.process(np.ascontiguousarray(traces))


def detect_chunk(job: SortJob, index: int) -> dict:
    """Events of chunk ``index`` and a random subsample of their snippets.

    Returns arrays: ``t`` int64 (sorting-rate sample index), ``c`` int32 peak channel,
    ``amplitude_uv`` float32; ``snippet_t``, ``snippet_c`` and ``snippets`` (n, K, W) float32
    in noise units for up to ``events_per_chunk`` events (or ``events_per_channel`` per
    channel, when more) drawn uniformly (seeded by chunk);
    with ``job.loc_nb``, also every event's ``x_um``, ``y_um`` (centre of mass on those
    channels) and ``loc_amplitude`` (noise units), for the motion estimate.
    """
    pre_proc = job.preprocessor()
    g = pre_proc.geometry
    start, stop = g.bounds(index)
    pre, post = window_samples(job, g.sample_rate_hz)
    detector = make_detector(job, pre_proc.n_channels, g.sample_rate_hz, 1024)
    ctx = max(detection_context(detector), pre + post)
    lo, hi = max(0, start - ctx), min(g.n_samples, stop + ctx)
    # with whitening, detection runs on the plain traces unless [preprocess] whiten_detection
    plain = pre_proc.whitening is not None and not job.settings.preprocess.whiten_detection
    traces = pre_proc.traces(lo, hi, white=not plain)
    ev = detect_traces(detector, traces)
    loc_traces = traces
    if plain:
        traces = pre_proc.whiten_scaled(traces)
    t = ev["sample_index"] + lo
    keep = (t >= start) & (t < stop)
    t, c = t[keep], ev["channel_index"][keep].astype(np.int32)
    amp_uv = ev["amplitude"][keep] * job.noise_uv[c]  # noise units -> µV
    rng = np.random.default_rng([job.settings.sort.seed, index])
    ss = job.settings.sort
    n_pick = min(len(t), max(ss.events_per_chunk,
                             int(round(ss.events_per_channel * pre_proc.n_channels))))
    pick = np.sort(rng.choice(len(t), n_pick, replace=False)) if n_pick else np.zeros(0, int)
    nb_ptr, nb_idx = job.snip_nb
    width = int(np.diff(nb_ptr).max())
    snippets = np.zeros((n_pick, width, pre + post), np.float32)
    ok = extract_snippets(traces, lo, t[pick], c[pick], nb_ptr, nb_idx, pre, post, snippets)
    pick = pick[ok]
    out = {"t": t.astype(np.int64), "c": c, "amplitude_uv": amp_uv.astype(np.float32),
           "snippet_t": t[pick].astype(np.int64), "snippet_c": c[pick],
           "snippets": snippets[ok]}
    if job.loc_nb is not None:
        x, y, a = localize(loc_traces, lo, t, c, job.loc_nb, job.positions_um,
                           method=job.settings.motion.localize)
        out.update(x_um=x, y_um=y, loc_amplitude=a)
    return out
