"""Tuning curves along any sweep-table dimension, blank baseline, OSI/DSI, model fits."""

from __future__ import annotations

import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.fits import Fit, fit_tuning
from offline.analysis.presentations import Presentations
from offline.analysis.psth import spikes_in_windows
from offline.analysis.result import AnalysisResult


def _is_angle(name: str) -> bool:
    n = name.lower()
    return n.startswith(("ori", "dir", "angle")) or "ori" in n.split("_")


def _is_frequency(name: str) -> bool:
    n = name.lower()
    return any(k in n for k in ("sf", "tf", "freq", "cpd", "_hz"))


def selectivity(angles_deg, rates, period_deg: float) -> float:
    """Vector-sum selectivity ``|sum r exp(i 2 pi theta / period)| / sum r`` (1 - circular
    variance): the global OSI with period 180, the DSI with period 360. Negative rates count
    as 0."""
    r = np.maximum(np.asarray(rates, np.float64), 0)
    if r.sum() <= 0:
        return 0.0
    z = np.sum(r * np.exp(2j * np.pi * np.asarray(angles_deg, np.float64) / period_deg))
    return float(abs(z) / r.sum())


def preferred_angle(angles_deg, rates, period_deg: float) -> float:
    """Angle of the vector sum (deg, in [0, period))."""
    r = np.maximum(np.asarray(rates, np.float64), 0)
    z = np.sum(r * np.exp(2j * np.pi * np.asarray(angles_deg, np.float64) / period_deg))
    return float(np.angle(z) * period_deg / (2 * np.pi) % period_deg)


class TuningResult(AnalysisResult):
    """Tuning curve of one neuron along one parameter.

    Attributes
    ----------
    param : str
    values : float64 (n_values,) — the parameter's values (sorted).
    trial_rates_hz : list of float64 arrays — each trial's rate per value.
    mean_rate_hz, sem_hz : float64 (n_values,)
    n_trials : int64 (n_values,)
    baseline_hz, baseline_sem_hz : float — blank sweeps (NaN without blanks).
    period_deg : 180 / 360 for angles, else None.
    osi, dsi : vector-sum selectivity (period 180 / 360; NaN when not an angle or no
        direction data); on baseline-subtracted rates when ``subtract_baseline``.
    preferred : the fitted peak (deg or the parameter's unit), else the vector-sum angle or
        the value with the largest mean.
    fit : :class:`~offline.analysis.fits.Fit` or None.
    """

    compute = staticmethod(lambda **kw: compute_tuning(**kw))

    def plot(self, ax=None):
        ax = new_axes(ax, figsize=(3.6, 2.8))
        ax.errorbar(self.values, self.mean_rate_hz, yerr=self.sem_hz, fmt="o", ms=3,
                    color="k", capsize=2, lw=0.8)
        if self.fit is not None:
            lo, hi = float(self.values.min()), float(self.values.max())
            if self.fit.model == "log_gaussian" and lo > 0:
                xs = np.geomspace(lo, hi, 200)
            else:
                xs = np.linspace(lo, hi if self.period_deg is None else lo + self.period_deg,
                                 200)
            ax.plot(xs, self.fit(xs), color="C3", lw=1)
        if np.isfinite(self.baseline_hz):
            ax.axhspan(self.baseline_hz - self.baseline_sem_hz,
                       self.baseline_hz + self.baseline_sem_hz, color="0.85", lw=0)
            ax.axhline(self.baseline_hz, color="0.5", lw=0.8, ls="--")
        if self.fit is not None and self.fit.model == "log_gaussian":
            ax.set_xscale("log")
        ax.set_xlabel(self.param)
        ax.set_ylabel("rate (Hz)")
        title = f"{self.param}: pref {self.preferred:.3g}"
        if np.isfinite(self.osi):
            title += f", OSI {self.osi:.2f}"
        if np.isfinite(self.dsi):
            title += f", DSI {self.dsi:.2f}"
        ax.set_title(title, fontsize=9)
        return ax


