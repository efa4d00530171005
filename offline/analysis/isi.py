"""Inter-spike-interval histograms and refractory violations."""

from __future__ import annotations

import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.result import AnalysisResult


class IsiResult(AnalysisResult):
    """ISI histogram of one spike train.

    Attributes
    ----------
    isi_ms : float64 (n_spikes - 1,) — every interval, ms.
    edges_ms : float64 (n_bins + 1,) — bin edges, ms (log-spaced when ``log_bins``).
    counts : int64 (n_bins,) — intervals per bin.
    density_per_ms : float64 (n_bins,) — counts / (n_intervals * bin width): a pdf in 1/ms.
    n_violations : int — intervals shorter than ``refractory_ms``.
    violation_fraction : float — n_violations / n_intervals.
    contamination : float — Hill et al. (2011) contamination estimate
        ``n_violations * T / (2 N^2 (refractory - censored))`` (0 clean; a Poisson train,
        i.e. no refractory period at all, gives 0.5).
    """

    compute = staticmethod(lambda **kw: compute_isi(**kw))

    def plot(self, ax=None):
        ax = new_axes(ax)
        ax.stairs(self.counts, self.edges_ms, fill=True, color="0.3", linewidth=0)
        ax.axvline(self.settings["refractory_ms"], color="r", lw=0.8, ls="--")
        if self.settings["log_bins"]:
            ax.set_xscale("log")
        ax.set_xlabel("ISI (ms)")
        ax.set_ylabel("count")
        ax.set_title(f"ISI: {self.n_violations} < {self.settings['refractory_ms']:g} ms "
                     f"({100 * self.violation_fraction:.2f} %)", fontsize=9)
        return ax


def compute_isi(times_s, *, bin_ms: float = 1.0, max_ms: float = 100.0, log_bins: bool = False,
                min_ms: float = 0.1, bins_per_decade: int = 20, refractory_ms: float = 1.5,
                censored_ms: float = 0.0, duration_s: float | None = None) -> IsiResult:
    """ISI histogram and refractory-violation count.

    Parameters
    ----------
    times_s : float (n_spikes,) — spike times, s (sorted or not).
    bin_ms, max_ms : linear bins of ``bin_ms`` from 0 to ``max_ms``.
    log_bins : log-spaced bins from ``min_ms`` to ``max_ms``, ``bins_per_decade`` per decade.
    refractory_ms : intervals shorter than this are violations.
    censored_ms : dead time of the detector (intervals below it cannot occur), for the
        contamination estimate.
    duration_s : recording duration for the contamination estimate (default: the span of
        the spikes).
    """
    t = np.sort(np.asarray(times_s, np.float64))
    isi_ms = np.diff(t) * 1e3
    if log_bins:
        n = max(1, int(round(np.log10(max_ms / min_ms) * bins_per_decade)))
        edges = np.logspace(np.log10(min_ms), np.log10(max_ms), n + 1)
    else:
        edges = np.arange(0.0, max_ms + bin_ms / 2, bin_ms)
    counts, _ = np.histogram(isi_ms, edges)
    n_int = max(isi_ms.size, 1)
    density = counts / (n_int * np.diff(edges))
    n_v = int(np.count_nonzero(isi_ms < refractory_ms))
    span = duration_s if duration_s is not None else (t[-1] - t[0] if t.size > 1 else 0.0)
    window_s = (refractory_ms - censored_ms) * 1e-3
    contamination = (n_v * span / (2 * t.size**2 * window_s)) if t.size > 1 else 0.0
    settings = dict(bin_ms=bin_ms, max_ms=max_ms, log_bins=log_bins, min_ms=min_ms,
                    bins_per_decade=bins_per_decade, refractory_ms=refractory_ms,
                    censored_ms=censored_ms, duration_s=duration_s)
    return IsiResult({"times_s": times_s}, settings, isi_ms=isi_ms, edges_ms=edges,
                     counts=counts.astype(np.int64), density_per_ms=density, n_violations=n_v,
                     violation_fraction=n_v / n_int, contamination=float(contamination))
