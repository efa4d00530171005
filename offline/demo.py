"""``sweepsort demo [--quick] --out DIR``: the whole system on a virtual experiment.

1. **simulate** (:mod:`offline.sim`): sweepstim runs a drifting-grating and a sparse-noise
   script headless; model V1 neurons respond to what it showed; their spikes on a probe plus
   noise and the sampled TTL lines become an Open Ephys Binary recording, with ground truth;
2. **sort offline**: ``sweepsort sort`` (causal filter, so the online module can use the sort);
3. **online**: each stimulus session's stretch of the recording is replayed, as one
   acquisition, through ``oe_plugin/modules/pipeline.py`` in the host simulator (detection +
   classification against the sort + sweep decoding + online statistics);
4. **analyse**: the experiments are loaded (sweeps decoded from the recorded TTLs), tuning
   curves (von Mises fits) and STAs computed, ``sweepsort report`` written;
5. **compare** with the ground truth: per neuron the matched unit, accuracy, true vs recovered
   preferred orientation, OSI, RF centre; decoded sweeps vs the frame log; online statistics vs
   offline tuning. Written to ``DIR/summary.json`` and ``DIR/summary.txt``, and printed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

PIPELINE_MODULE = Path(__file__).resolve().parents[1] / "oe_plugin" / "modules" / "pipeline.py"
SNR_GOOD = 6.0


def _ori_diff(a: float, b: float) -> float:
    """Absolute orientation difference (period 180°)."""
    d = abs((a - b) % 180.0)
    return float(min(d, 180.0 - d))


# -- sweeps decoded vs the frame log ------------------------------------------------------------

def compare_decoded(decoded: np.ndarray, frames: dict, markers: bool = True
                    ) -> tuple[int, int]:
    """(frames expected, frames decoded exactly): every frame-log row whose frame number was
    decoded with the same code and no error flag (START/END markers: the marker flag;
    ``markers=False``: marker rows are not counted)."""
    from oe_plugin.protocol import spec
    from oe_plugin.protocol.verify import sent_sweeps

    code = frames["code"].astype(np.int64)
    fn = frames["frame_number"].astype(np.int64)
    # a session-code chunk (between two STARTs) is a START-block refresh: expect the flag
    chunk = (sent_sweeps(code) == spec.SWEEP_NONE) & (code != spec.SWEEP_NONE) \
        & (code != spec.CODE_END)
    code = np.where(chunk, spec.CODE_START, code)
    if not markers:
        body = (code != spec.CODE_START) & (code != spec.CODE_END)
        code, fn = code[body], fn[body]
    inside = (decoded["flags"] & spec.OUTSIDE_EXPERIMENT) == 0
    is_marker = (decoded["flags"] & (spec.EXPERIMENT_START | spec.EXPERIMENT_END)) != 0
    keep = inside | is_marker
    dec = decoded[keep]
    by_frame = {}
    for rec in dec:
        by_frame.setdefault(int(rec["frame_number"]), rec)
    exact = 0
    for f, c in zip(fn.tolist(), code.tolist(), strict=True):
        r = by_frame.get(f)
        if r is None or int(r["flags"]) & spec.ERROR_MASK:
            continue
        if c == spec.CODE_START:
            exact += bool(int(r["flags"]) & spec.EXPERIMENT_START)
        elif c == spec.CODE_END:
            exact += bool(int(r["flags"]) & spec.EXPERIMENT_END)
        else:
            exact += int(r["sweep_index"]) == c
    return int(code.size), int(exact)


# -- online statistics vs offline tuning --------------------------------------------------------

def online_tuning(stats: dict, conditions: list, unit_row: int, param: str = "ori_deg"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(values, rate Hz) per value of ``param`` from the online sweep counts of one unit row
    (``stats``: one experiment's ``sweep_counts`` (R, NS) and ``sweep_seconds`` (NS,))."""
    counts = stats["sweep_counts"][unit_row]
    secs = stats["sweep_seconds"]
    vals = np.array([c[param] for c in conditions], float)
    out_v = np.unique(vals)
    rate = np.array([counts[:len(conditions)][vals == v].sum()
                     / max(secs[:len(conditions)][vals == v].sum(), 1e-9) for v in out_v])
    return out_v, rate


