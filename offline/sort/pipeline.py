"""The offline sort, end to end: noise -> detect (chunks) -> cluster -> templates ->
thresholds -> match + peel (chunks) -> sort file, metrics, Phy folder.

Chunk stages run through an :class:`~offline.sort.executor.Executor` (this process, a local
pool or Dask) and save each chunk's result under ``OUT/work/`` as it arrives, keyed by a hash
of everything the result depends on: re-running the same command after an interruption redoes
only the missing chunks (and nothing when all are there). ``OUT/work`` can be deleted after a
sort; ``sort.json`` is written last.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from oe_plugin.kernels.motion import Motion, estimate_motion
from oe_plugin.probe import Probe, load_probe, neighbour_lists
from offline import interrupt
from offline.sort.burst_merge import burst_units, units_of_groups
from offline.sort.cluster import channel_groups, cluster_task, clusters_of_tasks
from offline.sort.detection import detect_chunk
from offline.sort.drift_merge import drift_groups, split_groups
from offline.sort.executor import Executor
from offline.sort.job import SortJob, window_samples
from offline.sort.matching import match_chunk
from offline.sort.metrics import unit_metrics
from offline.sort.phy import dat_description, export_phy
from offline.sort.preprocess import DriftCorrection, Preprocessor, mad_noise
from offline.sort.settings import AllSettings, MotionSettings, settings_from_table
from offline.sort.sortfile import (
    SortResult,
    atomic_write,
    dense_templates,
    npz_bytes,
    save_sort,
)
from offline.sort.source import RecordingSource
from offline.sort.templates import (
    TemplateSet,
    build_templates,
    rebuild_templates,
    wide_rows_of,
)
from offline.sort.thresholds import trough_threshold
from offline.sort.whitening import (
    SPIKE_FREE_MS,
    SPIKE_FREE_SIGMA,
    WHITEN_WINDOWS,
    Whitening,
    local_whitening,
    noise_correlation,
)

CLUSTER_GROUPS = 8
"""Clustering tasks per sort (groups of peak channels of about equal work; more than the usual
worker count, so that no worker waits long for the last one)."""


class _Work:
    """Per-chunk results on disk, valid only for the key they were computed with."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, stage, i):
        return self.folder / f"{stage}_{i:05d}.npz"

    def load(self, stage, i, key):
        p = self.path(stage, i)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                if str(z["_key"]) != key:
                    return None
                return {k: z[k] for k in z.files if k != "_key"}
        except (OSError, ValueError, KeyError):
            return None

    def save(self, stage, i, key, result: dict):
        atomic_write(self.path(stage, i), npz_bytes({**result, "_key": np.array(key)}))


def _run_chunks(executor, work, stage, key, fn, arg_lists, indices, progress, desc, log=None):
    interrupt.check()
    results = {}
    todo = []
    for i, args in zip(indices, arg_lists, strict=True):
        r = work.load(stage, i, key)
        if r is None:
            todo.append((i, args))
        else:
            results[i] = r
    if results and todo and log is not None:  # an interrupted run of the same sort
        log(f"resuming: {len(results)} of {len(indices)} chunks done ({desc})")

    def on_result(k, r):
        i = todo[k][0]
        work.save(stage, i, key, r)
        results[i] = r
        interrupt.check()  # a Ctrl-C that landed in a __del__ was swallowed: raise it here

    executor.run(fn, [a for _, a in todo], on_result, desc=desc, progress=progress)
    interrupt.check()
    return [results[i] for i in indices]


