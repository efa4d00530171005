"""Quality metrics per unit (definitions follow SpikeInterface's quality-metrics module).

- ``firing_rate_hz``: spikes / duration.
- ``isi_violation_ratio``: Hill et al. (2011) contamination estimate,
  ``n_violations * T / (2 * N^2 * (isi_threshold - min_isi))`` with ISIs < 1.5 ms violations
  and 0 minimum ISI (0 = clean; > 1 = worse than Poisson). ``isi_violation_fraction``: the
  fraction of ISIs < 1.5 ms.
- ``snr``: the template's peak |amplitude| on its peak channel / that channel's noise (µV/µV).
- ``amplitude_cutoff``: estimated fraction of spikes missing below detection, from the
  amplitude histogram (Hill et al.): the pdf mass below the mode's mirror of the lowest bin.
- ``presence_ratio``: fraction of time bins (60 s, or a tenth of the recording if shorter)
  holding at least one spike.
"""

from __future__ import annotations

import numpy as np

ISI_THRESHOLD_MS = 1.5


def isi_violations(times_s: np.ndarray, duration_s: float, threshold_ms=ISI_THRESHOLD_MS):
    n = len(times_s)
    if n < 2:
        return 0.0, 0.0
    isi = np.diff(np.sort(times_s))
    n_v = int((isi < threshold_ms * 1e-3).sum())
    ratio = n_v * duration_s / (2 * n * n * threshold_ms * 1e-3)
    return float(ratio), float(n_v / len(isi))


def amplitude_cutoff(amplitudes: np.ndarray, bins: int = 100, smooth: int = 3) -> float:
    a = np.abs(np.asarray(amplitudes, np.float64))
    if len(a) < 20:
        return float("nan")
    pdf, edges = np.histogram(a, bins=bins, density=True)
    pdf = np.convolve(pdf, np.ones(smooth) / smooth, mode="same")
    width = edges[1] - edges[0]
    peak = int(np.argmax(pdf))
    above = np.flatnonzero(pdf[peak:] <= pdf[0])
    g = peak + int(above[0]) if len(above) else bins - 1
    return float(min(np.sum(pdf[g:]) * width, 0.5))


def presence_ratio(times_s: np.ndarray, duration_s: float) -> float:
    bin_s = min(60.0, duration_s / 10) if duration_s > 0 else 1.0
    n_bins = max(1, int(np.ceil(duration_s / bin_s)))
    hist, _ = np.histogram(times_s, bins=n_bins, range=(0, n_bins * bin_s))
    return float((hist > 0).mean())


def unit_metrics(spike_t, spike_unit, amplitudes_uv, templates_uv_dense, noise_uv,
                 sample_rate_hz, duration_s) -> list[dict]:
    """One dict per unit (index u of the dense (U, C, W) µV templates)."""
    rows = []
    for u in range(templates_uv_dense.shape[0]):
        sel = spike_unit == u
        times = spike_t[sel] / sample_rate_hz
        tpl = templates_uv_dense[u]
        peak_ch = int(np.argmax(np.abs(tpl).max(axis=1)))
        noise = float(noise_uv[peak_ch])
        ratio, frac = isi_violations(times, duration_s)
        rows.append({
            "unit": u,
            "n_spikes": int(sel.sum()),
            "firing_rate_hz": float(sel.sum() / max(duration_s, 1e-12)),
            "isi_violation_ratio": ratio,
            "isi_violation_fraction": frac,
            "snr": float(np.abs(tpl[peak_ch]).max() / noise) if np.isfinite(noise) else 0.0,
            "amplitude_cutoff": amplitude_cutoff(amplitudes_uv[sel]),
            "presence_ratio": presence_ratio(times, duration_s),
            "peak_channel": peak_ch,
        })
    return rows


def label(m: dict) -> str:
    """Phy's cluster group: 'good' (clean, present, SNR >= 5), else 'mua'."""
    good = (m["isi_violation_ratio"] < 0.5 and m["snr"] >= 5 and m["presence_ratio"] >= 0.9)
    return "good" if good else "mua"
