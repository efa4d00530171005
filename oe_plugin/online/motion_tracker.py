"""Live motion tracking for the online sorter: what it takes from the sort folder, its state
arrays, and the offline reconstruction of the rows it applied.

Design (the kernel side is :mod:`oe_plugin.kernels.motion_track`; every choice is made so that
one kernel serves offline and online and so that the result does not depend on the blocks):

- **Estimator.** The offline one, reduced to "the current window against a fixed reference":
  the window's peaks (every classified event, localized by the sort's method on the corrected
  traces and moved back to the probe frame by the displacement that corrected it) form one
  depth raster (the sort's ``[motion] bin_um``, 3 µm Gaussian smoothing along depth, three
  amplitude classes with the reference peaks' log-amplitude terciles as edges), registered by
  the offline correlation core against the **reference raster**: the sort's stored peaks of its
  last ``track_reference_s``, moved to the sort's reference frame by the sort's own estimate.
  The lag is then the absolute displacement in the sort's convention, so no drift of the
  estimate accumulates (no chain of relative shifts). Non-rigid sorts: each of the sort's depth
  windows (same Gaussian windows as offline) registered too, each falling back to the rigid
  change when its own registration is weak.
- **Cost.** Localizing an event (the monopolar fit) costs ~2.5 µs; at most
  ``track_max_peaks_per_s`` events are localized (a token bucket on the events' stream times,
  block invariant), plenty for a raster, so a burst of activity does not add to the block.
- **Timing.** An update every ``track_every_s`` of stream samples, from the peaks of the last
  ``track_window_s`` that ended ``lag_n`` samples (~20 ms) before; computed in bounded pieces,
  one per ``process()`` call, applied at the next update sample. The estimate therefore
  describes the probe about ``track_window_s / 2 + track_every_s`` ago (the window's centre):
  shorter windows follow faster and are noisier. The first value is the sort's motion at its
  end.
- **Smoothing and safety.** An accepted estimate moves the applied value by ``track_smoothing``
  of the way (exponential smoothing, 1 = take it). Rejected — the last good value kept — when
  the correlation is below ``track_min_corr``, the rigid estimate jumps more than
  ``track_max_step_um`` from the last good one, or leaves ``±track_max_um`` (the drift tables
  are built to that range). The module reports the first rejection once (stderr) and counts all.

:func:`tracked_bin_grid` turns a recorded history (the statistics file's motion table, or
:attr:`Tracker.history_um`) back into the rows the module applied, with the kernel's own row
function, for :func:`offline.online_match.causal_sort`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oe_plugin.kernels import motion_track as TR
from oe_plugin.kernels.drift import DriftTables
from oe_plugin.kernels.localize import WORK_SIZE, neighbour_width
from oe_plugin.kernels.motion import (
    fill_raster,
    gauss_kernel,
    normalise_raster,
    smooth_depth,
)

SMOOTH_UM = 3.0  # depth smoothing of the rasters (the offline estimator's default)
AMPLITUDE_CLASSES = 3
LAG_PIECE_MACS = 50_000  # multiply-adds of one registration piece (~25-50 µs)


@dataclass(frozen=True)
class TrackSettings:
    """The ``[match] track_*`` settings (see :class:`oe_plugin.online.sorter_module.
    MatchSettings`)."""

    window_s: float = 10.0
    every_s: float = 1.0
    max_step_um: float = 10.0
    max_um: float = 60.0
    min_corr: float = 0.3
    smoothing: float = 0.5
    reference_s: float = 60.0
    min_peaks: int = 100
    max_peaks_per_s: float = 250.0
    history_s: float = 6 * 3600.0


@dataclass
class TrackModel:
    """What tracking takes from the sort folder (built by
    :func:`oe_plugin.online.match_model.load_sort_model`)."""

    settings: TrackSettings
    positions_um: np.ndarray  # (C, 2) float64
    loc_nb: tuple[np.ndarray, np.ndarray]  # CSR channels that localize a peak
    monopolar: bool
    bin_um: float
    edge_um: float  # lower edge of the raster's first depth bin
    n_depth: int
    cls_edges: np.ndarray  # (A - 1,) float64 log-amplitude class edges
    ref: np.ndarray  # (R, A, D) float64 normalised reference rasters (row 0 rigid)
    win_g: np.ndarray  # (R, D) float64 depth-window weights (row 0 ones)
    window_depth_um: np.ndarray  # (W,) the sort's motion depths
    initial_um: np.ndarray  # (W,) float64 the sort's motion at its end
    ch_map: np.ndarray  # (C, 2) int32
    ch_frac: np.ndarray  # (C,) float64
    n_reference_peaks: int


def channel_windows(window_depth_um: np.ndarray, channel_depth_um: np.ndarray):
    """(ch_map (C, 2) int32, ch_frac (C,) float64): each channel's displacement is
    ``p[lo] + frac (p[hi] - p[lo])`` — linear between the depth windows, held beyond the ends
    (as :func:`oe_plugin.kernels.drift.displacement_at`)."""
    win = np.asarray(window_depth_um, np.float64)
    y = np.asarray(channel_depth_um, np.float64)
    m = np.zeros((len(y), 2), np.int32)
    f = np.zeros(len(y), np.float64)
    if len(win) == 1:
        return m, f
    for c, d in enumerate(y):
        if d <= win[0]:
            m[c] = 0
        elif d >= win[-1]:
            m[c] = len(win) - 1
        else:
            j = int(np.clip(np.searchsorted(win, d, side="right") - 1, 0, len(win) - 2))
            m[c] = (j, j + 1)
            f[c] = (d - win[j]) / (win[j + 1] - win[j])
    return m, f


def reference_frame_depth(time_s, depth_um, motion) -> np.ndarray:
    """Peaks' depths moved to the sort's reference frame: ``y - displacement(t, y)``."""
    t = np.asarray(time_s, np.float64)
    y = np.asarray(depth_um, np.float64)
    win = np.asarray(motion.depth_um, np.float64)
    per = np.stack([np.interp(t, motion.time_s, motion.displacement_um[:, b])
                    for b in range(len(win))], axis=1)
    if len(win) == 1:
        return y - per[:, 0]
    m, f = channel_windows(win, y)
    rows = np.arange(len(y))
    lo, hi = per[rows, m[:, 0]], per[rows, m[:, 1]]
    return y - (lo + f * (hi - lo))


def raster_of(depth_um, amplitude, edge_um: float, bin_um: float, n_depth: int,
              cls_edges: np.ndarray) -> np.ndarray:
    """(A, D) float64 count raster of peaks (the online tracker's binning: same classes and
    depth bins)."""
    a = np.asarray(amplitude, np.float64)
    y = np.asarray(depth_um, np.float64)
    keep = np.isfinite(a) & np.isfinite(y) & (a > 0)
    a, y = a[keep], y[keep]
    n_a = len(cls_edges) + 1
    r = np.zeros((1, n_a, n_depth))
    cls = np.searchsorted(cls_edges, np.log(a)).astype(np.int64)
    fill_raster(np.zeros(len(a), np.int64), np.floor((y - edge_um) / bin_um).astype(np.int64),
                cls, np.ones(len(a)), r)
    return r[0]


def build_track_model(settings: TrackSettings, motion, peaks: dict, positions_um: np.ndarray,
                      loc_nb, monopolar: bool, bin_um: float, window_um: float) -> TrackModel:
    """The reference rasters etc. from the sort's motion estimate and stored peaks
    (``peaks``: ``time_s``, ``depth_um`` (probe frame), ``amplitude``)."""
    pos = np.asarray(positions_um, np.float64)
    ys = pos[:, 1]
    lo, hi = float(ys.min()), float(ys.max())
    pad = settings.max_um + 3 * SMOOTH_UM + bin_um
    edge = lo - pad
    n_d = int(np.ceil((hi - lo + 2 * pad) / bin_um)) + 1
    t = np.asarray(peaks["time_s"], np.float64)
    y = np.asarray(peaks["depth_um"], np.float64)
    a = np.asarray(peaks["amplitude"], np.float64)
    keep = np.isfinite(t) & np.isfinite(y) & np.isfinite(a) & (a > 0)
    if settings.reference_s > 0 and keep.any():
        keep &= t >= t[keep].max() - settings.reference_s
    t, y, a = t[keep], y[keep], a[keep]
    y_ref = reference_frame_depth(t, y, motion)
    la = np.log(a) if len(a) else np.zeros(0)
    qs = (np.quantile(la, np.linspace(0, 1, AMPLITUDE_CLASSES + 1)[1:-1]) if len(la)
          else np.zeros(AMPLITUDE_CLASSES - 1))
    cls_edges = np.ascontiguousarray(qs, np.float64)
    raw = raster_of(y_ref, a, edge, bin_um, n_d, cls_edges)
    skern = gauss_kernel(SMOOTH_UM / bin_um)
    smooth = np.zeros_like(raw)
    smooth_depth(raw, skern, smooth)
    win_depth = np.asarray(motion.depth_um, np.float64)
    n_w = len(win_depth)
    depth_axis = edge + (np.arange(n_d) + 0.5) * bin_um
    g = [np.ones(n_d)]
    if n_w > 1:  # the offline estimator's Gaussian windows, centred across the probe's span
        for c in np.linspace(lo, hi, n_w):
            g.append(np.exp(-0.5 * ((depth_axis - c) / (window_um / 2)) ** 2))
    win_g = np.ascontiguousarray(np.stack(g), np.float64)
    ref = np.zeros((len(g), smooth.shape[0], n_d))
    for k in range(len(g)):
        ref[k] = smooth * win_g[k][None, :]
        normalise_raster(ref[k])
    ch_map, ch_frac = channel_windows(win_depth, ys)
    return TrackModel(settings=settings, positions_um=np.ascontiguousarray(pos),
                      loc_nb=loc_nb, monopolar=bool(monopolar), bin_um=float(bin_um),
                      edge_um=float(edge), n_depth=n_d, cls_edges=cls_edges, ref=ref,
                      win_g=win_g, window_depth_um=win_depth,
                      initial_um=np.asarray(motion.displacement_um[-1], np.float64).copy(),
                      ch_map=ch_map, ch_frac=ch_frac, n_reference_peaks=int(len(t)))


def tracked_bin_grid(history_um: np.ndarray, ch_map, ch_frac, tables: DriftTables) -> np.ndarray:
    """(K, C) int32 drift-table rows of a recorded history (K, W) µm — the rows the module
    applied (row k on samples ``[k every_n, (k+1) every_n)``), by the kernel's own
    :func:`~oe_plugin.kernels.motion_track.grid_row`."""
    h = np.ascontiguousarray(history_um, np.float64)
    n_c = len(ch_frac)
    grid = np.zeros((max(h.shape[0], 1), n_c), np.int32)
    um = np.zeros(n_c)
    g = tables.displacement_um
    for k in range(h.shape[0]):
        TR.grid_row(h[k], np.ascontiguousarray(ch_map, np.int32),
                    np.ascontiguousarray(ch_frac, np.float64), float(g[0]), tables.step_um,
                    len(g), grid[k], um)
    return grid


class Tracker:
    """The tracking state arrays of one :class:`~oe_plugin.online.sorter_driver.OnlineSorter`
    (allocated once; ``arrays()`` in :func:`~oe_plugin.kernels.sort_kernel.sort_block`'s order
    after ``out_d``). ``Tracker.off(...)``: the placeholders when tracking is off."""

    def __init__(self, tm: TrackModel | None, tables: DriftTables | None, n_channels: int,
                 sample_rate_hz: float, lag_n: int, n_channels_pos: int | None = None):
        self.model = tm
        c = int(n_channels)
        self.tstate = np.zeros(TR.N_TSTATE, np.float64)
        self.sample_rate_hz = float(sample_rate_hz)
        if tables is not None:
            self.tstate[TR.TS_GRID0_UM] = float(tables.displacement_um[0])
            self.tstate[TR.TS_GRID_STEP_UM] = tables.step_um
        self.tables = tables
        if tm is None:
            self.every_n = 0
            self.pk_t = np.zeros(1, np.int64)
            self.pk_v = np.zeros((1, 2), np.float32)
            self.positions = np.zeros((1, 2), np.float64)
            self.loc_ptr = np.zeros(1, np.int32)
            self.loc_idx = np.zeros(1, np.int32)
            self.loc_work = np.zeros(1, np.float64)
            self.cls_edges = np.zeros(1, np.float64)
            self.rast = np.zeros((3, 1, 1), np.float64)
            self.ref = np.zeros((1, 1, 1), np.float64)
            self.win_g = np.zeros((1, 1), np.float64)
            self.skern = np.ones(1, np.float64)
            self.cc = np.zeros(1, np.float64)
            self.pval = np.zeros((4, 1), np.float64)
            self.ch_map = np.zeros((1, 2), np.int32)
            self.ch_frac = np.zeros(1, np.float64)
            self.chd = np.zeros((2, 1), np.float64)
            self.hist = np.zeros((1, 1), np.float64)
            self.l_index = np.zeros((1, 1, 1), np.int32)
            self.l_weight = np.zeros((1, 1, 1), np.float32)
            self.l_grid = np.zeros((1, 1), np.int32)
            return
        s = tm.settings
        fs = self.sample_rate_hz
        ts = self.tstate
        self.every_n = max(1, int(round(s.every_s * fs)))
        ts[TR.TS_ON] = 1.0
        ts[TR.TS_EVERY_N] = self.every_n
        ts[TR.TS_LAG_N] = int(lag_n)
        ts[TR.TS_WINDOW_N] = int(round(s.window_s * fs))
        ts[TR.TS_BIN_UM] = tm.bin_um
        ts[TR.TS_EDGE_UM] = tm.edge_um
        ts[TR.TS_MAX_STEP_UM] = s.max_step_um
        ts[TR.TS_MIN_CORR] = s.min_corr
        grid = tables.displacement_um
        ts[TR.TS_MAX_UM] = min(s.max_um, float(grid[-1]), -float(grid[0]))
        ts[TR.TS_HALF_WINDOW] = 2
        ts[TR.TS_MONOPOLAR] = 1.0 if tm.monopolar else 0.0
        ts[TR.TS_MIN_PEAKS] = s.min_peaks
        ts[TR.TS_ALPHA] = s.smoothing
        ts[TR.TS_MAX_LAG] = int(math.ceil(s.max_um / tm.bin_um))
        n_a = tm.ref.shape[1]
        ts[TR.TS_LAG_CHUNK] = max(1, int(LAG_PIECE_MACS // max(n_a * tm.n_depth, 1)))
        width = neighbour_width(tm.loc_nb[0])
        ts[TR.TS_LOC_WIDTH] = width
        ts[TR.TS_PEAK_RATE] = s.max_peaks_per_s / fs
        ts[TR.TS_PEAK_BURST] = max(1.0, s.max_peaks_per_s * 0.05)  # 50 ms worth
        # the budget bounds the pushes: a window plus three updates' worth always fits
        cap = int(math.ceil((s.window_s + 3 * s.every_s) * s.max_peaks_per_s
                            + ts[TR.TS_PEAK_BURST])) + 64
        self.pk_t = np.zeros(cap, np.int64)
        self.pk_v = np.zeros((cap, 2), np.float32)
        self.positions = np.ascontiguousarray(tm.positions_um, np.float64)
        self.loc_ptr = np.ascontiguousarray(tm.loc_nb[0], np.int32)
        self.loc_idx = np.ascontiguousarray(tm.loc_nb[1], np.int32)
        self.loc_work = np.zeros(3 * width + 5 + WORK_SIZE, np.float64)
        self.cls_edges = (np.ascontiguousarray(tm.cls_edges, np.float64) if len(tm.cls_edges)
                          else np.zeros(1, np.float64) + np.inf)
        n_a = tm.ref.shape[1]
        self.rast = np.zeros((3, n_a, tm.n_depth), np.float64)
        self.ref = np.ascontiguousarray(tm.ref, np.float64)
        self.win_g = np.ascontiguousarray(tm.win_g, np.float64)
        self.skern = np.ascontiguousarray(gauss_kernel(SMOOTH_UM / tm.bin_um), np.float64)
        self.cc = np.zeros(2 * int(ts[TR.TS_MAX_LAG]) + 1, np.float64)
        n_w = len(tm.window_depth_um)
        self.pval = np.zeros((4, n_w), np.float64)
        self.ch_map = np.ascontiguousarray(tm.ch_map, np.int32)
        self.ch_frac = np.ascontiguousarray(tm.ch_frac, np.float64)
        self.chd = np.zeros((2, c), np.float64)
        n_hist = int(math.ceil(s.history_s / s.every_s)) + 2
        self.hist = np.zeros((n_hist, n_w), np.float64)
        n_k = tables.index.shape[2]
        self.l_index = np.zeros((c, 1, n_k), np.int32)
        self.l_weight = np.zeros((c, 1, n_k), np.float32)
        self.l_grid = np.zeros((1, c), np.int32)
        self._channels = np.arange(c)
        self._initial_row = np.zeros(c, np.int32)
        self._initial_um = np.zeros(c, np.float64)
        g = tables.displacement_um
        TR.grid_row(tm.initial_um, self.ch_map, self.ch_frac, float(g[0]), tables.step_um,
                    len(g), self._initial_row, self._initial_um)
        self.reported_rejections = 0

    @property
    def on(self) -> bool:
        return self.model is not None

    def arrays(self) -> tuple:
        return (self.tstate, self.pk_t, self.pk_v, self.positions, self.loc_ptr, self.loc_idx,
                self.loc_work, self.cls_edges, self.rast, self.ref, self.win_g, self.skern,
                self.cc, self.pval, self.ch_map, self.ch_frac, self.chd, self.hist,
                self.l_index, self.l_weight, self.l_grid)

    def reset(self, bin_grid: np.ndarray) -> None:
        """Back to the start of an acquisition: the sort's end value live (``bin_grid``'s one
        row), empty peak ring, history row 0 = that value. Plain numpy (no numba call: it runs
        in ``start_acquisition``, on whatever thread the host uses)."""
        if not self.on:
            return
        ts = self.tstate
        settings = ts[:TR.TS_NEXT_N].copy()
        ts[...] = 0.0
        ts[:TR.TS_NEXT_N] = settings
        ts[TR.TS_NEXT_N] = self.every_n
        ts[TR.TS_PHASE] = -1.0
        ts[TR.TS_RIGID_UM] = float(np.median(self.model.initial_um))
        if len(self.model.initial_um) == 1:
            ts[TR.TS_RIGID_UM] = float(self.model.initial_um[0])
        self.pval[...] = 0.0
        self.pval[TR.PV_GOOD] = self.model.initial_um
        self.hist[...] = 0.0
        self.hist[0] = self.model.initial_um
        ts[TR.TS_HIST_N] = 1.0
        ts[TR.TS_TOKENS] = ts[TR.TS_PEAK_BURST]
        bin_grid[0] = self._initial_row
        # the live taps in numpy (as TR.live_taps): reset() may run on a thread without the GIL
        # (start_acquisition), where no numba dispatcher may be called
        self.l_index[:, 0, :] = self.tables.index[self._channels, self._initial_row]
        self.l_weight[:, 0, :] = self.tables.weight[self._channels, self._initial_row]
        self.chd[0] = self._initial_um
        self.chd[1] = self._initial_um
        self.rast[...] = 0.0
        self.reported_rejections = 0

    # -- read-outs (any thread; plain numpy) ---------------------------------------------------
    @property
    def n_history(self) -> int:
        return int(self.tstate[TR.TS_HIST_N]) if self.on else 0

    @property
    def history_um(self) -> np.ndarray:
        """(K, W) float64 view: row k = displacement per depth window applied on samples
        ``[k every_n, (k+1) every_n)`` since the acquisition's start."""
        return self.hist[:self.n_history]

    @property
    def window_depth_um(self) -> np.ndarray:
        return self.model.window_depth_um if self.on else np.zeros(0)

    @property
    def stats_rejected(self) -> int:
        return int(self.tstate[TR.TS_REJECTED]) if self.on else 0

    def new_rejection(self) -> str | None:
        """The first rejection's description, once per acquisition (None otherwise)."""
        if not self.on:
            return None
        n = int(self.tstate[TR.TS_REJECTED])
        if n == 0 or self.reported_rejections > 0:
            return None
        self.reported_rejections = n
        ts = self.tstate
        reason = TR.REASONS.get(int(ts[TR.TS_LAST_REASON]), "?")
        return (f"motion tracking: estimate rejected ({reason}: {ts[TR.TS_LAST_EST_UM]:.1f} µm, "
                f"correlation {ts[TR.TS_LAST_CORR]:.2f}, last good {ts[TR.TS_RIGID_UM]:.1f} µm); "
                "keeping the last good value and classifying on (further rejections are only "
                "counted: stats motion_rejected)")

    @property
    def stats(self) -> dict:
        if not self.on:
            return {}
        ts = self.tstate
        return {"motion_updates": int(ts[TR.TS_UPDATES]),
                "motion_rejected": int(ts[TR.TS_REJECTED]),
                "motion_rejected_corr": int(ts[TR.TS_REJ_CORR]),
                "motion_rejected_jump": int(ts[TR.TS_REJ_JUMP]),
                "motion_rejected_range": int(ts[TR.TS_REJ_RANGE]),
                "motion_skipped_few_peaks": int(ts[TR.TS_SKIPPED]),
                "motion_peaks": int(ts[TR.TS_PEAKS]),
                "motion_peaks_over_budget": int(ts[TR.TS_PEAKS_OVER]),
                "motion_last_corr": float(ts[TR.TS_LAST_CORR]),
                "motion_um": [float(v) for v in self.pval[TR.PV_GOOD]],
                "motion_history_lost": int(ts[TR.TS_HIST_LOST])}
