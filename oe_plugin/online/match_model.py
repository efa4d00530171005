"""What the online sorter takes from a sort folder written by ``sweepsort sort``.

:func:`load_sort_model` reads ``sort.json`` + ``sort.npz`` (:mod:`oe_plugin.formats.sort_folder`)
and turns them into the matching kernel's layout: templates back in **noise units** (µV / the
sort's per-channel noise, the units the sort's acceptance thresholds are in), their channel rows,
the thresholds, the candidate lists per peak channel
(:func:`oe_plugin.kernels.candidates.candidates`, the offline sorter's rule), the matching
parameters (window, shifts, amplitude range, overlap-pair window) and the detection settings the
sort was made with.

When the sort corrected probe motion (``sort.json`` ``motion.applied``), the model also carries
a :class:`DriftStage`: the stored estimate (``motion_time_s``, ``motion_depth_um``,
``motion_um`` in ``sort.npz``), kriging tables for the displacements it reaches (the sort's
``kriging_sigma_um``, the probe's groups) and every interpolation bin's grid row per channel
(``interp_bin_s``), so that the online sorter can correct each block with
:func:`oe_plugin.kernels.drift.correct_columns` without allocating.

Every problem is a :class:`SortModelError` naming the folder and what is wrong — raised in the
module's constructor, where the GUI shows it in a dialog.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from oe_plugin.formats.sort_folder import SortFileError, load_sort, matching_templates
from oe_plugin.kernels.candidates import candidates
from oe_plugin.kernels.drift import DriftTables, bin_count, drift_tables, motion_bin_grid
from oe_plugin.kernels.motion import Motion
from oe_plugin.online.motion_tracker import TrackModel, TrackSettings, build_track_model
from oe_plugin.probe import Probe, ProbeError, load_probe, neighbour_lists
from oe_plugin.settings import (
    BAND_HIGH_HZ,
    BAND_LOW_HZ,
    BAND_ORDER,
    DetectSettings,
    FilterSettings,
)

ONLINE_PAIR_WINDOW_US = 500.0
"""Widest overlap search the online sorter uses (µs), whatever the sort used: a wider one delays
every decision and multiplies a rejected event's cost on the audio thread. The causal offline
reference (:mod:`offline.online_match`) reads the same model, so online and reference agree."""

ONLINE_REFIT_ROUNDS = 0
ONLINE_OVERLAP_ROUNDS = 1
ONLINE_PURSUIT_STEP = 2
"""The online overlap effort (:func:`oe_plugin.kernels.match.resolve_overlap`): one pursuit ->
polish -> verify cycle, no coordinate descent, the pursuit's ±window search every second shift
(the polish refines ±max_shift). The offline sort's effort (three descent rounds, up to four
cycles, every shift) costs ~6x more per rejected event on the audio thread (p99 3 ms at 64
channels x 200 templates) for 0.15 % of recall on the latency benchmark's data."""

ONLINE_OVERLAP_PER_S = 100.0
ONLINE_OVERLAP_BURST = 4.0
"""The online overlap budget: rejected events are tried as overlaps at ``ONLINE_OVERLAP_PER_S``
on average, at most ``ONLINE_OVERLAP_BURST`` in a row (each try costs ~20 µs at 64 channels x
200 templates), so that a burst of activity (every unit answering a stimulus onset) cannot stall
the audio thread; events past the budget stay unsorted. Counted on the events' stream times, so
online and the causal reference spend it alike whatever the blocks."""


class SortModelError(ValueError):
    """The sort folder cannot be used online (missing, malformed, or made for another stream)."""


MOTION_TIMES = ("stream", "end")
"""How the online side reads the stored motion: ``stream`` — at the stream's sample time
(counted from the start of acquisition: a replay of the sorted recording), held at its last
value after the estimate ends; ``end`` — the probe's position at the end of the sorted recording,
held for the whole stream (a live session after the sort)."""