def _rf_centre(sta, e) -> tuple[float, float]:
    """RF centre (deg) from the STA peak map: centroid of |map| above half its maximum."""
    m = np.abs(sta.peak_map)
    ny, nx = m.shape
    st = e.session.get("static", {}) if isinstance(e.session, dict) else {}
    dyn = e.conditions[0] if e.conditions else {}
    w, h = float(dyn.get("width_deg", 40.0)), float(dyn.get("height_deg", 40.0))
    cx, cy = float(dyn.get("x_deg", 0.0)), float(dyn.get("y_deg", 0.0))
    nx = int(st.get("n_cells_x", nx))
    ny = int(st.get("n_cells_y", ny))
    wts = np.where(m >= 0.5 * m.max(), m, 0.0)
    rows, cols = np.mgrid[0:ny, 0:nx]
    r = (wts * rows).sum() / wts.sum()
    c = (wts * cols).sum() / wts.sum()
    yi = ny - 1 - r  # row 0 = top
    return (cx + (c + 0.5 - nx / 2) * w / nx, cy + (yi + 0.5 - ny / 2) * h / ny)


# -- the run ------------------------------------------------------------------------------------

def run_demo(out, *, quick: bool = False, probe: str = "polytrode54", jobs: int = 2,
             seed: int = 1, report_units: int | None = None, drift_um: float = 15.0,
             log=print) -> dict:
    from offline.sim.build import SimConfig, build_experiment, load_truth

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    cfg = (SimConfig.quick(probe=probe, seed=seed, drift_um=drift_um) if quick
           else SimConfig(probe=probe, seed=seed, drift_um=drift_um))

    log(f"[1/5] simulating: {cfg.n_neurons} neurons on {probe}, probe drift "
        f"{cfg.drift_um:g} µm")
    built = build_experiment(out / "sim", cfg, log=log)
    timings.update({f"simulate.{k}": v for k, v in built.timings_s.items() if k != "total"})
    timings["simulate"] = built.timings_s["total"]
    truth, meta = load_truth(built.truth_path)
    fs = meta["sample_rate_hz"]
    log(f"  recording: {built.n_samples / fs:.1f} s, {meta['ttl']['n_events']} TTL events -> "
        f"{built.session_root}")

    log("[2/5] sweepsort sort (offline)")
    t = time.perf_counter()
    sort_dir = out / "sort"
    sort_toml = out / "sort.toml"
    sort_toml.write_text('[preprocess]\nfilter = "causal"   # the online module matches on '
                         'causally filtered data\n')
    from offline.cli import main as cli_main

    code = cli_main(["sort", str(built.session_root), "--out", str(sort_dir), "--probe", probe,
                     "--jobs", str(jobs), "--config", str(sort_toml), "--quiet"])
    if code != 0:
        raise RuntimeError(f"sweepsort sort failed ({code})")
    timings["sort"] = time.perf_counter() - t

    log("[3/5] online: each session replayed through pipeline.py in the host simulator")
    t = time.perf_counter()
    online = _run_online(built, sort_dir, out / "online", fs, log)
    timings["online_replay"] = time.perf_counter() - t

    log("[4/5] analysis: experiments, tuning, STA, report")
    t = time.perf_counter()
    from offline.analysis.model import Recording

    rec = Recording(built.session_root, sort_dirs=[sort_dir])
    exps = rec.experiments
    e_grat = next(e for e in exps if e.session.get("stimulus") == "grating")
    e_sn = next(e for e in exps if e.session.get("stimulus") == "sparse_noise")
    log("  session files matched by the TTL session code: " + ", ".join(
        f"{e.name} {e.decoded_code[1] or 'no stretch'}"
        + (" (code)" if e.decoded_code[0] is not None
           and e.decoded_code[0] == e.session.get("session_code") else " (frame log)")
        for e in exps))
    neurons = rec.sorts[next(n for n in rec.sorts if n != "online")].neurons
    unit_results = {}
    for uid, n in neurons.items():
        tr = n.tune(e_grat, "ori_deg")
        sta = n.sta(e_sn)
        unit_results[int(uid)] = dict(tuning=tr, sta=sta, rf=_rf_centre(sta, e_sn))
    timings["tuning_sta"] = time.perf_counter() - t

    t = time.perf_counter()
    report = out / "report.html"
    args = ["report", str(built.session_root), "--out", str(report), "--sort", str(sort_dir),
            "--quiet"]
    if report_units is not None:
        args += ["--units", *[str(u) for u in sorted(unit_results)[:report_units]]]
    cli_main(args)
    timings["report"] = time.perf_counter() - t

    log("[5/5] comparing with the ground truth")
    t = time.perf_counter()
    summary = _summarise(built, truth, meta, rec, neurons, unit_results, online, e_grat, e_sn)
    summary["drift"] = drift_summary(truth, sort_dir)
    timings["compare"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    summary["quick"] = quick
    summary["probe"] = probe
    summary["report"] = str(report)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    text = format_summary(summary)
    (out / "summary.txt").write_text(text + "\n")
    log(text)
    return summary


REPLAY_MARKER = ".sweepsort-demo-replay"


def fresh_replay_dir(d: Path) -> None:
    """Make ``d`` (one session's replay folder) empty for a new replay. The pipeline module
    never overwrites its numbered online files (``online_sweeps_000.bin``, ``_001`` …) and the
    analysis reads them all, so an earlier demo run's files there would be counted again. Such
    a folder (the marker file, or from older runs the demo's ``pipeline.toml``) is emptied; any
    other non-empty folder is refused, untouched."""
    import shutil

    if d.exists() and any(d.iterdir()):
        if not ((d / REPLAY_MARKER).is_file() or (d / "pipeline.toml").is_file()):
            raise FileExistsError(f"{d} exists and is not a sweepsort demo replay folder; give "
                                  "the demo an empty or new output folder")
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / REPLAY_MARKER).write_text("sweepsort demo replays a session here (emptied on re-run)\n")


