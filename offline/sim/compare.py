"""Sorted units against the ground truth: spike-time agreement and accuracy.

Accuracy (SpikeInterface's definition) of a ground-truth neuron against a unit: ``n_match /
(n_truth + n_unit − n_match)``, where matches pair spikes one to one within ``tol_ms`` after
removing the pair's constant offset (the sorter's spike time is its detection peak on the
filtered trace, not the raw template's trough: a fixed shift of a few samples per unit).
"""

from __future__ import annotations

import numpy as np


def count_matches(a: np.ndarray, b: np.ndarray, tol: int) -> int:
    """Greedy one-to-one matches between sorted int arrays within ±tol samples."""
    i = j = n = 0
    while i < a.size and j < b.size:
        d = b[j] - a[i]
        if d < -tol:
            j += 1
        elif d > tol:
            i += 1
        else:
            n += 1
            i += 1
            j += 1
    return n


def best_offset(a: np.ndarray, b: np.ndarray, max_lag: int) -> int:
    """The lag (samples) in [−max_lag, max_lag] at which most b spikes fall on a spikes."""
    if a.size == 0 or b.size == 0:
        return 0
    lo = np.searchsorted(b, a - max_lag)
    hi = np.searchsorted(b, a + max_lag, side="right")
    lags = np.concatenate([b[lo[k]:hi[k]] - a[k] for k in range(a.size)]) if a.size else []
    if len(lags) == 0:
        return 0
    counts = np.bincount(np.asarray(lags) + max_lag, minlength=2 * max_lag + 1)
    smooth = np.convolve(counts, np.ones(3), "same")
    return int(np.argmax(smooth)) - max_lag


def accuracy_matrix(truth: list[np.ndarray], units: dict, fs: float, tol_ms: float = 0.4,
                    max_lag_ms: float = 1.0) -> tuple[np.ndarray, list, np.ndarray]:
    """(accuracy (n_truth, n_units), unit ids, offsets (n_truth, n_units) in samples).

    ``truth``: per neuron, sorted sample indices; ``units``: {unit id: sorted sample indices}
    on the same clock.
    """
    ids = sorted(units)
    tol = int(round(tol_ms * 1e-3 * fs))
    max_lag = int(round(max_lag_ms * 1e-3 * fs))
    acc = np.zeros((len(truth), len(ids)))
    off = np.zeros((len(truth), len(ids)), np.int64)
    for j, u in enumerate(ids):
        b = np.asarray(units[u], np.int64)
        for i, a in enumerate(truth):
            # cheap screen: a coarse count first, the offset search only for candidates
            if count_matches(a, b, max_lag) < 0.2 * min(a.size, b.size):
                continue
            lag = best_offset(a, b, max_lag)
            m = count_matches(a + lag, b, tol)
            acc[i, j] = m / max(a.size + b.size - m, 1)
            off[i, j] = lag
    return acc, ids, off


def match_units(acc: np.ndarray, ids: list) -> list[tuple[int | None, float]]:
    """Per ground-truth neuron: its best unit (None if no unit shares any spike) and accuracy.

    One-to-one: pairs are taken in decreasing accuracy, each unit at most once.
    """
    out: list[tuple[int | None, float]] = [(None, 0.0)] * acc.shape[0]
    used_t, used_u = set(), set()
    for flat in np.argsort(acc, axis=None)[::-1]:
        i, j = np.unravel_index(flat, acc.shape)
        if acc[i, j] <= 0:
            break
        if i in used_t or j in used_u:
            continue
        used_t.add(i)
        used_u.add(j)
        out[i] = (ids[j], float(acc[i, j]))
    return out