@dataclass
class DriftStage:
    """The drift correction the online sorter applies to raw samples before filtering."""

    motion: Motion
    tables: DriftTables
    bin_n: int  # samples per interpolation bin
    bin_grid: np.ndarray  # (B, C) int32 grid row of each channel in each bin (last row held)
    motion_time: str  # one of MOTION_TIMES

    @property
    def index(self) -> np.ndarray:
        return self.tables.index

    @property
    def weight(self) -> np.ndarray:
        return self.tables.weight


@dataclass
class SortModel:
    sort_dir: Path
    templates: np.ndarray  # (T, K, W) float32 noise units (the units' and their extra ones)
    channels: np.ndarray  # (T, K) int32, -1 unused
    thresholds: np.ndarray  # (T,) float32
    peak_uv: np.ndarray  # (T,) float32 template peak (µV, signed) on its peak channel
    noise_uv: np.ndarray  # (C,) float32
    cand_ptr: np.ndarray
    cand_idx: np.ndarray
    pre: int
    max_shift: int
    amplitude_min: float
    amplitude_max: float
    pair_window: int
    sample_rate_hz: float
    filter: FilterSettings
    detect: DetectSettings
    neighbours: tuple[np.ndarray, np.ndarray]
    preprocess_filter: str  # "causal" | "zero-phase"
    drift: DriftStage | None = None  # the sort's motion correction (None: none, or switched off)
    motion_applied: bool = False  # the sort corrected motion (whether or not drift is used here)
    track: TrackModel | None = None  # live motion tracking ([match] track_motion), when possible
    track_note: str = ""  # why tracking was asked for and is off (empty: not asked, or on)
    overlap_partial: bool = False  # the sort's [sort] overlap_partial (an overlap keeps its
    # verified spikes); off for sorts made before it existed
    amplitude_prior: float = 0.0  # the sort's [sort] amplitude_prior (0 before it existed)
    whitening: tuple[np.ndarray, np.ndarray] | None = None
    """The sort's spatial whitening (``[preprocess] whiten``): ``(index, weight)`` (C, 1, K)
    int32 / float32 mix tables (one grid row of :func:`oe_plugin.kernels.drift.mix_columns`),
    applied after the drift stage; None: the sort did not whiten."""
    whiten_detection: bool = True
    """The sort's ``[preprocess] whiten_detection``: with whitening, detect on the whitened
    samples (True) or on the plain ones (False: the whitened ones only feed the matcher)."""
    unit_lut: np.ndarray | None = None
    """(T + 1,) int32: the unit of each template, then -1 (so that ``unit_lut[t]`` labels a
    match of template ``t`` and ``unit_lut[-1]`` an unsorted event). None: template = unit."""

    def __post_init__(self):
        if self.unit_lut is None:
            self.unit_lut = np.append(np.arange(self.templates.shape[0], dtype=np.int32), -1)
        self.unit_lut = np.ascontiguousarray(self.unit_lut, np.int32)

    @property
    def n_units(self) -> int:
        """Units (labels 0..n_units-1); a unit may own several templates."""
        if self.unit_lut.shape[0] <= 1:
            return 0
        return int(self.unit_lut[:-1].max()) + 1

    @property
    def n_templates(self) -> int:
        return int(self.templates.shape[0])


def match_params(model: SortModel, mask: int = -1, row_offset: int = 0) -> np.ndarray:
    """The matching kernel's ``params`` for ``model`` online (peeling on, the model's overlap
    window, the online overlap effort); the causal reference uses the same."""
    from oe_plugin.kernels.match import make_params

    return make_params(model.pre, model.max_shift, model.amplitude_min, model.amplitude_max,
                       mask=mask, row_offset=row_offset, subtract=True,
                       pair_window=model.pair_window, refit_rounds=ONLINE_REFIT_ROUNDS,
                       overlap_rounds=ONLINE_OVERLAP_ROUNDS, pursuit_step=ONLINE_PURSUIT_STEP,
                       overlap_rate=ONLINE_OVERLAP_PER_S / model.sample_rate_hz,
                       overlap_burst=ONLINE_OVERLAP_BURST, partial=model.overlap_partial,
                       amp_prior=model.amplitude_prior)