def _run_online(built, sort_dir: Path, online_dir: Path, fs: float, log) -> dict:
    from oe_plugin.host.session import run_session
    from oe_plugin.host.sources import RecordingSource
    from oe_plugin.outputs.stats_file import read_stats
    from offline.monitor import experiment_session
    from offline.online_sweeps import read_online_sweeps

    result = {}
    for s, (lo, hi) in zip(built.sessions, built.session_windows, strict=True):
        d = online_dir / s.name
        fresh_replay_dir(d)
        toml = d / "pipeline.toml"
        # the window is played as a new acquisition: its motion starts lo samples into the sort
        toml.write_text(
            f'[match]\nsort_dir = "{sort_dir.resolve()}"\nwrite_file = true\n'
            f'motion_start_s = {max(lo, 0) / fs!r}\n\n'
            f'[decoder]\nwrite_file = true\n\n'
            f'[stats]\nsession_file = "{s.session_path.resolve()}"\n')
        proto = {k: v for k, v in s.protocol.items()
                 if k not in ("protocol_version", "session_code")}
        with open(toml, "a") as f:
            f.write("\n[protocol]\n")
            for k, v in proto.items():
                f.write(f"{k} = {json.dumps(v)}\n")
        source = RecordingSource(built.session_root, start_index=lo, stop_index=hi, rebase=True)
        t = time.perf_counter()
        rep = run_session(str(PIPELINE_MODULE), source, None, recording_dir=str(d),
                          config_path=str(toml))
        wall = time.perf_counter() - t
        decoded = read_online_sweeps(d)
        arrays, stats_meta = read_stats(d)
        # per-experiment tables: this window holds one session, its START is experiment 1
        exp, matched = experiment_session(arrays, stats_meta)
        if matched is None or matched.path.resolve() != s.session_path.resolve():
            log(f"  {s.name}: online statistics {exp.label} not matched to its session file")
        stats = dict(units=arrays["units"], sweep_counts=exp.sweep_counts,
                     sweep_seconds=exp.sweep_seconds, experiment=exp.number)
        result[s.name] = dict(report=rep, decoded=decoded, stats=stats, stats_meta=stats_meta,
                              wall_s=wall, window=(lo, hi))
        log(f"  {s.name}: {rep.n_blocks} blocks of {rep.n_samples // max(rep.n_blocks, 1)} "
            f"samples, process() p50 {rep.latency_p50_ms:.3f} ms, p99 "
            f"{rep.latency_p99_ms:.3f} ms; {decoded.size} frames decoded; {wall:.1f} s")
    return result


