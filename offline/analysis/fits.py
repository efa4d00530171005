"""Tuning-curve models and least-squares fits (scipy.optimize.least_squares).

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


def _jac_von_mises(x, b, a, k, pref):
    d2 = 2 * np.deg2rad(x - pref)
    c = np.cos(d2)
    e = np.exp(k * (c - 1))
    return np.column_stack([np.ones_like(x), e, a * e * (c - 1),
                            a * e * k * np.sin(d2) * (np.pi / 90)])


def _jac_von_mises_direction(x, b, a1, a2, k, pref):
    r = np.deg2rad(x - pref)
    c, s = np.cos(r), np.sin(r)
    e1 = np.exp(k * (c - 1))
    e2 = np.exp(k * (-c - 1))
    return np.column_stack([np.ones_like(x), e1, e2, a1 * e1 * (c - 1) + a2 * e2 * (-c - 1),
                            (a1 * e1 - a2 * e2) * k * s * (np.pi / 180)])


def _jac_gaussian(x, b, a, mu, sigma):
    d = x - mu
    g = np.exp(-(d**2) / (2 * sigma**2))
    return np.column_stack([np.ones_like(x), g, a * g * d / sigma**2, a * g * d**2 / sigma**3])


def _jac_log_gaussian(x, b, a, mu, sigma):
    d = np.log2(np.maximum(x, 1e-12)) - np.log2(mu)
    g = np.exp(-(d**2) / (2 * sigma**2))
    return np.column_stack([np.ones_like(x), g, a * g * d / (sigma**2 * mu * np.log(2)),
                            a * g * d**2 / sigma**3])


_JACOBIANS = {"von_mises": _jac_von_mises, "von_mises_direction": _jac_von_mises_direction,
              "gaussian": _jac_gaussian, "log_gaussian": _jac_log_gaussian}


def _grid_starts(model, x, y, w, grid, n_starts: int = 4, min_apart: float = 20.0,
                 period: float | None = None):
    """Starting points from a grid of the model's nonlinear parameters ``grid`` (G, 2), the
    linear ones (baseline, amplitudes) solved in closed form at each grid point (weighted least
    squares, weights ``w`` (n,)); grid points with a negative amplitude are skipped. Returns up
    to ``n_starts`` full parameter vectors (the model's order), best first, whose second
    nonlinear parameter (preferred angle or width) lies at least ``min_apart`` grid steps from
    the others' (distinct basins)."""
    g0, g1 = grid[:, 0:1], grid[:, 1:2]  # (G, 1)
    if model == "von_mises":  # (k, pref)
        cols = [np.exp(g0 * (np.cos(2 * np.deg2rad(x - g1)) - 1))]
    elif model == "von_mises_direction":  # (k, pref)
        c = np.cos(np.deg2rad(x - g1))
        cols = [np.exp(g0 * (c - 1)), np.exp(g0 * (-c - 1))]
    elif model == "gaussian":  # (mu, sigma)
        cols = [np.exp(-((x - g0) ** 2) / (2 * g1**2))]
    else:  # log_gaussian: (mu, sigma)
        cols = [np.exp(-((np.log2(x) - np.log2(g0)) ** 2) / (2 * g1**2))]
    basis = np.stack([np.ones_like(cols[0])] + cols, axis=2) * w[None, :, None]  # (G, n, m)
    yw = y * w
    ata = np.einsum("gni,gnj->gij", basis, basis)
    ata += np.eye(ata.shape[1]) * (1e-9 * np.trace(ata, axis1=1, axis2=2))[:, None, None]
    lin = np.linalg.solve(ata, np.einsum("gni,n->gi", basis, yw)[..., None])[..., 0]
    sse = np.sum((np.einsum("gnm,gm->gn", basis, lin) - yw) ** 2, axis=1)
    sse[np.any(lin[:, 1:] < 0, axis=1) | ~np.isfinite(sse)] = np.inf
    if period is not None:  # (k, pref)
        key, apart = grid[:, 1] % period, min_apart
    else:  # (mu, sigma): distance in percent of the centres' range (log for log_gaussian)
        c = np.log(grid[:, 0]) if model == "log_gaussian" else grid[:, 0]
        key, apart = (c - c.min()) / (np.ptp(c) or 1.0) * 100.0, min_apart
    starts, taken = [], []
    for g in np.argsort(sse, kind="stable"):
        if not np.isfinite(sse[g]) or len(starts) == n_starts:
            break
        d = np.abs(np.asarray(taken) - key[g])
        if period is not None:
            d = np.minimum(d, period - d)
        if np.any(d < apart):
            continue
        taken.append(key[g])
        starts.append([lin[g, 0], *lin[g, 1:], grid[g, 0], grid[g, 1]] if model.startswith(
            "von_mises") else [lin[g, 0], lin[g, 1], grid[g, 0], grid[g, 1]])
    return starts


def bounds_for(model: str, x) -> tuple[list, list]:
    """The fit's parameter bounds (lower, upper; the model's parameter order) for values ``x``:
    non-negative amplitudes, concentration 0.01-100, a centre within a span of the values, a
    width from 1 % of the span to 10 spans (0.05-10 octaves for ``log_gaussian``)."""
    x = np.asarray(x, np.float64)
    if model == "von_mises":
        return [-np.inf, 0, 0.01, -360], [np.inf, np.inf, 100, 720]
    if model == "von_mises_direction":
        return [-np.inf, 0, 0, 0.01, -720], [np.inf, np.inf, np.inf, 100, 1080]
    if model == "gaussian":
        span = float(np.ptp(x)) or 1.0
        return ([-np.inf, 0, x.min() - span, span / 100],
                [np.inf, np.inf, x.max() + span, 10 * span])
    if model == "log_gaussian":
        pos = x[x > 0]
        return [-np.inf, 0, pos.min() / 8, 0.05], [np.inf, np.inf, pos.max() * 8, 10]
    raise ValueError(f"unknown model {model!r}; one of {sorted(MODELS)}")


def fit_tuning(x, y, model: str, weights=None, max_nfev: int = 100) -> Fit | None:
    """Fit ``model`` to mean rates ``y`` at values ``x`` (1-D, same length), within
    :func:`bounds_for`; ``weights`` (n,): 1 / sigma of each mean.

    Starting points: the best points of a grid over the nonlinear parameters (concentration x
    preferred angle, or centre x width) in distinct basins, the baseline and amplitudes solved
    in closed form at each grid point (:func:`_grid_starts`), and the largest responses. Each
    start gets 30 steps of bounded least squares (analytical Jacobian), the best one is refined
    to convergence (at most ``max_nfev`` evaluations). Returns None when the fit fails or there
    are fewer points than parameters.
    """
    from scipy.optimize import least_squares

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; one of {sorted(MODELS)}")
    fn, names = MODELS[model]
    if x.size < len(names) or not np.all(np.isfinite(y)):
        return None
    if model == "log_gaussian" and np.count_nonzero(x > 0) < len(names):
        return None
    bounds = bounds_for(model, x)
    lo_y, amp = float(y.min()), max(float(np.ptp(y)), 1e-6)
    top = x[np.argsort(y)[::-1][:3]]
    w = np.ones_like(x) if weights is None else np.maximum(np.asarray(weights, float), 1e-9)
    kappa = np.geomspace(0.05, 100.0, 20)
    if model == "von_mises":
        starts = [[lo_y, amp, 2.0, p % 180] for p in top]
        grid = _mesh(kappa, np.arange(0.0, 180.0, 3.0))
    elif model == "von_mises_direction":
        starts = [[lo_y, amp, amp / 2, 2.0, p % 360] for p in top]
        grid = _mesh(kappa, np.arange(0.0, 360.0, 5.0))
    elif model == "gaussian":
        span = float(np.ptp(x)) or 1.0
        starts = [[lo_y, amp, p, span / 4] for p in top]
        grid = _mesh(np.linspace(x.min() - span / 2, x.max() + span / 2, 41),
                     np.geomspace(span / 50, 2 * span, 16))
    else:
        pos = x[x > 0]
        starts = [[lo_y, amp, p, 1.0] for p in top if p > 0]
        grid = _mesh(np.geomspace(pos.min() / 4, pos.max() * 4, 41), np.geomspace(0.1, 5.0, 16))
    starts = _grid_starts(model, np.maximum(x, 1e-12) if model == "log_gaussian" else x, y, w,
                          grid, period=180.0 if model.startswith("von_mises") else None) + starts
    jac = _JACOBIANS[model]
    lo_b = [b + 1e-9 if np.isfinite(b) else -1e300 for b in bounds[0]]
    hi_b = [b - 1e-9 if np.isfinite(b) else 1e300 for b in bounds[1]]

    def residual(p):
        return (fn(x, *p) - y) * w

    def refine(p0, n_eval):
        try:
            return least_squares(residual, np.clip(p0, lo_b, hi_b),
                                 jac=lambda p: jac(x, *p) * w[:, None], bounds=bounds,
                                 x_scale="jac", max_nfev=n_eval).x
        except ValueError:
            return None

    tried = [p for p in (refine(p0, 30) for p0 in starts) if p is not None]
    if not tried:
        return None
    best = refine(tried[int(np.argmin([np.sum(residual(p) ** 2) for p in tried]))], max_nfev)
    if best is None:
        return None
    best_sse = float(np.sum((fn(x, *best) - y) ** 2))
    params = dict(zip(names, (float(v) for v in best), strict=True))
    if model == "von_mises_direction" and params["a2"] > params["a1"]:
        params["a1"], params["a2"] = params["a2"], params["a1"]
        params["pref"] += 180.0
    if "pref" in params:
        params["pref"] %= 180.0 if model == "von_mises" else 360.0
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return Fit(model, params, 1.0 - best_sse / ss_tot if ss_tot > 0 else 0.0)


def _mesh(a, b) -> np.ndarray:
    """Every pair (a_i, b_j): float64 (len(a) * len(b), 2)."""
    aa, bb = np.meshgrid(np.asarray(a, np.float64), np.asarray(b, np.float64), indexing="ij")
    return np.column_stack([aa.ravel(), bb.ravel()])
