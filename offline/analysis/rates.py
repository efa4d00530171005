"""Firing rates: binned counts and kernel-smoothed (instantaneous) rates."""

from __future__ import annotations

import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.result import AnalysisResult


class RateResult(AnalysisResult):
    """Firing rate of one spike train over time.

    Attributes
    ----------
    t_s : float64 (n_bins,) — bin centres, s.
    rate_hz : float64 (n_bins,) — binned rate (``kernel='none'``) or the kernel-smoothed rate.
    mean_rate_hz : float — spikes / duration.
    """

    compute = staticmethod(lambda **kw: compute_rate(**kw))

    def plot(self, ax=None):
        ax = new_axes(ax, figsize=(6, 2.5))
        ax.plot(self.t_s, self.rate_hz, lw=0.8, color="k")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("rate (Hz)")
        k = self.settings["kernel"]
        width = self.settings["sigma_ms"] if k != "none" else self.settings["bin_ms"]
        ax.set_title(f"rate ({k}, {width:g} ms), mean {self.mean_rate_hz:.2f} Hz", fontsize=9)
        return ax


def kernel_weights(kernel: str, sigma_ms: float, step_ms: float) -> np.ndarray:
    """A normalised smoothing kernel sampled every ``step_ms`` (sums to 1).

    ``gaussian``: sd ``sigma_ms``, cut at ±4 sd; ``boxcar``: width ``sigma_ms``;
    ``causal_exponential``: time constant ``sigma_ms`` (only past spikes raise the rate).
    """
    if kernel == "gaussian":
        half = int(np.ceil(4 * sigma_ms / step_ms))
        x = np.arange(-half, half + 1) * step_ms
        w = np.exp(-0.5 * (x / sigma_ms) ** 2)
    elif kernel == "boxcar":
        half = max(0, int(round(sigma_ms / step_ms / 2)))
        w = np.ones(2 * half + 1)
    elif kernel == "causal_exponential":
        n = int(np.ceil(6 * sigma_ms / step_ms))
        x = np.arange(-n, n + 1) * step_ms
        w = np.where(x >= 0, np.exp(-np.maximum(x, 0) / sigma_ms), 0.0)
    else:
        raise ValueError(f"kernel must be 'none', 'gaussian', 'boxcar' or 'causal_exponential', "
                         f"got {kernel!r}")
    return w / w.sum()


def compute_rate(times_s, *, t_start_s: float | None = None, t_stop_s: float | None = None,
                 bin_ms: float = 100.0, kernel: str = "none", sigma_ms: float = 50.0,
                 step_ms: float = 5.0) -> RateResult:
    """Binned or kernel-smoothed firing rate.

    Parameters
    ----------
    times_s : float (n_spikes,) — spike times, s.
    t_start_s, t_stop_s : the time range (default: first and last spike).
    bin_ms : bin width of the binned rate (``kernel='none'``).
    kernel : 'none' (binned), 'gaussian', 'boxcar' or 'causal_exponential'; the smoothed rate
        is evaluated every ``step_ms``: spikes binned at ``step_ms`` then convolved with the
        kernel (unit area), so its integral equals the spike count.
    sigma_ms : kernel width (see :func:`kernel_weights`).
    """
    t = np.asarray(times_s, np.float64)
    t0 = float(t.min()) if t_start_s is None and t.size else (t_start_s or 0.0)
    t1 = float(t.max()) if t_stop_s is None and t.size else (t_stop_s or t0 + 1.0)
    step_s = (bin_ms if kernel == "none" else step_ms) * 1e-3
    n = max(1, int(np.ceil((t1 - t0) / step_s - 1e-9)))
    edges = t0 + np.arange(n + 1) * step_s
    counts, _ = np.histogram(t, edges)
    rate = counts / step_s
    if kernel != "none":
        rate = np.convolve(rate, kernel_weights(kernel, sigma_ms, step_ms), mode="same")
    sel = (t >= t0) & (t <= t1)
    settings = dict(t_start_s=t_start_s, t_stop_s=t_stop_s, bin_ms=bin_ms, kernel=kernel,
                    sigma_ms=sigma_ms, step_ms=step_ms)
    return RateResult({"times_s": times_s}, settings, t_s=edges[:-1] + step_s / 2,
                      rate_hz=rate, mean_rate_hz=float(sel.sum() / max(t1 - t0, 1e-12)))