def sort_recording(source: RecordingSource, out_dir, settings: AllSettings | None = None,
                   probe: Probe | None = None, executor: Executor | None = None,
                   progress: bool = False, log=None, probe_origin: str | None = None
                   ) -> SortResult:
    """Sort one stream and write ``out_dir/sort.{npz,json}`` and ``out_dir/phy/``.

    ``probe_origin``: where the probe came from (``sort.json``'s ``probe_origin``)."""
    settings = given = settings or settings_from_table({})  # given: what sort.json records
    executor = executor or Executor()
    log = log or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()
    rec = source.open()
    c_n = int(rec.n_channels)
    probe = probe or load_probe(settings.detect.probe, c_n)
    lock_nb = neighbour_lists(probe, settings.detect.lockout_radius_um)
    snip_nb = neighbour_lists(probe, settings.sort.template_radius_um)
    work = _Work(out / "work")
    # this process reads the noise windows on as many threads as the executor has workers
    # (the pool is idle then; the same windows, the same result)
    threads = max(1, int(getattr(executor, "jobs", 1)))

    # -- noise (fixed, from chunks spread over the recording) --------------------------------
    prep = Preprocessor(rec, settings.preprocess)
    g = prep.geometry
    noise_key = json.dumps([asdict(settings.preprocess), source.identity()], default=str)
    cached = work.load("noise", 0, noise_key)
    if cached is None:
        noise = prep.estimate_noise(threads)
        work.save("noise", 0, noise_key, {"noise_uv": noise})
    else:
        noise = cached["noise_uv"]
    mode = motion_mode(settings.motion, probe)
    loc = (neighbour_lists(probe, settings.motion.localize_radius_um), probe.positions_um) \
        if mode != "off" else (None, None)
    job = SortJob(source, settings, noise, lock_nb, snip_nb, loc_nb=loc[0],
                  positions_um=loc[1])
    timings["noise_s"] = time.perf_counter() - t0
    finite = noise[np.isfinite(noise)]
    log(f"{c_n} channels, {g.n_samples_in / g.sample_rate_in_hz:.1f} s, {g.n_chunks} chunks; "
        f"noise median {np.median(finite) if len(finite) else 0:.1f} µV")

    # -- detection ----------------------------------------------------------------------------
    t1 = time.perf_counter()
    chunks = list(range(g.n_chunks))
    key = job.fingerprint()
    det = _run_chunks(executor, work, "detect", key, detect_chunk, [(job, i) for i in chunks],
                      chunks, progress, "detect", log=log)
    timings["detect_s"] = time.perf_counter() - t1

    # -- probe motion: estimated from the peaks; the traces corrected when it moves ------------
    motion, peaks, applied = None, None, False
    if mode != "off":
        t1m = time.perf_counter()
        motion, peaks = _estimate(det, settings.motion, mode, probe, g)
        rng_um = motion.range_um()
        applied = rng_um >= settings.motion.min_range_um
        log(f"motion ({mode}): {rng_um:.1f} µm peak to peak"
            + ("; correcting the traces" if applied else
               f" < {settings.motion.min_range_um:g} µm, traces left as they are"))
        if applied:
            drift = DriftCorrection(motion, probe.positions_um, probe.groups,
                                    settings.motion.kriging_sigma_um,
                                    settings.motion.interp_bin_s)
            mc_key = noise_key + job.fingerprint(motion.displacement_um)
            cached = work.load("noise_mc", 0, mc_key)
            if cached is None:
                noise = Preprocessor(rec, settings.preprocess, drift=drift).estimate_noise(
                    threads)
                work.save("noise_mc", 0, mc_key, {"noise_uv": noise})
            else:
                noise = cached["noise_uv"]
            job = SortJob(source, settings, noise, lock_nb, snip_nb, drift=drift)
            noise_key = mc_key
        timings["motion_s"] = time.perf_counter() - t1m
    # -- spatial whitening, after the drift correction ----------------------------------------
    whitening = None
    if whitens(settings.preprocess.whiten, applied):
        t1w = time.perf_counter()
        whitening, noise = _whiten(work, rec, settings.preprocess, probe, noise, job.drift,
                                   noise_key, threads)
        k = settings.sort.whitened_merge_scale  # template distances relative to their energy
        settings = replace(settings, sort=replace(
            settings.sort, merge_distance=settings.sort.merge_distance * k,
            burst_max_residual=settings.sort.burst_max_residual * k))
        job = SortJob(source, settings, noise, lock_nb, snip_nb, drift=job.drift,
                      whitening=whitening)
        timings["whiten_s"] = time.perf_counter() - t1w
        log(f"whitened over {settings.preprocess.whiten_radius_um:g} µm "
            f"({int((whitening.weight != 0).sum(axis=1).max())} channels a row)")
    if applied or whitening is not None:
        det = _run_chunks(executor, work, "detect_mc", job.fingerprint(), detect_chunk,
                          [(job, i) for i in chunks], chunks, progress,
                          "detect (corrected)" if whitening is None else "detect (whitened)",
                          log=log)
    ev_t = np.concatenate([d["t"] for d in det])
    ev_c = np.concatenate([d["c"] for d in det])
    log(f"{len(ev_t)} events detected")

    # -- clustering and templates -------------------------------------------------------------
    t2 = time.perf_counter()
    pre, post = window_samples(job, g.sample_rate_hz)
    snippets = np.concatenate([d["snippets"] for d in det])
    snippet_c = np.concatenate([d["snippet_c"] for d in det])
    # the peak channels cluster independently: in groups, as tasks (the same clusters in any
    # grouping, :func:`cluster_snippets`)
    groups = channel_groups(snippet_c, CLUSTER_GROUPS)
    rows = [np.flatnonzero(np.isin(snippet_c, g)) for g in groups]
    clusters = clusters_of_tasks(_run_chunks(
        executor, work, "cluster", job.fingerprint("cluster", *groups), cluster_task,
        [(snippets[r], snippet_c[r], r, snip_nb, settings.sort, settings.sort.seed)
         for r in rows], list(range(len(groups))), progress, "cluster", log=log))
    # one BLAS thread: the eigen-decompositions here are small (~650 x 650), and a threaded
    # BLAS on a busy machine spins instead of computing (measured on 2 cores at load 3.6:
    # 5.0 s per decomposition threaded, 0.06 s with one thread)
    with threadpool_limits(1):
        templates = build_templates(clusters, snippets, snip_nb, c_n, pre,
                                    settings.sort.merge_distance, settings.sort.max_shift_samples,
                                    settings.sort.merge_test_trough,
                                    (settings.sort.split_pca_components
                                     or settings.sort.pca_components)
                                    if settings.sort.merge_fisher else 0)
    del snippets
    timings["cluster_s"] = time.perf_counter() - t2
    log(f"{len(clusters)} clusters -> {templates.n_units} templates")

    # -- thresholds from the errors of calibration chunks --------------------------------------
    t3 = time.perf_counter()
    span = g.margin * 2 + g.chunk // 4

    def events_for(i):
        a, b = g.bounds(i)
        lo, hi = np.searchsorted(ev_t, [a - span, b + span])
        return ev_t[lo:hi], ev_c[lo:hi]

    n_cal = min(settings.sort.calibration_chunks, g.n_chunks)
    cal_idx = sorted(set(np.linspace(0, g.n_chunks - 1, n_cal).round().astype(int).tolist()))

    def calibrate(tpl, stage):
        tkey = job.fingerprint(tpl.waveforms, tpl.channels)
        dummy = np.zeros(tpl.n_units, np.float32)
        cal = _run_chunks(executor, work, stage, tkey, match_chunk,
                          [(job, i, tpl, dummy, *events_for(i), True) for i in cal_idx],
                          cal_idx, progress, stage, log=log)
        unit = np.concatenate([r["unit"] for r in cal]) if cal else np.zeros(0, np.int32)
        err = np.concatenate([r["error"] for r in cal]) if cal else np.zeros(0, np.float32)
        return np.array([trough_threshold(err[unit == u], settings.sort.max_error,
                                          settings.sort.min_error)
                         for u in range(tpl.n_units)], np.float32)

    thresholds = calibrate(templates, "calibrate")
    # -- templates re-estimated from their matched spikes, on their whole footprint ------------
    if settings.sort.rebuild_radius_um > 0 and templates.n_units:
        wide = wide_rows_of(templates, neighbour_lists(probe, settings.sort.rebuild_radius_um))
        rkey = job.fingerprint(templates.waveforms, templates.channels, thresholds, wide)
        acc = _run_chunks(executor, work, "rebuild", rkey, match_chunk,
                          [(job, i, templates, thresholds, *events_for(i), False, wide)
                           for i in cal_idx], cal_idx, progress, "rebuild", log=log)
        n_before = templates.n_units
        templates = rebuild_templates(
            templates, wide, sum(r["sum"].astype(np.float64) for r in acc),
            sum(r["count"] for r in acc), c_n, settings.sort.min_cluster_size // 2 + 1,
            settings.sort.template_row_min,
            settings.sort.merge_distance if settings.sort.rebuild_merge else 0.0,
            settings.sort.max_shift_samples)
        log(f"templates rebuilt from matched spikes: {n_before} -> {templates.n_units}")
        thresholds = calibrate(templates, "calibrate2")
    timings["calibrate_s"] = time.perf_counter() - t3

    # -- matching -----------------------------------------------------------------------------
    t4 = time.perf_counter()
    mkey = job.fingerprint(templates.waveforms, templates.channels, thresholds)
    matched = _run_chunks(executor, work, "match", mkey, match_chunk,
                          [(job, i, templates, thresholds, *events_for(i)) for i in chunks],
                          chunks, progress, "match", log=log)
    timings["match_s"] = time.perf_counter() - t4
    result = _assemble(matched, templates, thresholds, job, rec, probe, g, pre, applied)
    result.arrays.update(_motion_arrays(motion, peaks))
    if whitening is not None:
        result.arrays.update(whiten_index=whitening.index.astype(np.int32),
                             whiten_weight=whitening.weight.astype(np.float32))
    result.meta["motion"] = {"mode": mode, "applied": applied,
                             "range_um": motion.range_um() if motion is not None else 0.0,
                             "settings": asdict(settings.motion)}
    result.meta.update(
        sweepsort_version=_version(), recording=source.identity(),
        stream=getattr(rec, "stream_name", ""), settings=asdict(given),
        probe=probe.name, probe_origin=probe_origin or f"{probe.name} (given to sort_recording)",
        n_clusters=len(clusters), n_events_detected=int(len(ev_t)),
        timings_s=timings, executor=executor.name, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    timings["total_s"] = time.perf_counter() - t0
    save_sort(out, result)
    export_phy(result, out / "phy", dat_description(rec))
    n_acc = int((result.arrays["spike_unit"] >= 0).sum())
    log(f"{result.n_units} units, {n_acc} sorted spikes of {len(result.arrays['spike_unit'])}; "
        f"{timings['total_s']:.1f} s -> {out}")
    return result


def whitens(setting: str, motion_applied: bool) -> bool:
    """Whether a sort whitens: ``[preprocess] whiten`` "on", or "auto" when the sort does not
    correct motion."""
    return setting == "on" or (setting == "auto" and not motion_applied)


def _whiten(work, rec, s, probe, noise, drift, key, threads=1) -> tuple[Whitening, np.ndarray]:
    """``(whitening, noise (C,) µV that scales the traces)`` (:mod:`offline.sort.whitening`)
    from the noise windows of the (drift-corrected) traces; cached in the work folder."""
    key = key + json.dumps(["whiten", s.whiten_radius_um, s.whiten_eps, s.whiten_detection])
    cached = work.load("whiten", 0, key)
    if cached is not None:
        return Whitening(cached["index"], cached["weight"]), cached["noise_uv"]
    prep = Preprocessor(rec, s, noise, drift)
    fs = prep.geometry.sample_rate_hz
    spans = prep.noise_windows()
    spans = [spans[i] for i in np.unique(np.linspace(0, len(spans) - 1, WHITEN_WINDOWS)
                                         .round().astype(int))]
    windows = prep.windows(spans, threads)  # noise units, read once
    corr, _ = noise_correlation(windows, SPIKE_FREE_SIGMA,
                                int(round(SPIKE_FREE_MS * 1e-3 * fs)))
    whitening = local_whitening(corr, neighbour_lists(probe, s.whiten_radius_um), noise,
                                s.whiten_eps)
    # detection on the plain traces keeps their noise levels (the mix keeps them too, up to
    # the difference between the MAD and the spike-free variance); on the whitened ones, theirs
    noise_w = noise
    if s.whiten_detection:
        prep.whitening = whitening
        white = np.concatenate([np.abs(prep.whiten_scaled(x)) for x in windows], axis=1)
        del windows
        noise_w = mad_noise(white) * np.where(np.isfinite(noise), noise, 0).astype(np.float32)
        noise_w[~(noise_w > 0)] = np.inf  # a dead channel: inf x 0
    work.save("whiten", 0, key, {"index": whitening.index, "weight": whitening.weight,
                                 "noise_uv": noise_w})
    return whitening, noise_w


def _probe_ends_um(probe) -> tuple[float, float]:
    """The depths of the probe's first and last contacts (µm)."""
    y = np.asarray(probe.positions_um, np.float64)[:, 1]
    return float(y.min()), float(y.max())


def _assemble(matched, templates: TemplateSet, thresholds, job, rec, probe, g, pre,
              motion_applied: bool = False):
    s = job.settings.sort
    cols = {k: np.concatenate([m[k] for m in matched]) for k in matched[0]}
    order = np.lexsort((cols["channel"], cols["t"]))
    cols = {k: v[order] for k, v in cols.items()}
    unit = np.where(cols["accepted"], cols["unit"], -1).astype(np.int32)
    # one spike per unit within the lockout window (a peeling residue matched again)
    dedupe = max(int(round(job.settings.detect.lockout_us * 1e-6 * g.sample_rate_hz)), 1)
    for u in np.unique(unit[unit >= 0]):
        idx = np.flatnonzero(unit == u)
        close = np.flatnonzero(np.diff(cols["t"][idx]) < dedupe) + 1
        unit[idx[close]] = -1
    # drop units with too few spikes; renumber the rest 0..U-1
    counts = np.bincount(unit[unit >= 0], minlength=templates.n_units)
    keep = np.flatnonzero(counts >= s.min_unit_spikes)
    remap = np.full(templates.n_units + 1, -1, np.int32)
    remap[keep] = np.arange(len(keep), dtype=np.int32)
    unit = remap[unit]  # -1 maps to remap[-1] == -1
    noise = job.noise_uv
    scale = np.where(np.isfinite(noise), noise, 0).astype(np.float32)
    tpl_uv = templates.waveforms[keep] * np.where(
        templates.channels[keep] >= 0, scale[templates.channels[keep]], 0)[:, :, None]
    chans = templates.channels[keep]
    thr = np.asarray(thresholds, np.float32)[keep]
    peak_row = np.array([int(np.argmax(np.abs(w).max(axis=1))) for w in tpl_uv], int)
    peak_uv = np.array([tpl_uv[u, r, pre] for u, r in enumerate(peak_row)], np.float32)
    peak_ch = chans[np.arange(len(keep)), peak_row].astype(np.int32)
    t_sort = cols["t"]
    f = g.factor
    spike_index = (t_sort + f // 2) // f
    peak_of = peak_uv[np.maximum(unit, 0)] if len(keep) else np.zeros(len(unit), np.float32)
    amp_uv = np.where(unit >= 0, cols["amplitude"] * peak_of, 0)
    duration = g.n_samples_in / g.sample_rate_in_hz
    # units owning several templates: a bursting cell's scaled copies (burst_merge), then, when
    # the sort corrected motion, a unit split in time by what the correction left (drift_merge)
    unit_of, heads = np.arange(len(keep), dtype=np.int32), np.arange(len(keep))
    if s.burst_merge:
        unit_of, heads = burst_units(spike_index, unit, tpl_uv, chans, peak_ch, len(noise),
                                     g.sample_rate_in_hz, duration, s.burst_max_residual)
    joins = {"burst": int(len(keep) - len(heads)), "drift": 0, "split": 0}
    if motion_applied and s.drift_merge and len(heads) > 1:
        dense_heads = dense_templates(tpl_uv[heads], chans[heads], len(noise))
        group = drift_groups(spike_index, np.where(unit >= 0, unit_of[np.maximum(unit, 0)], -1),
                             dense_heads, np.asarray(probe.positions_um)[peak_ch[heads]],
                             g.sample_rate_in_hz, duration, s.drift_merge_max_distance,
                             s.drift_merge_max_overlap, end_depths_um=_probe_ends_um(probe),
                             end_max_distance=s.drift_merge_end_max_distance)
        counts = np.bincount(unit[unit >= 0], minlength=len(keep))
        n_before = len(heads)
        unit_of, heads = units_of_groups(group[unit_of], counts)
        joins["drift"] = int(n_before - len(heads))
    # one cell the merge test kept in two templates: joined when its spikes never coincide
    if s.merge_test_trough > 0 and s.split_join and len(heads) > 1:
        dense_heads = dense_templates(tpl_uv[heads], chans[heads], len(noise))
        group = split_groups(spike_index, np.where(unit >= 0, unit_of[np.maximum(unit, 0)], -1),
                             dense_heads, np.asarray(probe.positions_um)[peak_ch[heads]],
                             g.sample_rate_in_hz, duration, s.merge_distance)
        counts = np.bincount(unit[unit >= 0], minlength=len(keep))
        n_before = len(heads)
        unit_of, heads = units_of_groups(group[unit_of], counts)
        joins["split"] = int(n_before - len(heads))
    extra = np.setdiff1d(np.arange(len(keep)), heads)
    if len(keep):
        unit = np.where(unit >= 0, unit_of[np.maximum(unit, 0)], -1).astype(np.int32)
    if len(extra):  # a joined unit: one spike within the lockout again
        for u in np.unique(unit_of[extra]):
            idx = np.flatnonzero(unit == u)
            unit[idx[np.flatnonzero(np.diff(t_sort[idx]) < dedupe) + 1]] = -1
        amp_uv = np.where(unit >= 0, amp_uv, 0)
    arrays = {
        "spike_index": spike_index.astype(np.int64),
        "spike_index_sorting": t_sort.astype(np.int64),
        "spike_unit": unit,
        "spike_amplitude": cols["amplitude"].astype(np.float32),
        "spike_amplitude_uv": amp_uv.astype(np.float32),
        "spike_error": cols["error"].astype(np.float32),
        "spike_channel": cols["channel"].astype(np.int32),
        "templates_uv": tpl_uv[heads].astype(np.float32),
        "template_channels": chans[heads].astype(np.int32),
        "template_peak_channel": peak_ch[heads],
        "template_threshold": thr[heads],
        "extra_templates_uv": tpl_uv[extra].astype(np.float32),
        "extra_template_channels": chans[extra].astype(np.int32),
        "extra_template_threshold": thr[extra],
        "extra_template_unit": unit_of[extra].astype(np.int32),
        "noise_uv": noise.astype(np.float32),
        "channel_positions_um": np.asarray(probe.positions_um, np.float64),
    }
    n_units = len(heads)
    dense = dense_templates(tpl_uv[heads], chans[heads], len(noise), np.float32)
    sel = unit >= 0
    metrics = unit_metrics(spike_index[sel], unit[sel], amp_uv[sel], dense, noise,
                           g.sample_rate_in_hz, duration,
                           job.settings.quality.presence_bin_s)
    meta = {
        "recording_sample_rate_hz": g.sample_rate_in_hz,
        "sorting_sample_rate_hz": g.sample_rate_hz,
        "upsample_factor": f,
        "n_samples": g.n_samples_in,
        "n_channels": int(rec.n_channels),
        "first_sample_number": int(getattr(rec, "first_sample_number", 0)),
        "template_pre_samples": int(pre),
        "n_units": int(n_units),
        "n_extra_templates": int(len(extra)),
        "unit_joins": joins,  # templates joined to another's unit: bursts, drift splits
        "n_spikes_sorted": int(sel.sum()),
        "n_spikes_unsorted": int((~sel).sum()),
        "metrics": metrics,
        "spike_unit_meaning": "-1 = unsorted (detected, no template accepted it)",
        "error_units": "residual energy per sample, in noise variances (1 = pure noise)",
    }
    return SortResult(arrays, meta)


def motion_mode(s: MotionSettings, probe: Probe) -> str:
    """The motion mode a sort uses: ``off``, ``rigid`` or ``nonrigid`` (``auto`` resolved:
    off for the ``single`` layout, several electrode groups or a depth span under 100 µm;
    rigid under 3 depth windows; non-rigid otherwise)."""
    if s.mode != "auto":
        return s.mode
    span = float(np.ptp(probe.positions_um[:, 1])) if probe.n_channels else 0.0
    if probe.name == "single" or len(np.unique(probe.groups)) > 1 or span < 100:
        return "off"
    return "nonrigid" if span >= 3 * s.window_step_um else "rigid"


def _estimate(det, s: MotionSettings, mode: str, probe: Probe, g) -> tuple[Motion, dict]:
    t = np.concatenate([d["t"] for d in det]) / g.sample_rate_hz
    y = np.concatenate([d["y_um"] for d in det])
    a = np.concatenate([d["loc_amplitude"] for d in det])
    ys = probe.positions_um[:, 1]
    motion = estimate_motion(t, y, a, g.n_samples / g.sample_rate_hz, bin_s=s.bin_s,
                             bin_um=s.bin_um, max_displacement_um=s.max_displacement_um,
                             max_dt_s=s.max_dt_s, nonrigid=mode == "nonrigid",
                             window_um=s.window_um, window_step_um=s.window_step_um,
                             depth_range_um=(float(ys.min()), float(ys.max())))
    # a decimated raster of the peaks for plots (the report, sweepsort info)
    keep = np.arange(len(t))
    if len(t) > 200_000:
        keep = np.sort(np.random.default_rng(0).choice(len(t), 200_000, replace=False))
    return motion, {"time_s": t[keep], "depth_um": y[keep], "amplitude": a[keep]}


def _motion_arrays(motion: Motion | None, peaks: dict | None) -> dict:
    """Sort-file arrays of the motion estimate and the peak raster (empty without motion)."""
    if motion is None:
        return {}
    return {"motion_time_s": motion.time_s.astype(np.float64),
            "motion_depth_um": motion.depth_um.astype(np.float64),
            "motion_um": motion.displacement_um.astype(np.float32),
            "peak_time_s": peaks["time_s"].astype(np.float32),
            "peak_depth_um": peaks["depth_um"].astype(np.float32),
            "peak_amplitude": peaks["amplitude"].astype(np.float32)}


def load_motion(result) -> Motion | None:
    """The motion estimate stored in a sort result (None when the sort had none)."""
    a = result.arrays
    if "motion_um" not in a:
        return None
    return Motion(a["motion_time_s"], a["motion_depth_um"], a["motion_um"].astype(np.float64))


def _version() -> str:
    from oe_plugin import __version__

    return __version__
