"""Rasters and peri-stimulus time histograms, per condition, aligned to sweep onsets."""

from __future__ import annotations

import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.presentations import Presentations
from offline.analysis.rates import kernel_weights
from offline.analysis.result import AnalysisResult


def condition_labels(pres: Presentations, by) -> tuple[list, np.ndarray]:
    """Group presentations by ``by``: 'sweep_index', a parameter name, or a list of names.

    Returns (labels, label index per presentation, int64 (n,)); blanks get the label 'blank'.
    """
    names = [by] if isinstance(by, str) else list(by)
    keys = []
    for i in range(len(pres)):
        if pres.is_blank[i]:
            keys.append(("blank",))
        elif names == ["sweep_index"]:
            keys.append((int(pres.sweep_index[i]),))
        else:
            keys.append(tuple(_plain(pres.params[n][i]) for n in names))
    uniq = sorted(set(keys), key=lambda k: (k == ("blank",), [str(type(v)) for v in k], k))
    index = {k: j for j, k in enumerate(uniq)}
    labels = ["blank" if k == ("blank",) else (k[0] if len(k) == 1 else k) for k in uniq]
    return labels, np.array([index[k] for k in keys], np.int64)


def _plain(v):
    return v.item() if hasattr(v, "item") else v


EDGE_S = 1e-9
"""Window edges are compared ``EDGE_S`` early: a spike time and an edge computed from the same
sample (``sample / fs`` vs ``sample / fs + lag``) may differ by float rounding, and a spike on
an edge sample must fall on one side only (a window holds [start, stop)). Far below a sample
(33 µs at 30 kHz), far above the rounding (~1e-13 s at an hour)."""


def spikes_in_windows(times_s: np.ndarray, starts_s: np.ndarray, stops_s: np.ndarray):
    """For each window [start, stop), the index range of the sorted spikes inside it: (lo, hi)
    int64 (n,) (edges compared :data:`EDGE_S` early)."""
    lo = np.searchsorted(times_s, np.asarray(starts_s) - EDGE_S, side="left")
    hi = np.searchsorted(times_s, np.asarray(stops_s) - EDGE_S, side="left")
    return lo, hi


class PsthResult(AnalysisResult):
    """Rasters and PSTHs of one neuron per condition.

    Attributes
    ----------
    labels : list — condition labels ('blank' last).
    raster_ms : list (per condition) of lists (per trial) of float64 arrays — spike times
        relative to the onset, ms.
    bin_centers_ms : float64 (n_bins,)
    rate_hz : float64 (n_conditions, n_bins) — mean over trials (smoothed if ``sigma_ms``).
    sem_hz : float64 (n_conditions, n_bins) — standard error over trials.
    n_trials : int64 (n_conditions,)
    """

    compute = staticmethod(lambda **kw: compute_psth(**kw))

    def plot(self, ax=None, max_conditions: int = 16):
        """Raster (top) and PSTH (bottom); conditions coloured, up to ``max_conditions``."""
        if ax is None:
            axes = new_axes(None, nrows=2, ncols=1, figsize=(5, 4.5))[:, 0]
        else:
            axes = np.atleast_1d(ax)
        n = min(len(self.labels), max_conditions)
        row = 0
        for c in range(n):
            color = "0.5" if self.labels[c] == "blank" else f"C{c % 10}"
            for trial in self.raster_ms[c]:
                axes[0].plot(trial, np.full(trial.size, row), "|", ms=2, color=color)
                row += 1
            if len(axes) > 1:
                axes[1].plot(self.bin_centers_ms, self.rate_hz[c], color=color, lw=1,
                             label=str(self.labels[c]))
        axes[0].set_ylabel("trial")
        axes[0].set_xlim(-self.settings["pre_ms"], self.settings["post_ms"])
        axes[0].axvline(0, color="k", lw=0.5)
        if len(axes) > 1:
            axes[1].set_xlim(-self.settings["pre_ms"], self.settings["post_ms"])
            axes[1].set_xlabel("time from sweep onset (ms)")
            axes[1].set_ylabel("rate (Hz)")
            axes[1].axvline(0, color="k", lw=0.5)
            if n <= 16:
                axes[1].legend(fontsize=6, ncol=2, frameon=False)
        return axes


    def plot_heatmap(self, ax=None, *, raster: bool = True, max_labels: int = 12):
        """Readable with many conditions: the PSTH as a heat map (conditions x time, colour =
        rate, one image) under a raster whose trials are grouped by condition (one artist).

        ``ax``: one axes (heat map only) or two (raster, heat map). Returns the axes; the heat
        map's image holds :attr:`rate_hz` (``ax.images[0].get_array()``)."""
        if ax is None:
            axes = new_axes(None, nrows=2 if raster else 1, ncols=1,
                            figsize=(4.6, 4.4 if raster else 2.6))[:, 0]
        else:
            axes = np.atleast_1d(ax)
        raster = raster and len(axes) > 1
        lo, hi = -self.settings["pre_ms"], self.settings["post_ms"]
        n = len(self.labels)
        if raster:
            xs, ys, bounds, row = [], [], [], 0
            for c in range(n):
                for trial in self.raster_ms[c]:
                    xs.append(trial)
                    ys.append(np.full(trial.size, row, np.float64))
                    row += 1
                bounds.append(row)
            x = np.concatenate(xs) if xs else np.zeros(0)
            y = np.concatenate(ys) if ys else np.zeros(0)
            axes[0].plot(x, y, "|", ms=1.5, mew=0.5, color="k", rasterized=True)
            axes[0].set_ylim(row, -0.5)
            axes[0].set_xlim(lo, hi)
            axes[0].set_ylabel("trial")
            axes[0].tick_params(labelbottom=False)
            if bounds[:-1]:
                axes[0].hlines(np.asarray(bounds[:-1]) - 0.5, lo, hi, color="0.7", lw=0.4)
            axes[0].axvline(0, color="C3", lw=0.5)
        hm = axes[-1]
        half = self.settings["bin_ms"] / 2
        x0 = self.bin_centers_ms[0] - half if self.bin_centers_ms.size else lo
        x1 = self.bin_centers_ms[-1] + half if self.bin_centers_ms.size else hi
        im = hm.imshow(self.rate_hz, aspect="auto", interpolation="nearest", cmap="viridis",
                       extent=(x0, x1, n - 0.5, -0.5), vmin=0)
        step = max(1, int(np.ceil(n / max_labels)))
        ticks = list(range(0, n, step))
        hm.set_yticks(ticks, [str(self.labels[i]) for i in ticks], fontsize=6)
        hm.set_xlim(lo, hi)
        hm.axvline(0, color="w", lw=0.5)
        hm.set_xlabel("time from sweep onset (ms)")
        by = self.settings["by"]
        hm.set_ylabel(by if isinstance(by, str) else ", ".join(by), fontsize=7)
        cb = hm.figure.colorbar(im, ax=list(axes) if raster else hm, shrink=0.9, pad=0.02)
        cb.set_label("rate (Hz)", fontsize=7)
        cb.ax.tick_params(labelsize=6)
        return axes


