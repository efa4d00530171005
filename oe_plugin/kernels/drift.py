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

**Interpolated or extrapolated.** A channel whose displaced position ``(x, y + d)`` lies inside
the probe gets weights that sum to 1; outside, the weights decay and the corrected signal is
only a fraction of the field there (near the probe's ends after a large move). A (channel, grid
row) is *valid* when its weights sum to at least a limit (:func:`row_valid`,
:meth:`DriftTables.valid`): :data:`VALID_MIN_SUM` for the offline sort,
:data:`ONLINE_VALID_MIN_SUM` for the online sorter (today the same value); the template
matcher leaves a template's rows on channels that are not valid at the current displacement out
of its fit (:mod:`oe_plugin.kernels.match`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from oe_plugin.kernels._entry import (
    _make_view,
    arg_f32_2d,
    arg_i32_2d,
    arg_i64_1d,
    cfunc_entry,
)


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

    def valid(self, min_sum: float) -> np.ndarray:
        """(C, G) int32: 1 where the channel's correction at that grid row is interpolated
        (weights sum >= ``min_sum``: :data:`VALID_MIN_SUM` offline,
        :data:`ONLINE_VALID_MIN_SUM` online), 0 where it is extrapolated."""
        out = np.zeros(self.weight.shape[:2], np.int32)
        table_valid(np.ascontiguousarray(self.weight, np.float32), float(min_sum), out)
        return out

    def grid_index(self, displacement_um) -> np.ndarray:
        """Nearest grid index for each displacement (clipped to the grid), int32."""
        g = self.displacement_um
        k = np.rint((np.asarray(displacement_um, np.float64) - g[0]) / self.step_um)
        return np.clip(k, 0, len(g) - 1).astype(np.int32)


VALID_MIN_SUM = 0.5
"""The offline sort's rule: a channel's correction counts as interpolated (valid) when its
kriging weights sum to at least this (1 inside the probe; outside they decay with the distance to
the probe, ~exp(-distance / sigma_um): 0.5 is ~14 µm past the end at sigma 20 µm). Its error
thresholds are calibrated on chunks spread over the whole recording, so they already allow for
rows that read a slightly decayed field there, and those rows still carry the unit (0.9 cost 4
well-detected units over the six drifting tuning sorts)."""

ONLINE_VALID_MIN_SUM = 0.5
"""The online sorter's rule (and its offline causal reference's); a separate constant because its
thresholds come from the sort's first minutes, at small displacements, not from the whole
recording. 0.9 (~2 µm past the end) was tried in session 17 and is not better: on live mono64
tuning seed 2 it kept a 242 µV cell near the bottom end sorted over 25-32 µm of motion (its
rows ~14 µm past the end read the field 30-50 % low and failed its threshold) and lifted the
lowest 5-minute window from 0.90 to 0.93; on seed 101 (the same case, same sort for both rules)
it lost a 56 µV cell 8.6 µm below the end in the last window (27 -> 24, 1.00 -> 0.89).
Together -1 unit-window; so online stays with the offline rule."""


@numba.njit(cache=True, error_model="numpy", nogil=True)
def row_valid(weight, c, g, min_sum):
    """1 when channel ``c``'s correction at grid row ``g`` (clipped to the tables) is interpolated:
    its taps' weights (float64 sum in table order) >= ``min_sum``; else 0."""
    n_g = weight.shape[1]
    g = min(max(g, 0), n_g - 1)
    acc = 0.0
    for k in range(weight.shape[2]):
        acc += np.float64(weight[c, g, k])
    return 1 if acc >= min_sum else 0


@numba.njit(cache=True, error_model="numpy", nogil=True)
def table_valid(weight, min_sum, out):
    """``out[c, g] = row_valid(weight, c, g, min_sum)`` for every channel and grid row ((C, G)
    int32)."""
    for c in range(min(weight.shape[0], out.shape[0])):
        for g in range(min(weight.shape[1], out.shape[1])):
            out[c, g] = row_valid(weight, c, g, min_sum)


@numba.njit(cache=True, error_model="numpy", nogil=True)
def valid_bins(bin_grid, weight, min_sum, out):
    """``out[b, c] = row_valid(weight, c, bin_grid[b, c], min_sum)``: per interpolation bin,
    which channels' corrections are interpolated ((B, C) int32, the mask
    :func:`oe_plugin.kernels.match.match_events` takes)."""
    for b in range(min(bin_grid.shape[0], out.shape[0])):
        for c in range(min(bin_grid.shape[1], out.shape[1], weight.shape[0])):
            out[b, c] = row_valid(weight, c, bin_grid[b, c], min_sum)


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


@numba.njit(cache=True, error_model="numpy", nogil=True, inline="never")
def _pass4(o, first, cnt, m, w0, a0, w1, a1, w2, a2, w3, a3):
    """One pass of :func:`mix_columns` over ``cnt`` (1-4) taps: ``o = w0 a0 + ...`` (first
    pass) or ``o = o + w0 a0 + ...``, summed left to right (not inlined: see
    :func:`_taps8_set`)."""
    if cnt == 1:
        if first:
            for s in range(m):
                o[s] = w0 * a0[s]
        else:
            for s in range(m):
                o[s] = o[s] + w0 * a0[s]
    elif cnt == 2:
        if first:
            for s in range(m):
                o[s] = w0 * a0[s] + w1 * a1[s]
        else:
            for s in range(m):
                o[s] = o[s] + w0 * a0[s] + w1 * a1[s]
    elif cnt == 3:
        if first:
            for s in range(m):
                o[s] = w0 * a0[s] + w1 * a1[s] + w2 * a2[s]
        else:
            for s in range(m):
                o[s] = o[s] + w0 * a0[s] + w1 * a1[s] + w2 * a2[s]
    else:
        if first:
            for s in range(m):
                o[s] = w0 * a0[s] + w1 * a1[s] + w2 * a2[s] + w3 * a3[s]
        else:
            for s in range(m):
                o[s] = o[s] + w0 * a0[s] + w1 * a1[s] + w2 * a2[s] + w3 * a3[s]


@numba.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _rows8(x, xcol, m, s0, s1, s2, s3, s4, s5, s6, s7):
    """The views ``x[s, xcol:xcol+m]`` of rows ``s0 .. s7`` (for :func:`_taps8_set` /
    :func:`_taps8_add`)."""
    x1 = xcol + m
    return (x[s0, xcol:x1], x[s1, xcol:x1], x[s2, xcol:x1], x[s3, xcol:x1], x[s4, xcol:x1],
            x[s5, xcol:x1], x[s6, xcol:x1], x[s7, xcol:x1])


@numba.njit(cache=True, error_model="numpy", nogil=True, inline="never")
def _taps8_set(x, xcol, out, c, ocol, m, s0, s1, s2, s3, s4, s5, s6, s7, w0, w1, w2, w3, w4,
               w5, w6, w7):
    """``out[c, ocol:ocol+m] = w0 x[s0, xcol:xcol+m] + ... + w7 x[s7, ...]``, summed left to
    right in float32. A function of its own, never inlined, without flags, on purpose: with
    the row views taken here LLVM checks once that they do not overlap the output and
    vectorises the loop (inside :func:`mix_columns`, or with a first/next flag, the same loop
    ran 2-3x slower); the two arrays and the row numbers as arguments instead of nine row
    views made :func:`mix_columns` over 64 ch x 256 samples x 8 taps 8.6 -> 7.1 µs."""
    o = out[c, ocol:ocol + m]
    a0, a1, a2, a3, a4, a5, a6, a7 = _rows8(x, xcol, m, s0, s1, s2, s3, s4, s5, s6, s7)
    for s in range(m):
        o[s] = (w0 * a0[s] + w1 * a1[s] + w2 * a2[s] + w3 * a3[s] + w4 * a4[s]
                + w5 * a5[s] + w6 * a6[s] + w7 * a7[s])


@numba.njit(cache=True, error_model="numpy", nogil=True, inline="never")
def _taps8_add(x, xcol, out, c, ocol, m, s0, s1, s2, s3, s4, s5, s6, s7, w0, w1, w2, w3, w4,
               w5, w6, w7):
    """``out[c, ocol:ocol+m] += w0 x[s0, xcol:xcol+m] + ... + w7 x[s7, ...]`` (:func:`_taps8_set`
    for taps after the first eight), summed left to right after the output's value."""
    o = out[c, ocol:ocol + m]
    a0, a1, a2, a3, a4, a5, a6, a7 = _rows8(x, xcol, m, s0, s1, s2, s3, s4, s5, s6, s7)
    for s in range(m):
        o[s] = (o[s] + w0 * a0[s] + w1 * a1[s] + w2 * a2[s] + w3 * a3[s] + w4 * a4[s]
                + w5 * a5[s] + w6 * a6[s] + w7 * a7[s])


@numba.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _eight_taps_on(wr, ir, k, n_src):
    """Whether taps ``k .. k+7`` of a table row all take part (weight != 0, source in range)."""
    for j in range(k, k + 8):
        if wr[j] == 0.0 or ir[j] < 0 or ir[j] >= n_src:
            return False
    return True


@numba.njit(cache=True, error_model="numpy", nogil=True)
def mix_columns(x, xcol, out, ocol, m, index, weight, grid_row):
    """``out[c, ocol:ocol+m] = sum_k weight[c, g, k] * x[index[c, g, k], xcol:xcol+m]`` with
    ``g = grid_row[c]`` (clipped to the tables), taps summed in table order.

    x, out : (C_in, n) and (C, n') float32, distinct arrays. Taps of weight 0 (or a source
    outside ``x``) are left out. The taps are summed left to right in float32: eight at a time
    in one vectorised loop over contiguous row views (:func:`_taps8_set`; the usual 8-tap tables),
    a remainder four per pass (the same float32 operations in the same order whatever the
    grouping); a range outside either array does nothing (never raises).
    """
    c_n = out.shape[0]
    n_src = x.shape[0]
    n_g = index.shape[1]
    n_k = index.shape[2]
    if (m <= 0 or xcol < 0 or ocol < 0 or xcol + m > x.shape[1] or ocol + m > out.shape[1]
            or index.shape[0] < c_n or grid_row.shape[0] < c_n or n_src == 0):
        return
    x1 = xcol + m
    for c in range(c_n):
        g = min(max(grid_row[c], 0), n_g - 1)
        o = out[c, ocol:ocol + m]
        first = True
        k = 0
        wr = weight[c, g]
        ir = index[c, g]
        while k < n_k:
            if k + 8 <= n_k and _eight_taps_on(wr, ir, k, n_src):  # the usual case, no sorting
                if first:
                    _taps8_set(x, xcol, out, c, ocol, m, ir[k], ir[k + 1], ir[k + 2], ir[k + 3],
                               ir[k + 4], ir[k + 5], ir[k + 6], ir[k + 7], wr[k], wr[k + 1],
                               wr[k + 2], wr[k + 3], wr[k + 4], wr[k + 5], wr[k + 6], wr[k + 7])
                else:
                    _taps8_add(x, xcol, out, c, ocol, m, ir[k], ir[k + 1], ir[k + 2], ir[k + 3],
                               ir[k + 4], ir[k + 5], ir[k + 6], ir[k + 7], wr[k], wr[k + 1],
                               wr[k + 2], wr[k + 3], wr[k + 4], wr[k + 5], wr[k + 6], wr[k + 7])
                k += 8
                first = False
                continue
            cnt = 0
            w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = np.float32(0.0)
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0
            while k < n_k and cnt < 8:
                w = weight[c, g, k]
                src = index[c, g, k]
                k += 1
                if w == 0.0 or src < 0 or src >= n_src:
                    continue
                if cnt == 0:
                    w0, s0 = w, src
                elif cnt == 1:
                    w1, s1 = w, src
                elif cnt == 2:
                    w2, s2 = w, src
                elif cnt == 3:
                    w3, s3 = w, src
                elif cnt == 4:
                    w4, s4 = w, src
                elif cnt == 5:
                    w5, s5 = w, src
                elif cnt == 6:
                    w6, s6 = w, src
                else:
                    w7, s7 = w, src
                cnt += 1
            if cnt == 0:
                break
            if cnt == 8 and first:
                _taps8_set(x, xcol, out, c, ocol, m, s0, s1, s2, s3, s4, s5, s6, s7, w0, w1,
                           w2, w3, w4, w5, w6, w7)
            elif cnt == 8:
                _taps8_add(x, xcol, out, c, ocol, m, s0, s1, s2, s3, s4, s5, s6, s7, w0, w1,
                           w2, w3, w4, w5, w6, w7)
            else:
                a0 = x[s0, xcol:x1]
                a1 = x[s1, xcol:x1]
                a2 = x[s2, xcol:x1]
                a3 = x[s3, xcol:x1]
                _pass4(o, first, min(cnt, 4), m, w0, a0, w1, a1, w2, a2, w3, a3)
                if cnt > 4:
                    a4 = x[s4, xcol:x1]
                    a5 = x[s5, xcol:x1]
                    a6 = x[s6, xcol:x1]
                    _pass4(o, False, cnt - 4, m, w4, a4, w5, a5, w6, a6, w6, a6)
            first = False
        if first:
            for s in range(m):
                o[s] = 0.0


@numba.njit(cache=True, error_model="numpy", nogil=True)
def apply_channel_weights(x, index, weight, grid_index, col0, col1, out):
    """out[c, col0:col1] = sum_k weight[c, g_c, k] * x[index[c, g_c, k], col0:col1].

    x, out : (C, n) float32, distinct arrays. grid_index : (C,) int32, each channel's row of the
    tables (clipped to the table). Columns outside [col0, col1) are left as they are.
    """
    mix_columns(x, col0, out, col0, col1 - col0, index, weight, grid_index)


@numba.njit(cache=True, error_model="numpy", nogil=True)
def correct_columns(x, xcol, out, ocol, m, first_sample, bin_n, bin_grid, index, weight):
    """Drift-correct ``x[:, xcol:xcol+m]`` into ``out[:, ocol:ocol+m]``; column ``xcol`` is
    stream sample ``first_sample``. Sample ``s`` lies in interpolation bin ``s // bin_n``, whose
    grid row is ``bin_grid[bin]`` (bins past the table's end hold its last row, bins before 0
    its first). Without a usable table (``bin_n <= 0``, no rows, fewer channels than ``out``)
    the columns are copied unchanged. Never raises, allocates nothing."""
    c_n = out.shape[0]
    if (m <= 0 or xcol < 0 or ocol < 0 or xcol + m > x.shape[1] or ocol + m > out.shape[1]
            or x.shape[0] < c_n):
        return
    n_b = bin_grid.shape[0]
    if bin_n <= 0 or n_b == 0 or bin_grid.shape[1] < c_n or index.shape[0] < c_n:
        for c in range(c_n):
            src = x[c, xcol:xcol + m]
            dst = out[c, ocol:ocol + m]
            for s in range(m):
                dst[s] = src[s]
        return
    col = 0
    while col < m:
        t = first_sample + col
        b = t // bin_n
        if b >= n_b - 1:
            end = m  # the last row holds to the end of the block
        else:
            end = min(m, (b + 1) * bin_n - first_sample)
        row = min(max(b, 0), n_b - 1)
        mix_columns(x, xcol + col, out, ocol + col, end - col, index, weight, bin_grid[row])
        col = end


@numba.njit(cache=True, error_model="numpy", nogil=True)
def correct_block_binned(x, out, first_sample, bin_n, bin_grid, index, weight):
    """``out`` (C, n) = drift-corrected ``x`` (C, n) float32, column 0 = stream sample
    ``first_sample`` (see :func:`correct_columns`). Any cut of the stream into blocks gives the
    same samples."""
    m = min(x.shape[1], out.shape[1])
    correct_columns(x, 0, out, 0, m, first_sample, bin_n, bin_grid, index, weight)


arg_i32_3d = _make_view(np.int32, 3)
arg_f32_3d = _make_view(np.float32, 3)

# correct_entry's int64 parameters (argument 2)
DP_FIRST_SAMPLE = 0
DP_BIN_N = 1
N_DPARAMS = 2


def _correct_entry(addresses, shapes):
    p = arg_i64_1d(addresses, shapes, 2)
    correct_block_binned(arg_f32_2d(addresses, shapes, 0), arg_f32_2d(addresses, shapes, 1),
                         p[DP_FIRST_SAMPLE], p[DP_BIN_N], arg_i32_2d(addresses, shapes, 3),
                         arg_i32_3d(addresses, shapes, 4), arg_f32_3d(addresses, shapes, 5))
    return 0


correct_entry = cfunc_entry(_correct_entry)
"""C entry (GIL-free) over :func:`correct_block_binned`; arguments through an
:class:`~oe_plugin.kernels._entry.ArgTable`: ``x`` (C, n) f32, ``out`` (C, n) f32, params (2,)
int64 ``[first_sample, bin_n]``, ``bin_grid`` (B, C) int32, ``index`` (C, G, K) int32,
``weight`` (C, G, K) float32."""


def bin_count(motion, sample_rate_hz: float, bin_n: int) -> int:
    """Interpolation bins that cover ``motion``: the last one starts at or after the estimate's
    last time, so it and every later bin have the held end displacement."""
    t_end = float(np.max(motion.time_s)) if len(motion.time_s) else 0.0
    return int(math.floor(max(t_end, 0.0) * sample_rate_hz / bin_n)) + 2


def displacement_at(motion, time_s: np.ndarray, depth_um: np.ndarray) -> np.ndarray:
    """(T, C) displacement (µm) at every time x every channel depth: the motion linear between
    its time bins and held at the ends, then linear along depth between its windows (held at
    the ends) — :meth:`Motion.at` on the outer product, vectorised."""
    t = np.asarray(time_s, np.float64).ravel()
    d = np.asarray(depth_um, np.float64).ravel()
    win = np.asarray(motion.depth_um, np.float64)
    per_t = np.empty((len(t), len(win)))
    for b in range(len(win)):
        per_t[:, b] = np.interp(t, motion.time_s, motion.displacement_um[:, b])
    if len(win) == 1:
        return np.repeat(per_t[:, :1], len(d), axis=1)
    out = np.empty((len(t), len(d)))
    for c, y in enumerate(d):
        j = int(np.clip(np.searchsorted(win, y, side="right") - 1, 0, len(win) - 2))
        if y <= win[0]:
            out[:, c] = per_t[:, 0]
        elif y >= win[-1]:
            out[:, c] = per_t[:, -1]
        else:
            f = (y - win[j]) / (win[j + 1] - win[j])
            out[:, c] = per_t[:, j] + f * (per_t[:, j + 1] - per_t[:, j])
    return out


def motion_bin_grid(motion, tables: DriftTables, depth_um: np.ndarray, sample_rate_hz: float,
                    bin_n: int, first_bin: int = 0, n_bins: int | None = None) -> np.ndarray:
    """(B, C) int32: the tables' grid row of every channel (depth ``depth_um``) in interpolation
    bins ``first_bin .. first_bin + B - 1`` of ``bin_n`` samples, the displacement taken at each
    bin's centre. ``n_bins`` None: every bin up to the end of the motion (:func:`bin_count`)."""
    if n_bins is None:
        n_bins = max(1, bin_count(motion, sample_rate_hz, bin_n) - first_bin)
    centres = (np.arange(first_bin, first_bin + n_bins) + 0.5) * bin_n / sample_rate_hz
    disp = displacement_at(motion, centres, depth_um)
    return np.ascontiguousarray(tables.grid_index(disp), np.int32)


def correct_block(x: np.ndarray, first_sample: int, sample_rate_hz: float, motion,
                  tables: DriftTables, positions_um: np.ndarray, bin_s: float) -> np.ndarray:
    """Drift-corrected copy of ``x`` (C, n) float32 whose column 0 is stream sample
    ``first_sample``: displacement held constant within each ``bin_s`` interpolation bin (taken
    at the bin's centre), so any cut of the stream into blocks gives the same samples.
    (The bins' grid rows by :func:`motion_bin_grid`, then :func:`correct_block_binned`.)"""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    n = x.shape[1]
    if n == 0:
        return out
    bin_n = max(1, int(round(bin_s * sample_rate_hz)))
    b0 = first_sample // bin_n
    b1 = (first_sample + n - 1) // bin_n
    depth = np.asarray(positions_um, np.float64)[:, 1]
    grid = motion_bin_grid(motion, tables, depth, sample_rate_hz, bin_n, b0, b1 - b0 + 1)
    correct_block_binned(x, out, first_sample - b0 * bin_n, bin_n, grid, tables.index,
                         tables.weight)
    return out
