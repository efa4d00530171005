"""Gamma: fit the monitor's luminance curve and invert it.

A monitor's luminance for a drive value ``v`` in [0, 1] is modelled as
``L(v) = L_min + (L_max - L_min) * v ** gamma``. Stimuli ask for a *linear* luminance ``l`` in
[0, 1] (0 = black, 1 = white, 0.5 = the mean of the two); the display shader sends
``v = l ** (1 / gamma)`` so that the light coming out is linear in ``l``. ``gamma = 1`` turns
the correction off (e.g. a monitor already linearised in its LUT).

``sweepstim gamma-fit LUMINANCE.csv`` reads photometer readings (columns: drive value in
[0, 1] or 0..255, luminance in cd/m²), fits ``gamma`` by least squares on the normalised
curve, and writes it into the rig config's ``[screen]`` section.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares


@dataclass(frozen=True)
class GammaFit:
    """Result of :func:`fit_gamma`: exponent, black and white luminance (cd/m²), RMS error
    of the fit in cd/m², and the number of points."""

    gamma: float
    lum_min: float
    lum_max: float
    rms_error: float
    n_points: int


def correct(lum, gamma: float):
    """Linear luminance in [0, 1] -> drive value in [0, 1] (``lum ** (1/gamma)``); arrays ok."""
    return np.clip(lum, 0.0, 1.0) ** (1.0 / gamma)


def read_luminance_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read (drive value, luminance) pairs from a CSV; a header row is skipped; drive values
    above 1 are taken as 0..255 levels. Returns float64 arrays of shape (n,)."""
    values, lums = [], []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            cells = [c.strip() for c in row if c.strip()]
            if not cells or cells[0].startswith("#"):
                continue
            try:
                v, lum = float(cells[0]), float(cells[1])
            except (ValueError, IndexError):
                if not values:
                    continue  # a header
                raise ValueError(f"{path}: bad row {row!r} (want: value, luminance)") from None
            values.append(v)
            lums.append(lum)
    if len(values) < 3:
        raise ValueError(f"{path}: need at least 3 (value, luminance) rows, got {len(values)}")
    v = np.asarray(values, float)
    if v.max() > 1.0:
        v = v / 255.0
    return v, np.asarray(lums, float)


def fit_gamma(values, luminance) -> GammaFit:
    """Least-squares fit of ``L = a + b * v ** gamma`` to photometer readings.

    Parameters
    ----------
    values : array (n,), drive values in [0, 1]
    luminance : array (n,), cd/m²
    """
    v = np.asarray(values, float)
    lum = np.asarray(luminance, float)
    if v.shape != lum.shape or v.size < 3:
        raise ValueError("need at least 3 matching (value, luminance) points")
    if np.ptp(lum) <= 0:
        raise ValueError("luminance does not change with the drive value")

    def resid(p):
        a, b, g = p
        return a + b * np.power(np.clip(v, 0, 1), g) - lum

    p0 = [lum.min(), np.ptp(lum), 2.2]
    res = least_squares(resid, p0, bounds=([-np.inf, 0, 0.2], [np.inf, np.inf, 6.0]))
    a, b, g = res.x
    rms = float(np.sqrt(np.mean(res.fun ** 2)))
    return GammaFit(float(g), float(a), float(a + b), rms, int(v.size))