def _summarise(built, truth, meta, rec, neurons, unit_results, online, e_grat, e_sn) -> dict:
    from offline.sim.compare import accuracy_matrix, match_units

    fs = meta["sample_rate_hz"]
    first = meta["first_sample_number"]
    n_truth = len(meta["neurons"])
    gt = [truth["spike_sample_index"][truth["spike_unit"] == i] for i in range(n_truth)]
    units = {int(u): np.sort(n.spike_samples - first) for u, n in neurons.items()}
    acc, ids, _off = accuracy_matrix(gt, units, fs)
    matches = match_units(acc, ids)

    # online statistics (gratings session) vs offline tuning
    on = online["gratings"]
    stats = on["stats"]
    conditions = e_grat.conditions
    online_cmp = {}
    units_row = {int(u): k for k, u in enumerate(stats["units"]) if int(u) >= 0}

    records = []
    for i, nrn in enumerate(meta["neurons"]):
        uid, a = matches[i]
        r = dict(neuron=i, snr=round(float(truth["snr"][i]), 2), matched_unit=uid,
                 accuracy=round(a, 3), true_pref_ori_deg=round(nrn["pref_ori_deg"], 1),
                 recovered_pref_ori_deg=None, osi=None,
                 rf_center_deg=None, true_rf_center_deg=[round(nrn["rf_x_deg"], 1),
                                                         round(nrn["rf_y_deg"], 1)],
                 true_pref_dir_deg=round(nrn["pref_dir_deg"], 1), n_spikes=nrn["n_spikes"])
        if uid is not None:
            ur = unit_results[uid]
            tr = ur["tuning"]
            r["recovered_pref_dir_deg"] = round(float(tr.preferred) % 360.0, 1)
            r["recovered_pref_ori_deg"] = round(float(tr.preferred) % 180.0, 1)
            r["ori_error_deg"] = round(_ori_diff(r["recovered_pref_ori_deg"],
                                                 nrn["pref_ori_deg"]), 1)
            r["osi"] = round(float(tr.osi), 3)
            r["rf_center_deg"] = [round(float(x), 1) for x in ur["rf"]]
            if uid in units_row:
                v, rate_on = online_tuning(stats, conditions, units_row[uid])
                rate_off = np.interp(v, tr.values, tr.mean_rate_hz)
                corr = float(np.corrcoef(rate_on, rate_off)[0, 1])
                pref_on = float(np.rad2deg(np.angle(np.sum(rate_on * np.exp(
                    2j * np.deg2rad(v))))) / 2.0 % 180.0)
                pref_off = float(np.rad2deg(np.angle(np.sum(rate_off * np.exp(
                    2j * np.deg2rad(v))))) / 2.0 % 180.0)
                online_cmp[uid] = dict(r=corr, pref_ori_online=pref_on,
                                       pref_ori_offline=pref_off,
                                       rate_ratio=float(rate_on.sum() / max(rate_off.sum(),
                                                                            1e-9)))
                r["online_vs_offline_tuning_r"] = round(corr, 3)
                r["online_vs_offline_pref_ori_diff_deg"] = round(_ori_diff(pref_on, pref_off),
                                                                 1)
        records.append(r)

    # decoded sweeps vs the frame logs: the online decoder's file and the offline decoding
    expected = exact_online = exact_offline = expected_offline = 0
    for s in built.sessions:
        n, k = compare_decoded(online[s.name]["decoded"], s.frames)
        expected += n
        exact_online += k
        e = e_grat if s.stimulus == "grating" else e_sn
        n2, k2 = compare_decoded(e.refreshes, s.frames, markers=False)
        expected_offline += n2
        exact_offline += k2
    good = [r for r in records if r["snr"] >= SNR_GOOD]
    ok = [r for r in good if r["matched_unit"] is not None and r["accuracy"] >= 0.8
          and r.get("ori_error_deg", 999) <= 10.0]
    return dict(
        neurons=records,
        frames_expected=expected,
        frames_decoded_exact=exact_online,
        frames_decoded_exact_offline=exact_offline,
        frames_expected_offline=expected_offline,
        n_units_sorted=len(neurons),
        n_neurons=n_truth,
        n_good_snr=len(good),
        n_good_recovered=len(ok),
        fraction_good_recovered=round(len(ok) / max(len(good), 1), 3),
        online_vs_offline=online_cmp,
        online=dict((name, dict(latency_p50_ms=o["report"].latency_p50_ms,
                                latency_p99_ms=o["report"].latency_p99_ms,
                                n_blocks=o["report"].n_blocks, wall_s=round(o["wall_s"], 2),
                                frames_decoded=int(o["decoded"].size)))
                    for name, o in online.items()),
        duration_s=round(meta["duration_s"], 1),
    )