def compute_tuning(times_s, presentations: Presentations, param: str, *,
                   fixed: dict | None = None, delay_ms: float = 0.0,
                   window_ms: float | None = None, fit: str | None = "auto",
                   period_deg: float | None = None, subtract_baseline: bool = False
                   ) -> TuningResult:
    """Mean response per value of ``param`` (other parameters pooled unless ``fixed``).

    Parameters
    ----------
    times_s : float (n_spikes,) — spike times, s.
    presentations : the experiment's :class:`Presentations`.
    param : a sweep-table parameter (``ori_deg``, ``sf_cpd``, ``tf_hz``, ``contrast``, ...).
    fixed : {name: value} — keep only presentations with these values of other parameters.
    delay_ms : response latency: count spikes in ``[onset + delay, end + delay)``.
    window_ms : counting window length (default: each presentation's duration).
    fit : 'auto' (von Mises for angles, log-Gaussian for frequencies, else Gaussian), a model
        name from :mod:`offline.analysis.fits`, or None.
    period_deg : 180 (orientation) or 360 (direction); default: 360 if the values span more
        than 180 deg, else 180.
    subtract_baseline : OSI/DSI on rates minus the blank baseline.
    """
    pres = presentations
    if param not in pres.params:
        raise KeyError(f"no parameter {param!r} in the sweep table; parameters: "
                       f"{sorted(pres.params)}")
    t = np.sort(np.asarray(times_s, np.float64))
    start = pres.onset_s + delay_ms * 1e-3
    stop = (start + window_ms * 1e-3) if window_ms is not None else pres.offset_s + delay_ms * 1e-3
    lo, hi = spikes_in_windows(t, start, stop)
    rate = (hi - lo) / np.maximum(stop - start, 1e-12)
    sel = ~pres.is_blank
    for name, value in (fixed or {}).items():
        sel &= pres.params[name] == value
    col = pres.params[param]
    values = np.unique(col[sel].astype(np.float64))
    trial_rates = [rate[sel & (col == v)] for v in values]
    mean = np.array([r.mean() for r in trial_rates])
    sem = np.array([r.std(ddof=1) / np.sqrt(r.size) if r.size > 1 else 0.0 for r in trial_rates])
    blank = rate[pres.is_blank]
    base = float(blank.mean()) if blank.size else float("nan")
    base_sem = float(blank.std(ddof=1) / np.sqrt(blank.size)) if blank.size > 1 else 0.0
    angle = _is_angle(param)
    period = period_deg
    if angle and period is None:
        period = 360.0 if np.ptp(values) > 180 else 180.0
    resp = mean - base if subtract_baseline and np.isfinite(base) else mean
    osi = selectivity(values, resp, 180.0) if angle else float("nan")
    dsi = selectivity(values, resp, 360.0) if angle and period == 360.0 else float("nan")
    model = fit
    if fit == "auto":
        model = (("von_mises_direction" if period == 360.0 else "von_mises") if angle
                 else "log_gaussian" if _is_frequency(param) and np.all(values > 0)
                 else "gaussian")
    fitted: Fit | None = fit_tuning(values, mean, model) if model else None
    if fitted is not None:
        preferred = fitted.preferred
    elif angle:
        preferred = preferred_angle(values, resp, period)
    else:
        preferred = float(values[np.argmax(mean)]) if values.size else float("nan")
    settings = dict(param=param, fixed=fixed, delay_ms=delay_ms, window_ms=window_ms, fit=fit,
                    period_deg=period_deg, subtract_baseline=subtract_baseline)
    return TuningResult({"times_s": times_s, "presentations": presentations}, settings,
                        param=param, values=values, trial_rates_hz=trial_rates,
                        mean_rate_hz=mean, sem_hz=sem,
                        n_trials=np.array([r.size for r in trial_rates], np.int64),
                        baseline_hz=base, baseline_sem_hz=base_sem, period_deg=period,
                        osi=osi, dsi=dsi, preferred=preferred, fit=fitted)
