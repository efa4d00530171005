"""Population codes: binary spike words in time bins and pairwise correlations."""

from __future__ import annotations

import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.correlograms import _normalise_trains
from offline.analysis.result import AnalysisResult


class CodesResult(AnalysisResult):
    """Binary spike codes (neuropy's ``Codes``).

    Attributes
    ----------
    codes : int8 (n_units, n_bins) — 1 if the unit fired at least once in the bin.
    bin_edges_s : float64 (n_bins + 1,) — bins aligned to whole multiples of ``bin_ms``.
    unit_ids : list
    """

    compute = staticmethod(lambda **kw: compute_codes(**kw))

    def words(self) -> np.ndarray:
        """Each bin's population word as an integer, unit 0 = least significant bit, int64."""
        weights = (1 << np.arange(self.codes.shape[0], dtype=np.int64))
        return weights @ self.codes.astype(np.int64)

    def plot(self, ax=None, max_bins: int = 500):
        ax = new_axes(ax, figsize=(6, 2.5))
        ax.imshow(self.codes[:, :max_bins], aspect="auto", cmap="Greys", interpolation="nearest")
        ax.set_xlabel(f"bin ({self.settings['bin_ms']:g} ms)")
        ax.set_ylabel("unit")
        return ax


def compute_codes(trains, *, bin_ms: float = 20.0, t_start_s: float | None = None,
                  t_stop_s: float | None = None, unit_ids=None) -> CodesResult:
    """Binary codes of several spike trains (seconds) in bins of ``bin_ms``."""
    arrays, ids = _normalise_trains(trains, unit_ids)
    arrays = [np.asarray(a, np.float64) for a in arrays]
    nonempty = [a for a in arrays if a.size]
    b = bin_ms * 1e-3
    t0 = t_start_s if t_start_s is not None else (
        np.floor(min(a.min() for a in nonempty) / b) * b if nonempty else 0.0)
    t1 = t_stop_s if t_stop_s is not None else (
        (np.floor(max(a.max() for a in nonempty) / b) + 1) * b if nonempty else t0 + b)
    n = max(1, int(np.ceil((t1 - t0) / b - 1e-9)))
    edges = t0 + np.arange(n + 1) * b
    codes = np.zeros((len(arrays), n), np.int8)
    for i, a in enumerate(arrays):
        k = np.floor((a - t0) / b).astype(np.int64)
        k = k[(k >= 0) & (k < n)]
        codes[i, k] = 1
    settings = dict(bin_ms=bin_ms, t_start_s=t_start_s, t_stop_s=t_stop_s, unit_ids=unit_ids)
    return CodesResult({"trains": trains}, settings, codes=codes, bin_edges_s=edges,
                       unit_ids=ids)


class PairwiseCorrelationResult(AnalysisResult):
    """Pearson correlation of binned spike counts (or binary codes) for every pair.

    Attributes
    ----------
    matrix : float64 (U, U) — correlation coefficients (NaN for silent units).
    pairs : float64 (U (U - 1) / 2,) — the upper triangle.
    unit_ids : list
    """

    compute = staticmethod(lambda **kw: compute_pairwise_correlations(**kw))

    def plot(self, ax=None, n_bins: int = 30):
        ax = new_axes(ax, figsize=(3.6, 2.8))
        r = self.pairs[np.isfinite(self.pairs)]
        ax.hist(r, bins=n_bins, color="0.3")
        if r.size:
            ax.axvline(float(np.mean(r)), color="C3", lw=1)
        ax.set_xlabel("correlation coefficient")
        ax.set_ylabel("pairs")
        ax.set_title(f"{r.size} pairs, mean {np.mean(r) if r.size else np.nan:.3f} "
                     f"({self.settings['bin_ms']:g} ms bins)", fontsize=9)
        return ax


def compute_pairwise_correlations(trains, *, bin_ms: float = 20.0, binary: bool = True,
                                  t_start_s: float | None = None, t_stop_s: float | None = None,
                                  unit_ids=None) -> PairwiseCorrelationResult:
    """Pairwise correlation coefficients of binary codes (``binary``) or spike counts."""
    arrays, ids = _normalise_trains(trains, unit_ids)
    c = compute_codes(arrays, bin_ms=bin_ms, t_start_s=t_start_s, t_stop_s=t_stop_s)
    if binary:
        x = c.codes.astype(np.float64)
    else:
        x = np.array([np.histogram(np.asarray(a, np.float64), c.bin_edges_s)[0]
                      for a in arrays], np.float64).reshape(len(arrays), -1)
    x = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((x**2).mean(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        m = (x @ x.T) / x.shape[1] / np.outer(sd, sd)
    iu = np.triu_indices(len(arrays), 1)
    settings = dict(bin_ms=bin_ms, binary=binary, t_start_s=t_start_s, t_stop_s=t_stop_s,
                    unit_ids=unit_ids)
    return PairwiseCorrelationResult({"trains": trains}, settings, matrix=m, pairs=m[iu],
                                     unit_ids=ids)
