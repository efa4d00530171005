"""The offline side of online/offline equivalence: causal filtering + the offline matcher.

:func:`causal_sort` classifies a recording's spikes the way the online sorter
(:mod:`oe_plugin.online.sorter_driver`) does, but as the offline sorter's matching stage does it:
one detector run over the *whole* recording (the sort's noise scaling, the online **causal**
band-pass, the sort's detection settings with its fixed noise-unit threshold), the filtered
traces kept as one plain time-major array (zero-padded so that no window is cut at the ends),
and **one** call of :func:`oe_plugin.kernels.match.match_events` over every event in time order
(peeling subtractions and overlap pairs included), as :func:`offline.sort.matching.match_chunk`
calls it. No ring, no FIFO, no blocks.

The online module, fed the same recording in *any* block sizes, must write exactly these spikes
(tests/test_online_sorter.py). Differences from a full offline sort (``sweepsort sort``): the
filter is causal (sort with ``[preprocess] filter = "causal"`` to get templates of that shape),
there are no re-detection passes in the residual (``peel_passes``), no matched-filter pass
(``template_detect_z``) and no per-unit de-duplication
of spikes closer than the lockout; events whose matching window runs past the end of the data
are left out (online they would still be waiting for samples).

When the model has a drift stage (the sort corrected probe motion), the raw recording is first
drift-corrected by the same kernel the online sorter runs per sub-chunk
(:func:`oe_plugin.kernels.drift.correct_block_binned`, the model's bins and kriging tables,
sample 0 = the recording's first sample), *then* scaled and causally filtered — as online, where
correction precedes the filter (the offline sort corrects after filtering; the two differ only
by the filter's transient at each interpolation-bin boundary). The matcher then leaves out the
template rows on channels whose correction was extrapolated at the event's time (the online
mask: :func:`oe_plugin.kernels.drift.valid_bins` of the same bin rows). A sort that whitened
(``[preprocess] whiten``) has its mix applied next, by the kernel the online sorter runs, and
both the detector and the matcher read the whitened samples; with ``whiten_detection = false``
the detector reads the plain ones and the matcher the whitened ones, band-passed by the same
kernel.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from oe_plugin.kernels.bandpass import bandpass_block
from oe_plugin.kernels.detector import SpikeDetector
from oe_plugin.kernels.drift import (
    ONLINE_VALID_MIN_SUM,
    correct_block_binned,
    mix_columns,
    valid_bins,
)
from oe_plugin.kernels.match import NO_UNIT, P_VALID_BIN_N, match_events, match_tables
from oe_plugin.online.match_model import SortModel, load_sort_model, match_params
from oe_plugin.online.motion_tracker import TrackSettings, tracked_bin_grid
from oe_plugin.online.sorter_driver import SPIKE_DTYPE, detection_settings, match_reach


def causal_sort(traces_uv: np.ndarray, sample_rate_hz: float, model: SortModel | str,
                apply_motion: bool = True, motion_time: str = "stream",
                motion_start_s: float = 0.0, track: TrackSettings | None = None,
                motion_history_um: np.ndarray | None = None) -> np.ndarray:
    """Spikes (SPIKE_DTYPE: sample_index, channel_index, amplitude_uv, unit, displacement_um) of
    raw ``traces_uv`` (C, N) µV, in the online sorter's order. ``apply_motion`` /
    ``motion_time`` / ``motion_start_s`` / ``track``: as the online module's ``[match]`` keys,
    when ``model`` is a sort folder (a :class:`SortModel` is used as it is).

    With live motion tracking (``model.track``), the motion input is ``motion_history_um``
    (K, W): the values the module applied (its statistics file's motion table, or
    :attr:`Tracker.history_um`), row k on samples ``[k every_n, (k+1) every_n)`` — turned into
    the same drift-table rows by the kernel's row function
    (:func:`oe_plugin.online.motion_tracker.tracked_bin_grid`)."""
    traces_uv = np.asarray(traces_uv)
    n_ch, n = traces_uv.shape
    if not isinstance(model, SortModel):
        model = load_sort_model(model, n_ch, sample_rate_hz, apply_motion, motion_time,
                                motion_start_s, track)
    if model.track is not None and model.drift is not None:
        if motion_history_um is None:
            raise ValueError("the module tracked motion live: give the motion it applied "
                             "(motion_history_um, the statistics file's motion table)")
        grid = tracked_bin_grid(motion_history_um, model.track.ch_map, model.track.ch_frac,
                                model.drift.tables)
        model = replace(model, drift=replace(model.drift, bin_grid=grid))
    noise = np.asarray(model.noise_uv, np.float32)
    ok = np.isfinite(noise) & (noise > 0)
    inv = np.where(ok, 1.0 / np.where(ok, noise, 1), 0).astype(np.float32)
    noise = np.where(ok, noise, 0).astype(np.float32)
    raw = np.ascontiguousarray(traces_uv, np.float32)
    disp_of = _displacement_lookup(model)
    if model.drift is not None:
        dr = model.drift
        corrected = np.empty_like(raw)
        correct_block_binned(raw, corrected, 0, dr.bin_n, dr.bin_grid, dr.index, dr.weight)
        raw = corrected
    white = None
    if model.whitening is not None:  # the sort's whitening, after the drift stage (as online)
        w_index, w_weight = model.whitening
        white = np.empty_like(raw)
        mix_columns(raw, 0, white, 0, n, w_index, w_weight, np.zeros(n_ch, np.int32))
        if model.whiten_detection:
            raw, white = white, None
    scaled = raw * inv[:, None]  # float32 x float32
    fset, dset = detection_settings(model, None, None)
    det = SpikeDetector(n_ch, sample_rate_hz, replace(fset, write_downstream=True), dset,
                        model.neighbours, max_block=max(n, 1), noise_units=True)
    ev = det.process(scaled)  # filters ``scaled`` in place
    if white is not None:  # detected on the plain samples; the matcher reads the whitened ones
        scaled = white * inv[:, None]
        bandpass_block(det.sos, np.zeros_like(det.zi), scaled, scaled,
                       np.zeros((256, n_ch), np.float32), np.zeros(det.tmp.shape, np.float64))
    t_ev = ev["sample_index"]
    c_ev = ev["channel_index"].astype(np.int32)
    amp_uv = ev["amplitude"] * noise[c_ev]  # noise units -> µV
    if model.n_units == 0:
        out = np.zeros(len(t_ev), SPIKE_DTYPE)
        out["sample_index"], out["channel_index"] = t_ev, c_ev
        out["amplitude_uv"], out["unit"] = amp_uv, NO_UNIT
        out["displacement_um"] = disp_of(t_ev, c_ev)
        return out
    before, after = match_reach(model)
    ready = t_ev + after <= n
    t_ev, c_ev, amp_uv = t_ev[ready], c_ev[ready], amp_uv[ready]
    pad = before + after + 8
    src = np.zeros((pad + n + pad, n_ch), np.float32)
    src[pad:pad + n] = scaled.T
    params = match_params(model, mask=-1, row_offset=-pad)
    valid = np.zeros((1, 0), np.int32)  # no drift stage: no channel mask
    if model.drift is not None:
        # the online mask: per interpolation bin, which channels' corrections are interpolated
        # (event at t: row t // bin_n, as the row that corrected sample t online)
        dr = model.drift
        valid = np.zeros(dr.bin_grid.shape, np.int32)
        valid_bins(np.ascontiguousarray(dr.bin_grid, np.int32),
                   np.ascontiguousarray(dr.weight, np.float32), ONLINE_VALID_MIN_SUM, valid)
        params[P_VALID_BIN_N] = dr.bin_n
    norms, tpl_rows, work, iwork = match_tables(model.templates, model.cand_ptr, n_ch, params)
    e = len(t_ev)
    unit, shift, ok_n, unit2, shift2 = (np.zeros(e, np.int32) for _ in range(5))
    amp, err, amp2, err2 = (np.zeros(e, np.float32) for _ in range(4))
    match_events(src, np.ascontiguousarray(t_ev, np.int64), c_ev, model.templates,
                 model.channels, norms, tpl_rows, model.cand_ptr, model.cand_idx,
                 model.thresholds, params, work, iwork, unit, shift, amp, err, ok_n, unit2,
                 shift2, amp2, err2, valid)
    rows = []
    lut = model.unit_lut  # template -> unit (a unit may own several templates)
    d_ev = disp_of(t_ev, c_ev)
    for i in range(e):
        if ok_n[i] >= 1:
            rows.append((t_ev[i] + shift[i], c_ev[i], amp_uv[i], lut[unit[i]], d_ev[i]))
            if ok_n[i] == 2:
                u2 = int(unit2[i])
                rows.append((t_ev[i] + shift2[i], c_ev[i],
                             np.float32(amp2[i] * model.peak_uv[u2]), lut[u2], d_ev[i]))
        else:
            rows.append((t_ev[i], c_ev[i], amp_uv[i], NO_UNIT, d_ev[i]))
    return np.array(rows, SPIKE_DTYPE) if rows else np.zeros(0, SPIKE_DTYPE)


def _displacement_lookup(model: SortModel):
    """f(t, c) -> float32 µm the drift stage shifted channel c by at event sample t (the grid
    value of its bin's row; NaN without a drift stage): the online records' ``displacement_um``.
    """
    dr = model.drift

    def lookup(t, c):
        t = np.asarray(t, np.int64)
        c = np.asarray(c, np.int64)
        if dr is None:
            return np.full(len(t), np.nan, np.float32)
        grid = dr.bin_grid
        b = np.clip(t // dr.bin_n, 0, grid.shape[0] - 1)
        g = dr.tables.displacement_um
        return (g[0] + grid[b, c] * dr.tables.step_um).astype(np.float32)

    return lookup


def sort_dir_of_module(module_path, config_path=None):
    """The sort folder a sorting module (online_sorter / pipeline) classifies against, from its
    settings (``config_path``, else ``<module stem>.toml`` beside it); None when the module does
    not sort (another module, ``[match] enabled = false``, ``[detect] enabled = false``).
    Raises ValueError for ``[match] source = "upstream"`` (a replay has no upstream spikes)."""
    from pathlib import Path

    from oe_plugin.config import from_table, load_toml
    from oe_plugin.online.sorter_module import MatchSettings, resolve_sort_dir

    module_path = Path(module_path)
    if config_path is None:
        candidate = module_path.with_suffix(".toml")
        config_path = candidate if candidate.exists() else None
    table = load_toml(config_path) if config_path else {}
    stem = module_path.stem
    if stem not in ("online_sorter", "pipeline") and "match" not in table:
        return None
    detect = dict(table.get("detect") or {})
    if detect.get("enabled", True) is False:
        return None
    match = dict(table.get("match") or {})
    if stem == "pipeline" or "enabled" in match:
        if match.pop("enabled", True) is False:
            return None
    ms = from_table(MatchSettings, match, "match")
    if ms.source == "upstream":
        raise ValueError("[match] source = 'upstream': the module classifies an upstream Spike "
                         "Detector's spikes, which a replay does not have")
    return resolve_sort_dir(ms, config_path)


def motion_options_of_module(module_path, config_path=None) -> dict:
    """``apply_motion`` / ``motion_time`` / ``motion_start_s`` / ``track`` of a sorting
    module's ``[match]`` settings (the keyword arguments of :func:`causal_sort` that make its
    reference the module's; with ``track``, also give it the module's recorded motion)."""
    from pathlib import Path

    from oe_plugin.config import from_table, load_toml
    from oe_plugin.online.sorter_module import MatchSettings

    module_path = Path(module_path)
    if config_path is None:
        candidate = module_path.with_suffix(".toml")
        config_path = candidate if candidate.exists() else None
    table = load_toml(config_path) if config_path else {}
    match = dict(table.get("match") or {})
    match.pop("enabled", None)
    ms = from_table(MatchSettings, match, "match")
    return {"apply_motion": ms.apply_motion, "motion_time": ms.motion_time,
            "motion_start_s": ms.motion_start_s, "track": ms.track_settings()}


def compare_spikes(online, reference) -> tuple[bool, str]:
    """Spike for spike: ``online`` (SPIKE_DTYPE of the spike file: sample_number, channel,
    amplitude_uv, unit) against ``reference`` (:func:`causal_sort`'s output). Returns
    ``(identical, what differs first)``."""
    ref = reference[np.argsort(reference["sample_index"], kind="stable")]
    on = online[np.argsort(online["sample_number"], kind="stable")]
    if len(on) != len(ref):
        return False, f"{len(on)} online vs {len(ref)} offline spikes"
    pairs = (("sample_number", "sample_index"), ("channel", "channel_index"),
             ("unit", "unit"), ("amplitude_uv", "amplitude_uv"))
    for a, b in pairs:
        x, y = on[a].astype(np.float64), ref[b].astype(np.float64)
        if not np.array_equal(x, y):
            i = int(np.flatnonzero(x != y)[0])
            return False, (f"spike {i}: {a} {on[a][i]} online vs {ref[b][i]} offline "
                           f"(sample {int(ref['sample_index'][i])})")
    return True, ""
