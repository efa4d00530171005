"""Quality metrics per unit, and Phy's good / mua label from them.

The metrics that carry a SpikeInterface name compute SpikeInterface 0.105's definition
(``spikeinterface.metrics.quality.misc_metrics`` and ``spikeinterface.metrics.spiketrain``,
one segment, no periods) exactly, given the same inputs; ``tests/test_metrics_si.py`` checks
each against ``compute_quality_metrics`` on one sorting. SpikeInterface is not needed to run
them (numpy / scipy only).

- ``firing_rate_hz`` (SI ``firing_rate``): spikes / recording duration; NaN for no spikes.
- ``isi_violation_ratio`` (SI ``isi_violations_ratio``, Hill et al. 2011, J Neurosci
  31:8699): ``n_v * T / (2 N^2 (isi_threshold - min_isi))`` with ``n_v`` the ISIs shorter than
  1.5 ms, ``min_isi`` 0 (0 = clean; 1 = as many violations as an unrelated Poisson train of the
  same rate); NaN for no spikes.
- ``snr`` (SI ``snr``, method ``extremum``): the template's largest |value| on its main
  channel (the channel where |template| is largest) / that channel's noise. SpikeInterface
  uses its ``templates`` (mean waveform) and ``noise_levels`` (MAD of random chunks)
  extensions; a sort passes its own: the matching templates (µV) and the fixed noise of
  ``offline.sort.preprocess`` (MAD / 0.6745 over ``noise_windows`` windows, µV). Same formula,
  so the numbers differ from SpikeInterface's only as much as those inputs do.
- ``amplitude_cutoff`` (SI ``amplitude_cutoff``, after Hill et al. and the Allen Institute's
  ecephys_spike_sorting): histogram of the spikes' amplitudes in 100 bins, smoothed with a
  Gaussian (sigma 3 bins, ``scipy.ndimage.gaussian_filter1d``, mode ``nearest``); the counts
  above the last bin whose count is >= the first bin's are the missing spikes; fraction =
  missing / (spikes + missing), capped at 0.5. NaN below 5 spikes per bin (500 spikes).
  Amplitudes whose median is negative are negated first. The histogram spans the amplitudes'
  range, so any positive scale of them (µV or template scale) gives the same value.
- ``presence_ratio`` (SI ``presence_ratio``, ``mean_fr_ratio_thresh`` 0): the recording is cut
  into whole bins of ``bin_s`` (the remainder after the last whole bin is left out); the
  fraction of bins holding at least one spike. NaN for no spikes or a recording shorter than a
  bin. A sort uses 60 s bins (SpikeInterface's default), shortened to a tenth of the recording
  when that is shorter (``[quality] presence_bin_s``).
- ``isi_violation_fraction`` (ours, no SpikeInterface counterpart): the fraction of ISIs
  shorter than 1.5 ms (0 with fewer than 2 spikes).
"""

from __future__ import annotations

import numpy as np

from offline.sort.settings import QualitySettings

ISI_THRESHOLD_MS = 1.5
AMPLITUDE_BINS = 100
AMPLITUDE_SMOOTH_BINS = 3
AMPLITUDE_MIN_PER_BIN = 5


def firing_rate_hz(n_spikes: int, duration_s: float) -> float:
    """Spikes / duration (Hz); NaN for no spikes (SpikeInterface's convention)."""
    return float(n_spikes / duration_s) if n_spikes else float("nan")


def isi_violations(times_s: np.ndarray, duration_s: float, threshold_ms: float = ISI_THRESHOLD_MS,
                   min_isi_ms: float = 0.0) -> tuple[float, float]:
    """(Hill's violation ratio, fraction of ISIs < threshold) of one unit's spike times (s)."""
    n = len(times_s)
    if n == 0:
        return float("nan"), 0.0
    isi = np.diff(np.sort(np.asarray(times_s, np.float64)))
    n_v = int((isi < threshold_ms * 1e-3).sum())
    violation_rate = n_v / (2 * n * (threshold_ms - min_isi_ms) * 1e-3)
    ratio = violation_rate / (n / duration_s)
    return float(ratio), float(n_v / len(isi)) if len(isi) else 0.0


