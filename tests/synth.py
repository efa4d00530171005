"""Synthetic extracellular data with known spikes, for accuracy tests.

Band-limited Gaussian noise plus biphasic spike waveforms (a sharp negative trough and a slower
positive after-phase) at known times, with a spatial amplitude decay over a probe geometry.
SNR here = trough amplitude / standard deviation of the band-passed noise.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from oe_plugin.kernels.bandpass import default_band_sos
from oe_plugin.waveforms import biphasic_spike


def spike_shape(sample_rate_hz: float) -> tuple[np.ndarray, int]:
    """Unit-trough biphasic waveform (~1.6 ms) and the index of its trough."""
    t_ms = np.arange(-0.6, 1.0, 1e3 / sample_rate_hz)
    shape = biphasic_spike(t_ms, 0.12)
    shape /= -shape.min()
    return shape.astype(np.float32), int(np.argmin(shape))


def make_recording(
    n_channels=4,
    duration_s=4.0,
    sample_rate_hz=30000.0,
    rate_hz=8.0,
    snr=8.0,
    noise_uv=10.0,
    positions_um=None,
    decay_um=40.0,
    refractory_ms=2.0,
    seed=0,
    unit_positions_um=None,
    drift_um=None,
):
    """Returns (data (C, N) float32 µV raw, truth structured array (sample_index, channel)).

    Each channel hosts one unit firing as a Poisson process with a refractory period; its spike
    appears on other channels scaled by exp(-distance / decay_um) (none without positions).
    ``noise_uv`` is the std of the noise *after* a 300-6000 Hz band-pass.
    With ``unit_positions_um`` (U, 2) the units sit there instead (the truth's ``channel`` is
    then the unit index), and ``drift_um(t_s)`` moves them all along depth (rigid probe motion:
    a unit at depth y appears at y + drift_um(t)).
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate_hz)
    white = rng.standard_normal((n_channels, n))
    sos = default_band_sos(sample_rate_hz)
    band = signal.sosfilt(sos, white, axis=1)
    data = white * (noise_uv / band[:, n // 10 :].std())
    shape, trough = spike_shape(sample_rate_hz)
    # the band-pass shrinks the trough: calibrate the raw amplitude for the filtered SNR
    filtered_shape = signal.sosfilt(sos, np.r_[np.zeros(200), shape, np.zeros(200)])
    gain = 1.0 / -filtered_shape.min()
    pos = None if positions_um is None else np.asarray(positions_um, dtype=float)
    units = pos if unit_positions_um is None else np.asarray(unit_positions_um, dtype=float)
    if pos is None:
        weights = np.eye(n_channels)
    else:
        d = np.linalg.norm(units[:, None, :] - pos[None, :, :], axis=2)
        weights = np.exp(-d / decay_um)
    truth = []
    refractory = int(refractory_ms * 1e-3 * sample_rate_hz)
    margin = int(0.3 * sample_rate_hz)
    n_units = n_channels if unit_positions_um is None else len(units)
    for unit in range(n_units):
        t = margin
        while True:
            t += refractory + int(rng.exponential(sample_rate_hz / rate_hz))
            if t >= n - len(shape) - 10:
                break
            amp = snr * noise_uv * gain * rng.uniform(0.9, 1.1)
            start = t - trough
            w = weights[unit]
            if drift_um is not None:
                here = units[unit] + np.array([0.0, drift_um(t / sample_rate_hz)])
                w = np.exp(-np.linalg.norm(pos - here, axis=1) / decay_um)
            data[:, start : start + len(shape)] += amp * w[:, None] * shape[None, :]
            truth.append((t, unit))
    truth = np.array(truth, dtype=[("sample_index", np.int64), ("channel", np.int32)])
    truth.sort(order="sample_index")
    return data.astype(np.float32), truth


def match(events_t, events_c, truth, tol_samples, channel_ok=None):
    """Greedy one-to-one matching within ``tol_samples``; returns (recall, precision).

    ``channel_ok(event_channel, true_channel) -> bool`` restricts matches (default: same channel).
    """
    used = np.zeros(len(events_t), dtype=bool)
    found = 0
    order = np.argsort(events_t, kind="stable")
    ts = events_t[order]
    for t, c in zip(truth["sample_index"], truth["channel"], strict=True):
        lo = np.searchsorted(ts, t - tol_samples)
        hi = np.searchsorted(ts, t + tol_samples, side="right")
        for k in range(lo, hi):
            e = order[k]
            if used[e]:
                continue
            ok = (events_c[e] == c) if channel_ok is None else channel_ok(events_c[e], c)
            if ok:
                used[e] = True
                found += 1
                break
    recall = found / max(len(truth), 1)
    precision = used.sum() / max(len(events_t), 1)
    return recall, precision
