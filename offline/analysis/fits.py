"""Tuning-curve models and least-squares fits (scipy.optimize.curve_fit).

Models (angles in degrees; rates in Hz):

- ``von_mises`` (orientation, period 180): ``b + a exp(k (cos(2 (x - pref)) - 1))``;
- ``von_mises_direction`` (period 360, two peaks 180 deg apart):
  ``b + a1 exp(k (cos(x - pref) - 1)) + a2 exp(k (cos(x - pref - 180) - 1))``;
- ``gaussian``: ``b + a exp(-(x - mu)^2 / (2 sigma^2))``;
- ``log_gaussian`` (spatial / temporal frequency): a Gaussian in log2(x): ``mu`` is the
  preferred value, ``sigma`` the width in octaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def von_mises(x, b, a, k, pref):
    return b + a * np.exp(k * (np.cos(2 * np.deg2rad(x - pref)) - 1))


def von_mises_direction(x, b, a1, a2, k, pref):
    r = np.deg2rad(x - pref)
    return b + a1 * np.exp(k * (np.cos(r) - 1)) + a2 * np.exp(k * (np.cos(r - np.pi) - 1))


def gaussian(x, b, a, mu, sigma):
    return b + a * np.exp(-((x - mu) ** 2) / (2 * sigma**2))


def log_gaussian(x, b, a, mu, sigma):
    lx = np.log2(np.maximum(x, 1e-12))
    return b + a * np.exp(-((lx - np.log2(mu)) ** 2) / (2 * sigma**2))


MODELS = {
    "von_mises": (von_mises, ("b", "a", "k", "pref")),
    "von_mises_direction": (von_mises_direction, ("b", "a1", "a2", "k", "pref")),
    "gaussian": (gaussian, ("b", "a", "mu", "sigma")),
    "log_gaussian": (log_gaussian, ("b", "a", "mu", "sigma")),
}


@dataclass
class Fit:
    """A fitted model: ``params`` by name, ``r2`` (fraction of variance of the means explained)."""

    model: str
    params: dict
    r2: float

    def __call__(self, x):
        fn, names = MODELS[self.model]
        return fn(np.asarray(x, np.float64), *[self.params[n] for n in names])

    @property
    def preferred(self) -> float:
        """Preferred orientation/direction (deg) or frequency (the peak of the model)."""
        return float(self.params["pref"] if "pref" in self.params else self.params["mu"])


def fit_tuning(x, y, model: str, weights=None) -> Fit | None:
    """Fit ``model`` to mean rates ``y`` at values ``x`` (1-D, same length).

    Several starting points (at the largest responses) are tried; the best least-squares fit
    wins. Returns None when the fit fails or there are fewer points than parameters.
    """
    from scipy.optimize import curve_fit

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    fn, names = MODELS[model]
    if x.size < len(names) or not np.all(np.isfinite(y)):
        return None
    lo_y, hi_y = float(y.min()), float(y.max())
    amp = max(hi_y - lo_y, 1e-6)
    top = x[np.argsort(y)[::-1][:3]]
    sigma = None if weights is None else 1.0 / np.maximum(np.asarray(weights, float), 1e-9)
    starts, bounds = [], None
    if model == "von_mises":
        starts = [[lo_y, amp, 2.0, p % 180] for p in top]
        bounds = ([-np.inf, 0, 0.01, -360], [np.inf, np.inf, 100, 720])
    elif model == "von_mises_direction":
        starts = [[lo_y, amp, amp / 2, 2.0, p % 360] for p in top]
        bounds = ([-np.inf, 0, 0, 0.01, -720], [np.inf, np.inf, np.inf, 100, 1080])
    elif model == "gaussian":
        span = float(np.ptp(x)) or 1.0
        starts = [[lo_y, amp, p, span / 4] for p in top]
        bounds = ([-np.inf, 0, x.min() - span, span / 100], [np.inf, np.inf, x.max() + span,
                                                             10 * span])
    elif model == "log_gaussian":
        pos = x[x > 0]
        if pos.size < len(names):
            return None
        starts = [[lo_y, amp, p, 1.0] for p in top if p > 0]
        bounds = ([-np.inf, 0, pos.min() / 8, 0.05], [np.inf, np.inf, pos.max() * 8, 10])
    else:
        raise ValueError(f"unknown model {model!r}; one of {sorted(MODELS)}")
    best, best_sse = None, np.inf
    for p0 in starts:
        p0 = np.clip(p0, [b + 1e-9 if np.isfinite(b) else -1e300 for b in bounds[0]],
                     [b - 1e-9 if np.isfinite(b) else 1e300 for b in bounds[1]])
        try:
            popt, _ = curve_fit(fn, x, y, p0=p0, bounds=bounds, sigma=sigma, maxfev=5000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((fn(x, *popt) - y) ** 2))
        if sse < best_sse:
            best, best_sse = popt, sse
    if best is None:
        return None
    params = dict(zip(names, (float(v) for v in best), strict=True))
    if model == "von_mises_direction" and params["a2"] > params["a1"]:
        params["a1"], params["a2"] = params["a2"], params["a1"]
        params["pref"] += 180.0
    if "pref" in params:
        params["pref"] %= 180.0 if model == "von_mises" else 360.0
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return Fit(model, params, 1.0 - best_sse / ss_tot if ss_tot > 0 else 0.0)