def amplitude_cutoff(amplitudes: np.ndarray, bins: int = AMPLITUDE_BINS,
                     smooth_bins: float = AMPLITUDE_SMOOTH_BINS,
                     min_per_bin: float = AMPLITUDE_MIN_PER_BIN) -> float:
    """Estimated fraction of a unit's spikes lost below detection, from its (n,) amplitudes."""
    from scipy.ndimage import gaussian_filter1d

    a = np.asarray(amplitudes, np.float64)
    if len(a) / bins < min_per_bin:
        return float("nan")
    if np.median(a) < 0:
        a = -a
    counts = np.histogram(a, bins)[0]
    pdf = gaussian_filter1d(counts, smooth_bins, mode="nearest")  # integer counts, as SI's
    last = int(np.flatnonzero(pdf >= pdf[0])[-1])
    missing = float(np.sum(pdf[last + 1:]))
    return float(min(missing / (len(a) + missing), 0.5))


def presence_bin_s(duration_s: float, max_bin_s: float) -> float:
    """The presence-ratio bin a sort uses: ``max_bin_s``, or a tenth of a shorter recording."""
    return min(max_bin_s, duration_s / 10)


def presence_ratio(spike_samples: np.ndarray, n_samples: int, sample_rate_hz: float,
                   bin_s: float) -> float:
    """Fraction of whole ``bin_s`` bins of the recording that hold a spike of the unit.

    ``spike_samples`` (n,) are sample indices from the recording's start, ``n_samples`` its
    length."""
    bin_n = int(bin_s * sample_rate_hz)
    if len(spike_samples) == 0 or bin_n < 1 or n_samples < bin_n:
        return float("nan")
    edges = np.arange(0, n_samples // bin_n * bin_n + 1, bin_n)
    if len(edges) < 2:
        return 0.0
    hist = np.histogram(spike_samples, bins=edges)[0]
    return float(np.sum(hist > 0) / (len(edges) - 1))


def unit_metrics(spike_t, spike_unit, amplitudes_uv, templates_uv_dense, noise_uv,
                 sample_rate_hz, duration_s, max_presence_bin_s: float = 60.0) -> list[dict]:
    """One dict per unit (index u of the dense (U, C, W) µV templates).

    ``spike_t`` (n,) recording sample indices of the sorted spikes, ``spike_unit`` (n,) their
    unit, ``amplitudes_uv`` (n,) their amplitudes (µV), ``noise_uv`` (C,) the channels' noise
    (µV), ``duration_s`` the recording's length."""
    rows = []
    n_samples = int(round(duration_s * sample_rate_hz))
    bin_s = presence_bin_s(duration_s, max_presence_bin_s)
    for u in range(templates_uv_dense.shape[0]):
        sel = spike_unit == u
        n = int(sel.sum())
        times = spike_t[sel] / sample_rate_hz
        tpl = templates_uv_dense[u]
        peak_ch = int(np.argmax(np.abs(tpl).max(axis=1)))
        noise = float(noise_uv[peak_ch])
        ratio, frac = isi_violations(times, duration_s)
        rows.append({
            "unit": u,
            "n_spikes": n,
            "firing_rate_hz": firing_rate_hz(n, duration_s),
            "isi_violation_ratio": ratio,
            "isi_violation_fraction": frac,
            "snr": float(np.abs(tpl[peak_ch]).max() / noise) if np.isfinite(noise) else 0.0,
            "amplitude_cutoff": amplitude_cutoff(amplitudes_uv[sel]),
            "presence_ratio": presence_ratio(spike_t[sel], n_samples, sample_rate_hz, bin_s),
            "peak_channel": peak_ch,
        })
    return rows


def label(m: dict, quality: QualitySettings | None = None) -> str:
    """Phy's cluster group of a unit's metrics ``m``: 'good' when every bound of ``quality``
    (``[quality]`` settings; ``None``: the defaults) holds (a NaN metric fails its bound), else
    'mua'."""
    q = quality or QualitySettings()
    good = (m["isi_violation_ratio"] < q.good_max_isi_violation_ratio
            and m["snr"] >= q.good_min_snr
            and m["presence_ratio"] >= q.good_min_presence_ratio)
    return "good" if good else "mua"
