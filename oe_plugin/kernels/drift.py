"""Drift correction by interpolating the channels (kriging, as in Kilosort 2.5 / SpikeInterface's
``interpolate_motion``), from precomputed weight tables.

A channel at ``(x, y)`` whose probe has moved by ``d`` (see :mod:`oe_plugin.kernels.motion`)
gets the raw field at ``(x, y + d)``, interpolated from every channel with the kriging weights
``K(q, S) (K(S, S) + eps I)^-1`` of the kernel ``exp(-|q - s| / sigma_um)``; inside the probe the
weights are normalised to sum 1, outside they decay as the kernel does (no copy of an edge
channel). Only each row's ``n_taps`` largest weights are kept (renormalised to the row's sum).

The weights depend only on the channel and its displacement, so they are tabulated once per
channel on a grid of displacements (``step_um``); a block then needs only each channel's grid
index, which is what makes the same kernel usable online (no allocation, no Python objects): the
caller picks the index, :func:`apply_channel_weights` mixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class DriftTables:
    """Weights for every channel and tabulated displacement.

    index : (C, G, K) int32 source channels; weight : (C, G, K) float32.
    displacement_um : (G,) float64, the grid (``-max_um .. +max_um`` by ``step_um``).
    """

    index: np.ndarray
    weight: np.ndarray
    displacement_um: np.ndarray

    @property
    def step_um(self) -> float:
        g = self.displacement_um
        return float(g[1] - g[0]) if len(g) > 1 else 1.0

    def grid_index(self, displacement_um) -> np.ndarray:
        """Nearest grid index for each displacement (clipped to the grid), int32."""
        g = self.displacement_um
        k = np.rint((np.asarray(displacement_um, np.float64) - g[0]) / self.step_um)
        return np.clip(k, 0, len(g) - 1).astype(np.int32)


def kriging_rows(positions_um: np.ndarray, targets_um: np.ndarray, sigma_um: float,
                 inverse: np.ndarray | None = None) -> np.ndarray:
    """Dense (n_targets, C) kriging weights (see the module docstring)."""
    pos = np.asarray(positions_um, np.float64)
    q = np.asarray(targets_um, np.float64)
    if inverse is None:
        kxx = np.exp(-np.linalg.norm(pos[:, None] - pos[None], axis=2) / sigma_um)
        inverse = np.linalg.pinv(kxx + 1e-6 * np.eye(len(pos)))
    kyx = np.exp(-np.linalg.norm(q[:, None] - pos[None], axis=2) / sigma_um)
    w = kyx @ inverse
    inside = np.ones(len(q), bool)
    for dim in range(pos.shape[1]):
        inside &= (q[:, dim] >= pos[:, dim].min() - 1e-9) & (q[:, dim] <= pos[:, dim].max() + 1e-9)
    s = w.sum(axis=1)
    w[inside] /= s[inside, None]
    return w


def drift_tables(positions_um: np.ndarray, max_um: float, step_um: float = 0.5,
                 sigma_um: float = 20.0, n_taps: int = 8,
                 groups: np.ndarray | None = None) -> DriftTables:
    """Tables for displacements ``-max_um .. max_um`` (µm) by ``step_um``.

    groups : electrode group per channel (shanks, separate probes): a channel only mixes
        channels of its own group (default: one group).
    """
    pos = np.asarray(positions_um, np.float64)
    c_n = len(pos)
    grid = np.arange(-max_um, max_um + step_um / 2, step_um)
    taps = min(n_taps, c_n)
    index = np.zeros((c_n, len(grid), taps), np.int32)
    weight = np.zeros((c_n, len(grid), taps), np.float32)
    groups = np.zeros(c_n, np.int64) if groups is None else np.asarray(groups)
    for grp in np.unique(groups):
        members = np.flatnonzero(groups == grp)
        sub = pos[members]
        kxx = np.exp(-np.linalg.norm(sub[:, None] - sub[None], axis=2) / sigma_um)
        inv = np.linalg.pinv(kxx + 1e-6 * np.eye(len(sub)))
        k = min(taps, len(members))
        for g, d in enumerate(grid):
            q = sub + np.array([0.0, d])
            w = kriging_rows(sub, q, sigma_um, inv)
            top = np.argsort(-np.abs(w), axis=1)[:, :k]
            wt = np.take_along_axis(w, top, axis=1)
            kept = wt.sum(axis=1)
            full = w.sum(axis=1)
            wt *= np.where(np.abs(kept) > 1e-12, full / np.where(kept == 0, 1, kept), 1)[:, None]
            index[members, g, :k] = members[top]
            weight[members, g, :k] = wt
            if k < taps:
                index[members, g, k:] = members[top[:, :1]]
    return DriftTables(index, weight, grid)


@numba.njit(cache=True, error_model="numpy", nogil=True)
def apply_channel_weights(x, index, weight, grid_index, col0, col1, out):
    """out[c, col0:col1] = sum_k weight[c, g_c, k] * x[index[c, g_c, k], col0:col1].

    x, out : (C, n) float32, distinct arrays. grid_index : (C,) int32, each channel's row of the
    tables (clipped to the table). Columns outside [col0, col1) are left as they are.
    """
    c_n = out.shape[0]
    n_g = index.shape[1]
    n_k = index.shape[2]
    for c in range(c_n):
        g = min(max(grid_index[c], 0), n_g - 1)
        for s in range(col0, col1):
            out[c, s] = 0.0
        for k in range(n_k):
            w = weight[c, g, k]
            if w == 0.0:
                continue
            src = index[c, g, k]
            for s in range(col0, col1):
                out[c, s] += w * x[src, s]


def correct_block(x: np.ndarray, first_sample: int, sample_rate_hz: float, motion,
                  tables: DriftTables, positions_um: np.ndarray, bin_s: float) -> np.ndarray:
    """Drift-corrected copy of ``x`` (C, n) float32 whose column 0 is stream sample
    ``first_sample``: displacement held constant within each ``bin_s`` interpolation bin (taken
    at the bin's centre), so any cut of the stream into blocks gives the same samples."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    n = x.shape[1]
    bin_n = max(1, int(round(bin_s * sample_rate_hz)))
    depth = np.asarray(positions_um, np.float64)[:, 1]
    col = 0
    while col < n:
        b = (first_sample + col) // bin_n
        end = min(n, (b + 1) * bin_n - first_sample)
        centre_s = (b + 0.5) * bin_n / sample_rate_hz
        disp = motion.at(np.full(len(depth), centre_s), depth)
        apply_channel_weights(x, tables.index, tables.weight, tables.grid_index(disp), col, end,
                              out)
        col = end
    return out