def compute_psth(times_s, presentations: Presentations, *, by="sweep_index",
                 pre_ms: float = 100.0, post_ms: float | None = None, bin_ms: float = 10.0,
                 sigma_ms: float = 0.0, include_blank: bool = True) -> PsthResult:
    """Raster and PSTH per condition.

    Parameters
    ----------
    times_s : float (n_spikes,) — spike times, s (recording clock).
    presentations : the experiment's :class:`Presentations`.
    by : 'sweep_index', a parameter name, or a list of names (conditions = their values).
    pre_ms, post_ms : window around each onset (post default: the longest sweep).
    bin_ms : PSTH bin width; ``sigma_ms`` > 0 smooths it with a Gaussian kernel.
    include_blank : keep the blank sweeps as a condition ('blank').
    """
    t = np.sort(np.asarray(times_s, np.float64))
    pres = presentations
    if post_ms is None:
        post_ms = float(np.max(pres.duration_s)) * 1e3 if len(pres) else 1000.0
    labels, idx = condition_labels(pres, by)
    keep_cond = [i for i, lab in enumerate(labels) if include_blank or lab != "blank"]
    edges = np.arange(-pre_ms, post_ms + bin_ms / 2, bin_ms)
    lo, hi = spikes_in_windows(t, pres.onset_s - pre_ms * 1e-3, pres.onset_s + post_ms * 1e-3)
    raster, rate, sem, n_trials = [], [], [], []
    for c in keep_cond:
        trials = np.flatnonzero(idx == c)
        rel = [(t[lo[k]:hi[k]] - pres.onset_s[k]) * 1e3 for k in trials]
        counts = np.array([np.histogram(r, edges)[0] for r in rel], np.float64).reshape(
            len(rel), edges.size - 1)
        r = counts / (bin_ms * 1e-3)
        if sigma_ms > 0:
            w = kernel_weights("gaussian", sigma_ms, bin_ms)
            r = np.array([np.convolve(x, w, mode="same") for x in r]).reshape(r.shape)
        raster.append(rel)
        rate.append(r.mean(axis=0) if len(rel) else np.zeros(edges.size - 1))
        sem.append(r.std(axis=0, ddof=1) / np.sqrt(len(rel)) if len(rel) > 1
                   else np.zeros(edges.size - 1))
        n_trials.append(len(rel))
    settings = dict(by=by, pre_ms=pre_ms, post_ms=post_ms, bin_ms=bin_ms, sigma_ms=sigma_ms,
                    include_blank=include_blank)
    return PsthResult({"times_s": times_s, "presentations": presentations}, settings,
                      labels=[labels[c] for c in keep_cond], raster_ms=raster,
                      bin_centers_ms=(edges[:-1] + edges[1:]) / 2,
                      rate_hz=np.array(rate).reshape(len(keep_cond), edges.size - 1),
                      sem_hz=np.array(sem).reshape(len(keep_cond), edges.size - 1),
                      n_trials=np.array(n_trials, np.int64))
