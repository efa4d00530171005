"""Spike-triggered average of sparse-noise and m-sequence stimuli, over a range of lags."""

from __future__ import annotations

import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.result import AnalysisResult
from offline.analysis.stimframes import StimulusMovie


class StaResult(AnalysisResult):
    """Spike-triggered average.

    Attributes
    ----------
    lags_ms : float64 (n_lags,) — time before each spike.
    sta : float64 (n_lags, ny, nx) — mean image ``lag`` ms before a spike, minus the mean
        image over all refreshes (``subtract_mean``): contrast units, row 0 = top.
    n_spikes : int64 (n_lags,) — spikes with a stimulus frame at that lag.
    peak_lag_ms : float — the lag with the largest STA variance.
    """

    compute = staticmethod(lambda **kw: compute_sta(**kw))

    @property
    def peak_map(self) -> np.ndarray:
        return self.sta[int(np.argmin(np.abs(self.lags_ms - self.peak_lag_ms)))]

    def plot(self, ax=None, max_lags: int = 10, extent_deg=None, colorbar: bool = False):
        """The STA at up to ``max_lags`` evenly spaced lags that include the peak lag, one
        shared colour scale (red = brighter than the mean before a spike).

        ``extent_deg`` (left, right, bottom, top) — the grid on the screen, degrees of visual
        angle (:func:`grid_extent_deg`): the first panel gets axes in degrees. ``colorbar``:
        a colour bar of the shared scale (contrast units)."""
        n = min(self.lags_ms.size, max_lags)
        step = max(1, int(np.ceil(self.lags_ms.size / n)))
        peak = int(np.argmin(np.abs(self.lags_ms - self.peak_lag_ms)))
        idx = sorted({i % self.lags_ms.size for i in range(peak % step, self.lags_ms.size, step)})
        idx = idx[:n]
        axes = (new_axes(None, nrows=1, ncols=len(idx), figsize=(1.2 * len(idx) + 0.5, 1.6))[0]
                if ax is None else np.atleast_1d(ax))
        vmax = float(np.abs(self.sta).max()) or 1.0
        im = None
        for k, (a, i) in enumerate(zip(axes, idx, strict=False)):
            im = a.imshow(self.sta[i], cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                          interpolation="nearest", extent=extent_deg)
            if extent_deg is not None and k == 0:
                a.tick_params(labelsize=6)
                a.set_xlabel("azimuth (°)", fontsize=7)
                a.set_ylabel("elevation (°)", fontsize=7)
            else:
                a.set_xticks([])
                a.set_yticks([])
            a.set_title(f"{self.lags_ms[i]:g} ms", fontsize=7)
        if colorbar and im is not None:
            cb = axes[0].figure.colorbar(im, ax=list(axes), shrink=0.9, pad=0.02)
            cb.set_label("Δ contrast", fontsize=7)
            cb.ax.tick_params(labelsize=6)
        return axes


    def plot_summary(self, ax=None, max_lags: int = 8, extent_deg=None):
        """Two panels, cheap to draw: the map at the peak lag (axes in degrees of visual angle
        when ``extent_deg`` (left, right, bottom, top) is given) and the maps at up to
        ``max_lags`` lags side by side in one image (tick labels: the lag), one colour bar
        (contrast units, red = brighter than the mean before a spike). Returns the axes."""
        if ax is None:
            axes = new_axes(None, nrows=1, ncols=2, figsize=(7.0, 2.4))[0]
        else:
            axes = np.atleast_1d(ax)
        n = min(self.lags_ms.size, max_lags)
        step = max(1, int(np.ceil(self.lags_ms.size / n)))
        peak = int(np.argmin(np.abs(self.lags_ms - self.peak_lag_ms)))
        idx = sorted({i % self.lags_ms.size for i in range(peak % step, self.lags_ms.size, step)})
        idx = idx[:n]
        vmax = float(np.abs(self.sta).max()) or 1.0
        kw = dict(cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        im = axes[0].imshow(self.sta[peak], extent=extent_deg, **kw)
        axes[0].set_title(f"peak lag {self.lags_ms[peak]:g} ms", fontsize=7)
        if extent_deg is not None:
            axes[0].set_xlabel("azimuth (°)", fontsize=7)
            axes[0].set_ylabel("elevation (°)", fontsize=7)
        axes[0].tick_params(labelsize=6)
        if len(axes) > 1:
            ny, nx = self.sta.shape[1:]
            gap = max(1, nx // 4)
            strip = np.full((ny, len(idx) * (nx + gap) - gap), np.nan)
            for k, i in enumerate(idx):
                strip[:, k * (nx + gap):k * (nx + gap) + nx] = self.sta[i]
            axes[1].imshow(strip, **kw)
            axes[1].set_xticks([k * (nx + gap) + (nx - 1) / 2 for k in range(len(idx))],
                               [f"{self.lags_ms[i]:g}" for i in idx], fontsize=6)
            axes[1].set_yticks([])
            axes[1].set_xlabel("lag before the spike (ms)", fontsize=7)
            axes[1].tick_params(length=0)
        cb = axes[0].figure.colorbar(im, ax=list(axes), shrink=0.9, pad=0.02)
        cb.set_label("Δ contrast", fontsize=7)
        cb.ax.tick_params(labelsize=6)
        return axes


#: the grid size a session leaves at its stimulus's default (stimulus.stimuli.*)
_DEFAULT_GRID_DEG = {"sparse_noise": (40.0, 40.0), "msequence": (32.0, 32.0)}


def grid_extent_deg(stimulus: str, static: dict, conditions: list[dict]):
    """Where the STA grid was on the screen: (left, right, bottom, top), degrees of visual
    angle from the screen centre (+x right, +y up), and its rotation ``ori_deg``.

    The grid is ``width_deg`` x ``height_deg`` centred at (``x_deg``, ``y_deg``) (from the
    session's static parameters, else its first condition, else the stimulus defaults)."""
    def get(name, default):
        for src in (static or {}, conditions[0] if conditions else {}):
            v = src.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
        return default

    w0, h0 = _DEFAULT_GRID_DEG.get(stimulus, (40.0, 40.0))
    w, h = get("width_deg", w0), get("height_deg", h0)
    x, y = get("x_deg", 0.0), get("y_deg", 0.0)
    return (x - w / 2, x + w / 2, y - h / 2, y + h / 2), get("ori_deg", 0.0)


def compute_sta(times_s, movie: StimulusMovie, *, lags_ms=None, subtract_mean: bool = True
                ) -> StaResult:
    """STA of a spike train against a :class:`~offline.analysis.stimframes.StimulusMovie`.

    Parameters
    ----------
    times_s : float (n_spikes,) — spike times, s (recording clock).
    movie : the experiment's rebuilt frames (display lag already in ``movie.onset_s``).
    lags_ms : lags to evaluate (default 0, 10, ..., 200 ms).
    subtract_mean : subtract the mean image over the experiment's refreshes.

    For each lag, each spike picks the refresh on the screen ``lag`` ms earlier; the images are
    accumulated by image index (a bincount), then one matrix product: cost O(n_spikes + n_images
    x pixels) per lag.
    """
    t = np.asarray(times_s, np.float64)
    lags = np.arange(0.0, 201.0, 10.0) if lags_ms is None else np.asarray(lags_ms, np.float64)
    n_img = movie.images.shape[0]
    flat = movie.images.reshape(n_img, -1).astype(np.float64)
    shown = np.bincount(movie.image_index, minlength=n_img).astype(np.float64)
    mean_img = shown @ flat / max(shown.sum(), 1.0)
    out = np.zeros((lags.size, flat.shape[1]))
    n_used = np.zeros(lags.size, np.int64)
    for k, lag in enumerate(lags):
        r = movie.frame_at(t - lag * 1e-3)
        r = r[r >= 0]
        n_used[k] = r.size
        if r.size:
            w = np.bincount(movie.image_index[r], minlength=n_img).astype(np.float64)
            out[k] = w @ flat / r.size
            if subtract_mean:
                out[k] -= mean_img
    sta = out.reshape((lags.size,) + movie.images.shape[1:])
    var = sta.reshape(lags.size, -1).var(axis=1)
    settings = dict(lags_ms=lags_ms, subtract_mean=subtract_mean)
    return StaResult({"times_s": times_s, "movie": movie}, settings, lags_ms=lags, sta=sta,
                     n_spikes=n_used, peak_lag_ms=float(lags[int(np.argmax(var))]))