def _known(cls, table: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in (table or {}).items() if k in names}


def load_sort_model(sort_dir, n_channels: int, sample_rate_hz: float, apply_motion: bool = True,
                    motion_time: str = "stream", motion_start_s: float = 0.0,
                    track: TrackSettings | None = None) -> SortModel:
    """The matching inputs of ``sort_dir`` for a stream of ``n_channels`` at ``sample_rate_hz``;
    with ``apply_motion`` and a sort that corrected motion, its :class:`DriftStage`
    (``motion_time``: see :data:`MOTION_TIMES`; ``motion_start_s``: with "stream", the time in
    the sorted recording where the stream's first sample lies, rounded to interpolation bins).

    ``track`` (live motion tracking, :mod:`oe_plugin.online.motion_tracker`): when the sort has
    a motion estimate (corrected or not) and its peak raster, the drift stage starts from the
    estimate's end value (one live row, rewritten by the tracker; ``motion_time`` not used),
    tables up to ``±track.max_um``, and :attr:`SortModel.track` is set; otherwise tracking is
    off and :attr:`SortModel.track_note` says why (the module logs it; nothing fails)."""
    if not str(sort_dir).strip():
        raise SortModelError("[match] sort_dir is empty: name the folder 'sweepsort sort' wrote")
    folder = Path(sort_dir).expanduser()
    if not folder.is_dir():
        raise SortModelError(f"[match] sort_dir {str(folder)!r}: no such folder")
    try:
        res = load_sort(folder)
    except SortFileError as exc:
        raise SortModelError(f"[match] sort_dir: {exc}") from None
    meta, arr = res.meta, res.arrays
    where = f"sort folder {folder}"
    try:
        matching = matching_templates(arr, where)
        noise = np.asarray(arr["noise_uv"], np.float32)
        pre = int(meta["template_pre_samples"])
        fs_rec = float(meta["recording_sample_rate_hz"])
        factor = int(meta.get("upsample_factor", 1))
        settings = meta.get("settings") or {}
    except SortFileError as exc:
        raise SortModelError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise SortModelError(f"{where}: sort.json lacks {exc}") from None
    tpl_uv, chans, thr = matching.templates_uv, matching.channels, matching.threshold
    tpl_unit = matching.unit
    if noise.shape != (n_channels,):
        raise SortModelError(f"{where}: sorted {noise.shape[0] if noise.ndim else '?'} channels, "
                             f"the stream has {n_channels}")
    if abs(fs_rec - sample_rate_hz) > 1e-3 * sample_rate_hz:
        raise SortModelError(f"{where}: sorted at {fs_rec:g} Hz, the stream runs at "
                             f"{sample_rate_hz:g} Hz")
    if factor != 1:
        raise SortModelError(f"{where}: templates are upsampled x{factor}; sort with "
                             "[preprocess] upsample_factor = 1 for online use")
    if chans.size and (chans.max() >= n_channels or chans.min() < -1):
        raise SortModelError(f"{where}: template_channels outside 0..{n_channels - 1}")
    if not (0 <= pre < max(tpl_uv.shape[2], 1)) and tpl_uv.shape[0]:
        raise SortModelError(f"{where}: template_pre_samples {pre} outside the window")
    if not np.all(np.isfinite(tpl_uv)) or np.any(~np.isfinite(thr) & ~np.isposinf(thr)):
        raise SortModelError(f"{where}: templates or thresholds contain NaN")
    prep = settings.get("preprocess") or {}
    if prep.get("common_reference", "none") != "none":
        raise SortModelError(f"{where}: sorted with a common reference "
                             f"({prep['common_reference']!r}); the online path has none")
    sort_s = settings.get("sort") or {}
    try:
        detect = DetectSettings(**_known(DetectSettings, settings.get("detect")))
        detect.check("detect")
        filt = FilterSettings(low_hz=float(prep.get("low_hz", BAND_LOW_HZ)),
                              high_hz=float(prep.get("high_hz", BAND_HIGH_HZ)),
                              order=int(prep.get("order", BAND_ORDER)))
        filt.check("filter", sample_rate_hz)
        max_shift = int(sort_s.get("max_shift_samples", 2))
        amp_min = float(sort_s.get("amplitude_min", 0.5))
        amp_max = float(sort_s.get("amplitude_max", 2.0))
        # the offline default searches overlaps over ±1.5 ms; online the search (and so the
        # decision delay and a rejected event's cost) stays within ±ONLINE_PAIR_WINDOW_US
        pair_us = min(float(sort_s.get("pair_window_us", 0.0)), ONLINE_PAIR_WINDOW_US)
        partial = sort_s.get("overlap_partial", False) is True
        amp_prior = float(sort_s.get("amplitude_prior", 0.0))
        if not (0.0 <= amp_prior < 1e6):
            raise ValueError(f"amplitude_prior {amp_prior}")
    except (TypeError, ValueError) as exc:
        raise SortModelError(f"{where}: settings in sort.json unusable: {exc}") from None
    scale = np.where(np.isfinite(noise) & (noise > 0), noise, 0).astype(np.float32)
    row_noise = np.where(chans >= 0, scale[np.maximum(chans, 0)], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpl = np.where(row_noise[:, :, None] > 0, tpl_uv / row_noise[:, :, None], 0)
    tpl = np.ascontiguousarray(tpl, np.float32)
    peak_uv = np.zeros(tpl.shape[0], np.float32)
    for u in range(tpl.shape[0]):
        r = int(np.argmax(np.abs(tpl_uv[u]).max(axis=1)))
        peak_uv[u] = tpl_uv[u, r, pre]
    probe = _probe_of(meta, arr, detect, n_channels)
    whitening = _whitening_of(where, arr, n_channels)
    cand_ptr, cand_idx = candidates(tpl, chans, n_channels)
    motion_meta = meta.get("motion") or {}
    applied = bool(motion_meta.get("applied", False)) if isinstance(motion_meta, dict) else False
    drift = None
    tm, note = None, ""
    if track is not None and apply_motion:
        if whitening is not None:
            # live peaks would be localized on whitened traces, the sort's raster is of plain
            # ones: refused at load time rather than tracking silently off for hours
            raise SortModelError(
                f"{where} whitened its traces ([preprocess] whiten; the default \"auto\" "
                "whitens a sort that did not correct motion): live motion tracking needs an "
                "unwhitened sort. Sort the first stretch again with [preprocess] whiten = "
                "\"off\", or set [match] track_motion = false")
        if "motion_um" not in arr or "peak_depth_um" not in arr:
            note = ("the sort has no motion estimate (sorted with [motion] mode = off, or a "
                    "probe without a depth span): motion tracking is off, templates as sorted")
        else:
            drift = _drift_stage(where, motion_meta, arr, probe, sample_rate_hz, "end",
                                 0.0, track)
            tm = _track_model(where, motion_meta, arr, probe, detect, drift, track)
    elif applied and apply_motion:
        drift = _drift_stage(where, motion_meta, arr, probe, sample_rate_hz, motion_time,
                             motion_start_s)
    return SortModel(
        sort_dir=folder, templates=tpl, channels=np.ascontiguousarray(chans),
        thresholds=np.ascontiguousarray(thr), peak_uv=peak_uv, noise_uv=noise,
        cand_ptr=cand_ptr, cand_idx=cand_idx, pre=pre, max_shift=max_shift,
        amplitude_min=amp_min, amplitude_max=amp_max,
        pair_window=int(round(pair_us * 1e-6 * sample_rate_hz)),
        sample_rate_hz=float(sample_rate_hz), filter=filt, detect=detect,
        neighbours=neighbour_lists(probe, detect.lockout_radius_um),
        preprocess_filter=str(prep.get("filter", "zero-phase")), drift=drift,
        unit_lut=np.append(tpl_unit, np.int32(-1)).astype(np.int32),
        motion_applied=applied, track=tm, track_note=note, overlap_partial=partial,
        amplitude_prior=amp_prior, whitening=whitening,
        whiten_detection=prep.get("whiten_detection", True) is not False)


def _whitening_of(where: str, arr: dict, n_channels: int):
    """The sort's whitening mix as (C, 1, K) tables, or None (checked: shapes, channels, finite
    weights)."""
    if "whiten_index" not in arr:
        return None
    index = np.asarray(arr["whiten_index"])
    weight = np.asarray(arr["whiten_weight"]) if "whiten_weight" in arr else None
    if (weight is None or index.ndim != 2 or index.shape != weight.shape
            or index.shape[0] != n_channels or index.shape[1] < 1):
        raise SortModelError(f"{where}: whiten_index / whiten_weight are not two (C, K) arrays "
                             f"for {n_channels} channels")
    if index.min() < 0 or index.max() >= n_channels or not np.all(np.isfinite(weight)):
        raise SortModelError(f"{where}: the whitening mix names channels outside "
                             f"0..{n_channels - 1} or holds NaN")
    return (np.ascontiguousarray(index[:, None, :], np.int32),
            np.ascontiguousarray(weight[:, None, :], np.float32))


def _track_model(where: str, motion_meta: dict, arr: dict, probe: Probe, detect: DetectSettings,
                 drift: DriftStage, track: TrackSettings) -> TrackModel:
    """The tracker's reference (the sort's peaks) and settings (the sort's localization)."""
    ms = motion_meta.get("settings") or {}
    try:
        peaks = {"time_s": np.asarray(arr["peak_time_s"], np.float64),
                 "depth_um": np.asarray(arr["peak_depth_um"], np.float64),
                 "amplitude": np.asarray(arr["peak_amplitude"], np.float64)}
        bin_um = float(ms.get("bin_um", 2.0))
        radius = float(ms.get("localize_radius_um", 75.0))
        window_um = float(ms.get("window_um", 200.0))
        monopolar = str(ms.get("localize", "monopolar")) == "monopolar"
    except (KeyError, TypeError, ValueError) as exc:
        raise SortModelError(f"{where}: the stored peaks / motion settings are unusable "
                             f"({exc})") from None
    if not (0.1 <= bin_um <= 50 and radius >= 0 and window_um > 0):
        raise SortModelError(f"{where}: motion settings bin_um={bin_um}, localize_radius_um="
                             f"{radius}, window_um={window_um} unusable")
    if not (len(peaks["time_s"]) == len(peaks["depth_um"]) == len(peaks["amplitude"])):
        raise SortModelError(f"{where}: peak_time_s / peak_depth_um / peak_amplitude differ "
                             "in length")
    return build_track_model(track, drift.motion, peaks, probe.positions_um,
                             neighbour_lists(probe, radius), monopolar, bin_um, window_um)


def _drift_stage(where: str, motion_meta: dict, arr: dict, probe: Probe, sample_rate_hz: float,
                 motion_time: str, motion_start_s: float = 0.0,
                 track: TrackSettings | None = None) -> DriftStage:
    """The stored motion as the online sorter's drift stage (tables as the offline sort builds
    them: displacements up to the largest reached + 1 µm, 0.5 µm steps). With ``track``: the
    tables reach at least ``track.max_um``, one live row at the estimate's end value, bins of
    ``track.every_s`` (the tracker's update interval)."""
    if motion_time not in MOTION_TIMES:
        raise SortModelError(f"[match] motion_time must be one of {', '.join(MOTION_TIMES)}, "
                             f"got {motion_time!r}")
    try:
        t = np.asarray(arr["motion_time_s"], np.float64).ravel()
        depth = np.asarray(arr["motion_depth_um"], np.float64).ravel()
        disp = np.asarray(arr["motion_um"], np.float64)
        ms = motion_meta.get("settings") or {}
        sigma = float(ms.get("kriging_sigma_um", 20.0))
        bin_s = float(ms.get("interp_bin_s", 1.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise SortModelError(f"{where}: sort.json says motion was corrected but the motion "
                             f"estimate is unusable ({exc})") from None
    if (disp.ndim != 2 or disp.shape != (len(t), len(depth)) or len(t) == 0 or len(depth) == 0
            or not np.all(np.isfinite(disp)) or not np.all(np.isfinite(t))
            or np.any(np.diff(t) <= 0) or np.any(np.diff(depth) <= 0)):
        raise SortModelError(f"{where}: motion arrays disagree or are not finite (motion_time_s "
                             f"{t.shape}, motion_depth_um {depth.shape}, motion_um {disp.shape})")
    if not (sigma > 0 and np.isfinite(sigma) and 0 < bin_s < 1e6):
        raise SortModelError(f"{where}: motion settings kriging_sigma_um={sigma}, "
                             f"interp_bin_s={bin_s} unusable")
    motion = Motion(t, depth, disp)
    reach = float(np.abs(disp).max(initial=0.0)) + 1.0
    if track is not None:
        reach = max(reach, float(track.max_um) + 1.0)
    tables = drift_tables(probe.positions_um, reach, 0.5, sigma, groups=probe.groups)
    bin_n = max(1, int(round(bin_s * sample_rate_hz)))
    ch_depth = np.asarray(probe.positions_um, np.float64)[:, 1]
    if track is not None:
        bin_n = max(1, int(round(track.every_s * sample_rate_hz)))
        end_bin = bin_count(motion, sample_rate_hz, bin_n) - 1
        grid = motion_bin_grid(motion, tables, ch_depth, sample_rate_hz, bin_n, end_bin, 1)
        return DriftStage(motion, tables, bin_n, np.ascontiguousarray(grid, np.int32), "track")
    if motion_time == "end":
        end_bin = bin_count(motion, sample_rate_hz, bin_n) - 1  # past the estimate's end
        grid = motion_bin_grid(motion, tables, ch_depth, sample_rate_hz, bin_n, end_bin, 1)
    else:
        if not (np.isfinite(motion_start_s) and motion_start_s >= 0):
            raise SortModelError(f"[match] motion_start_s must be >= 0 s, got {motion_start_s}")
        first_bin = int(round(motion_start_s * sample_rate_hz / bin_n))
        grid = motion_bin_grid(motion, tables, ch_depth, sample_rate_hz, bin_n, first_bin)
    return DriftStage(motion, tables, bin_n, np.ascontiguousarray(grid, np.int32), motion_time)


def _probe_of(meta: dict, arr: dict, detect: DetectSettings, n_channels: int) -> Probe:
    """The probe the sort used: its layout by name when it is available here (groups), else the
    sort's channel positions as one group."""
    pos = np.asarray(arr["channel_positions_um"], np.float64)
    for spec in (meta.get("probe"), detect.probe):
        if not spec:
            continue
        try:
            probe = load_probe(spec, n_channels)
        except ProbeError:
            continue
        if probe.positions_um.shape == pos.shape and np.allclose(probe.positions_um, pos):
            return probe
    if pos.shape != (n_channels, 2):
        raise SortModelError(f"sort folder: channel_positions_um has shape {pos.shape}")
    return Probe("sort", pos, np.zeros(n_channels, np.int64))