def drift_summary(truth, sort_dir: Path) -> dict:
    """The simulated probe drift against the sort's motion estimate: both taken relative to
    their mean over the recording (an estimate is relative); for a non-rigid estimate, the
    depth window nearest the probe's middle."""
    from offline.sort import load_sort

    t = np.asarray(truth.get("drift_time_s", np.zeros(0)), float)
    true = np.asarray(truth.get("drift_um", np.zeros(0)), float)
    res = load_sort(sort_dir)
    mot = res.meta.get("motion") or {}
    out = dict(true_range_um=round(float(np.ptp(true)), 1) if true.size else 0.0,
               mode=mot.get("mode"), applied=bool(mot.get("applied")),
               estimated_range_um=None, rms_error_um=None)
    if "motion_um" in res.arrays and true.size:
        depth = np.asarray(res.arrays["motion_depth_um"], float)
        col = int(np.argmin(np.abs(depth - np.median(depth))))
        est = np.interp(t, np.asarray(res.arrays["motion_time_s"], float),
                        np.asarray(res.arrays["motion_um"], float)[:, col])
        err = (est - est.mean()) - (true - true.mean())
        out.update(estimated_range_um=round(float(np.ptp(est)), 1),
                   rms_error_um=round(float(np.sqrt(np.mean(err ** 2))), 2))
    return out


def format_summary(s: dict) -> str:
    lines = [f"sweepsort demo: {s['n_neurons']} model neurons, {s['duration_s']} s recorded on "
             f"{s.get('probe', '?')}; {s['n_units_sorted']} units sorted",
             "",
             f"{'neuron':>6} {'SNR':>5} {'unit':>5} {'acc':>5} {'ori true':>8} {'ori rec':>7} "
             f"{'err':>5} {'OSI':>5} {'RF true (deg)':>14} {'RF rec (deg)':>14} {'on/off r':>8}"]
    for r in s["neurons"]:
        def f(x, fmt):
            return format(x, fmt) if x is not None else "-"
        rf_t = "({:.1f}, {:.1f})".format(*r["true_rf_center_deg"])
        rf_r = "({:.1f}, {:.1f})".format(*r["rf_center_deg"]) if r["rf_center_deg"] else "-"
        lines.append(
            f"{r['neuron']:>6} {r['snr']:>5.1f} {f(r['matched_unit'], 'd'):>5} "
            f"{r['accuracy']:>5.2f} {r['true_pref_ori_deg']:>8.1f} "
            f"{f(r['recovered_pref_ori_deg'], '.1f'):>7} {f(r.get('ori_error_deg'), '.1f'):>5} "
            f"{f(r['osi'], '.2f'):>5} {rf_t:>14} {rf_r:>14} "
            f"{f(r.get('online_vs_offline_tuning_r'), '.3f'):>8}")
    lines += ["",
              f"neurons with SNR >= {SNR_GOOD:g}: {s['n_good_recovered']}/{s['n_good_snr']} "
              f"matched at accuracy >= 0.8 with orientation within 10 deg "
              f"({100 * s['fraction_good_recovered']:.0f} %)",
              f"sweeps: {s['frames_decoded_exact']}/{s['frames_expected']} frame-log refreshes "
              f"decoded exactly online; offline from the recorded TTLs "
              f"{s['frames_decoded_exact_offline']}/{s['frames_expected_offline']} "
              f"(marker refreshes excluded)"]
    d = s.get("drift")
    if d:
        est = (f"estimated {d['estimated_range_um']} µm, RMS error {d['rms_error_um']} µm"
               if d["estimated_range_um"] is not None else "no estimate stored")
        lines.append(f"probe drift: {d['true_range_um']} µm simulated; sort motion "
                     f"{d['mode']} ({'corrected' if d['applied'] else 'not corrected'}), "
                     f"{est}")
    if "timings_s" in s:
        tt = s["timings_s"]
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in tt.items()
                          if "." not in k and k != "total")
        lines.append(f"time: {tt['total']:.1f} s end to end ({parts})")
    return "\n".join(lines)
