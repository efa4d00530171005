"""The ``sweepsort`` command: replay, detect, sort, info, report, monitor, demo.

Subcommands:

- ``sweepsort replay RECORDING --module PATH``: play a recording through a Python Processor
  module in the host simulator (or its native, GIL-less runner) and report what it found and how
  fast — do this before trusting a module in a live experiment;
- ``sweepsort detect RECORDING --out DIR``: offline detection with the online kernels, written
  to ``DIR/peaks.npy`` (+ ``peaks.json``).
- ``sweepsort sort RECORDING --out DIR``: the offline template sort (docs/sorting.md): sort
  file, metrics and a Phy folder; resumable; ``--scheduler`` runs the chunks on Dask;
- ``sweepsort info RECORDING``: recordings, streams, channels, duration and TTL events.
- ``sweepsort report RECORDING_DIR --out report.html``: the analysis report (docs/analysis.md):
  a population page and a section per unit, self-contained HTML, rendered headless.
- ``sweepsort export-nwb RECORDING --sort SORT_DIR --out FILE.nwb``: the sort (electrodes, units,
  metrics) and the stimulus (one trial per presented sweep) as one NWB file (docs/analysis.md).
- ``sweepsort monitor RECORDING_DIR [--experiment N] [--session FILE_OR_DIR]...``: live plots of
  the pipeline module's online statistics for one stimulus experiment (``--once --png OUT``:
  one headless PNG).
- ``sweepsort demo [--quick] --out DIR``: the virtual experiment (docs/demo.md): sweepstim drives
  model neurons, their recording is sorted online and offline and analysed against the truth.

Errors in the input (a missing folder, a bad setting) end with a one-line message and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

# Only argparse-level imports at module level: ``sweepsort --help`` (and every ``sweepsort CMD
# --help``) must not load numpy, numba, scipy or the kernels (tests/test_cli_startup.py). Each
# command handler imports what it needs.


def _plain(text: str) -> str:
    """Docstring text as plain help text: RST roles (:mod:`x.y`) and inline literals
    (double backticks) become their bare words."""
    text = re.sub(r":[a-z]+:`~?([^`]*)`", r"\1", text)
    return " ".join(text.replace("``", "").split())


def _node_arg(value: str):
    return int(value) if value.lstrip("-").isdigit() else value


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="session folder, 'Record Node …' folder or recording folder")
    p.add_argument("--node", type=_node_arg, help="record node: index, number (101) or name")
    p.add_argument(
        "--recording", dest="recording_index", type=int, help="recording index (0-based)"
    )
    p.add_argument("--stream", type=_node_arg, help="stream index or name")
    _add_truncated_arg(p)


def _add_truncated_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-truncated", action="store_true",
                   help="read the complete frames of a data file that ends mid-frame (the GUI "
                        "died while recording) instead of stopping")


def _jobs_arg(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value!r}") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (worker processes), got {jobs}")
    return jobs


def _drift_arg(value: str) -> float:
    try:
        drift = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of µm, got {value!r}") from None
    if not abs(drift) <= 200.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be within ±200 µm, got {value}")
    return drift


def _load_detection_settings(config: str | None):
    from oe_plugin.config import from_table, load_toml
    from oe_plugin.settings import DetectSettings, FilterSettings

    table = load_toml(config) if config else {}
    return (
        from_table(FilterSettings, table.get("filter"), "filter"),
        from_table(DetectSettings, table.get("detect"), "detect"),
    )


def cmd_detect(args) -> int:
    from dataclasses import replace

    from offline.detect import describe_run, detect_recording, save_peaks
    from offline.probe_source import resolve_probe
    from offline.recording import open_recording

    filt, det = _load_detection_settings(args.config)
    if args.threshold_uv is not None:
        det = replace(det, threshold_uv=args.threshold_uv)
    rec = open_recording(args.recording, args.node, args.recording_index, args.stream,
                         allow_truncated=args.allow_truncated)
    config_probe = _config_probe(args.config)
    probe, origin = resolve_probe(args.probe, config_probe, rec, require=False)
    if args.probe is not None or config_probe is None:
        det = replace(det, probe=args.probe if args.probe is not None else probe.name)
    print(f"probe: {origin}")
    t0 = time.perf_counter()
    peaks, stats = detect_recording(rec, filt, det, probe, progress=not args.quiet)
    wall = time.perf_counter() - t0
    path = save_peaks(args.out, peaks, describe_run(rec, filt, det, probe, stats))
    seconds = rec.n_samples / rec.sample_rate_hz
    print(
        f"{len(peaks)} peaks on {rec.n_channels} channels in {seconds:.1f} s of data "
        f"({len(peaks) / max(seconds, 1e-9):.1f}/s); detection took {wall:.2f} s "
        f"({seconds / max(wall, 1e-9):.0f}x real time) -> {path}"
    )
    return 0


def cmd_replay(args) -> int:
    import numpy as np

    from oe_plugin.host.blocks import gui_block_size
    from oe_plugin.host.replay import replay
    from offline.online_spikes import (
        online_spike_files,
        read_online_spikes,
        read_online_spikes_meta,
    )

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="sweepsort-replay-"))
    # the module never overwrites a spike file: an earlier replay's files in the same folder
    # stay, and this run's are the ones that were not there before it
    earlier = set(online_spike_files(out))
    report = replay(
        args.recording,
        args.module,
        config_path=args.config,
        block_size=args.block_size,
        random_blocks=args.random_blocks,
        native=args.native,
        node=args.node,
        recording=args.recording_index,
        stream=args.stream,
        recording_dir=out,
        allow_truncated=args.allow_truncated,
    )
    fs = report.sample_rate_hz
    seconds = report.n_samples / fs
    block = args.block_size or gui_block_size(fs)
    print(report.summary())
    print(
        f"real-time budget per {block}-sample block: {block / fs * 1e3:.1f} ms; "
        f"process() p99 uses {100 * report.latency_p99_ms / (block / fs * 1e3):.2f} % of it"
    )
    written = [p for p in online_spike_files(out) if p not in earlier]
    if not written:
        print(f"the module wrote no spike file under {out}")
        return 0
    if earlier:
        print(f"({len(earlier)} spike file(s) of earlier runs under {out} are not counted)")
    spikes = np.concatenate([read_online_spikes(p) for p in written])
    spikes = spikes[np.argsort(spikes["sample_number"], kind="stable")]
    probes = sorted({str(m["metadata"]["probe"]) for p in written
                     for m in read_online_spikes_meta(p)
                     if (m.get("metadata") or {}).get("probe")})
    if probes:
        config = args.config or _default_config(args.module) or "the module's defaults"
        print(f"probe: {', '.join(probes)} (the module's [detect] probe, from {config})")
    print(
        f"{len(spikes)} spikes detected online in {seconds:.2f} s "
        f"({len(spikes) / max(seconds, 1e-9):.1f} spikes/s), in the module's spike file "
        f"(spikes are not TTL events) -> {out}"
    )
    if len(spikes):
        channels, counts = np.unique(spikes["channel"], return_counts=True)
        per = ", ".join(f"ch{c}:{n}" for c, n in zip(channels, counts, strict=True))
        print(f"per channel: {per}")
        amp = np.abs(spikes["amplitude_uv"])
        print(f"|amplitude| median {np.median(amp):.1f} µV, max {amp.max():.1f} µV")
    tracked = np.isfinite(spikes["displacement_um"])
    if tracked.any():
        d = spikes["displacement_um"][tracked]
        print(f"drift correction: displacement used {d.min():.1f} .. {d.max():.1f} µm "
              f"(per spike in the spike file)")
    if args.compare_offline:
        _compare_offline(args, spikes, out)
    return 0


def _compare_offline(args, spikes, out=None) -> None:
    """The offline reference of the module's spikes: the causal sort from the module's sort
    folder (online_sorter, pipeline), else detection with the same settings. A module that
    tracked motion live is compared given the motion it applied (its statistics file's motion
    table: the pipeline module with ``[stats]`` on)."""
    import numpy as np

    from offline.detect import detect_recording
    from offline.online_match import (
        causal_sort,
        compare_spikes,
        motion_options_of_module,
        sort_dir_of_module,
    )
    from offline.recording import open_recording

    config = args.config or _default_config(args.module)
    rec = open_recording(args.recording, args.node, args.recording_index, args.stream,
                         allow_truncated=args.allow_truncated)
    try:
        sort_dir = sort_dir_of_module(args.module, config)
    except ValueError as exc:
        print(f"no offline comparison: {exc}")
        return
    if sort_dir is not None:
        options = motion_options_of_module(args.module, config)
        if options.get("track") is not None:
            history = _tracked_motion(out)
            if history is None:
                print("no offline comparison: the module tracked motion live and the motion it "
                      "applied is not in a statistics file under the output (replay the "
                      "pipeline module with [stats] enabled)")
                return
            options["motion_history_um"] = history
            print(f"motion input: the module's live estimate, {len(history)} rows of "
                  f"{history.shape[1]} depth window(s), {history.min():.1f} .. "
                  f"{history.max():.1f} µm")
        ref = causal_sort(rec.read_uv(0, rec.n_samples), rec.sample_rate_hz, str(sort_dir),
                          **options)
        same, why = compare_spikes(spikes, ref)
        verdict = "identical" if same else f"DIFFERENT ({why})"
        print(f"offline causal sort with {sort_dir}: {len(ref)} spikes, {verdict} to online")
        return
    filt, det = _load_detection_settings(config)
    peaks, _ = detect_recording(rec, filt, det)
    same = (
        len(peaks) == len(spikes)
        and np.array_equal(peaks["sample_index"], spikes["sample_number"])
        and np.array_equal(peaks["channel_index"], spikes["channel"])
        and np.array_equal(peaks["amplitude_uv"], spikes["amplitude_uv"])
    )
    verdict = "identical" if same else "DIFFERENT"
    print(f"offline detection with the same settings: {len(peaks)} peaks, {verdict} to online")


def _tracked_motion(out):
    """The motion table of the statistics file under ``out`` ((K, W) µm; None: none there)."""
    from oe_plugin.outputs.stats_file import read_stats

    if out is None:
        return None
    try:
        arrays, _ = read_stats(out)
    except (FileNotFoundError, ValueError):
        return None
    motion = arrays.get("motion_um")
    return motion if motion is not None and motion.size else None


def _default_config(module: str) -> str | None:
    candidate = Path(module).with_suffix(".toml")
    return str(candidate) if candidate.exists() else None


def _config_probe(config: str | None) -> str | None:
    """``[detect] probe`` when the settings file sets it (None: not set)."""
    from oe_plugin.config import load_toml

    if not config:
        return None
    probe = (load_toml(config).get("detect") or {}).get("probe")
    return None if probe is None else str(probe)


def cmd_sort(args) -> int:
    from dataclasses import replace

    from offline.probe_source import resolve_probe
    from offline.sort import RecordingSource, load_sort_settings, sort_recording
    from offline.sort.executor import make_executor

    settings = load_sort_settings(args.config)
    if args.flat_dtype:
        if not (args.flat_channels and args.flat_rate_hz):
            print("sweepsort sort: a flat binary needs --flat-channels and --flat-rate-hz",
                  file=sys.stderr)
            return 2
        source = RecordingSource(str(args.recording), kind="flat", flat={
            "dtype": args.flat_dtype, "n_channels": args.flat_channels,
            "sample_rate_hz": args.flat_rate_hz, "gain_uv": args.flat_gain_uv,
            "offset": args.flat_offset}, allow_truncated=args.allow_truncated)
    else:
        source = RecordingSource(str(Path(args.recording).resolve()), node=args.node,
                                 recording=args.recording_index, stream=args.stream,
                                 allow_truncated=args.allow_truncated)
    rec = source.open()
    config_probe = _config_probe(args.config)
    probe, origin = resolve_probe(args.probe, config_probe, rec, require=True)
    if args.probe is not None or config_probe is None:
        spec = args.probe if args.probe is not None else probe.name
        settings = replace(settings, detect=replace(settings.detect, probe=spec))
    print(f"probe: {origin}")
    log = (lambda msg: None) if args.quiet else print
    with make_executor(args.jobs, args.scheduler) as executor:
        sort_recording(source, args.out, settings, probe, executor, progress=not args.quiet,
                       log=log, probe_origin=origin)
    return 0


def cmd_info(args) -> int:
    import json

    from offline.info import format_info, recording_info

    if (Path(args.recording) / "sort.json").is_file():
        return _sort_info(args)
    if args.motion_png:
        raise SystemExit("sweepsort info: --motion-png needs a sort folder (with sort.json)")
    entries = recording_info(args.recording, args.node, allow_truncated=args.allow_truncated)
    print(json.dumps(entries, indent=2) if args.json else format_info(entries))
    return 0


def _sort_info(args) -> int:
    """``sweepsort info SORT_DIR``: the sort's size and its probe-motion estimate."""
    import json

    from offline.sort import load_sort
    from offline.sort.motion_plot import load_motion_arrays, motion_summary, plot_motion

    res = load_sort(args.recording)
    m = res.meta
    motion = load_motion_arrays(args.recording)
    info = {"sort": str(args.recording), "units": res.n_units,
            "spikes_sorted": m.get("n_spikes_sorted"),
            "spikes_unsorted": m.get("n_spikes_unsorted"), "probe": m.get("probe"),
            "motion": m.get("motion", {"mode": "none"})}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(f"sort {info['sort']}: {info['units']} units, {info['spikes_sorted']} sorted "
              f"spikes ({info['spikes_unsorted']} unsorted), probe {info['probe']}")
        mm = info["motion"]
        print(motion_summary(motion) + f" (mode {mm.get('mode')}, traces "
              f"{'corrected' if mm.get('applied') else 'not corrected'})"
              if motion is not None else "motion: not estimated")
    if args.motion_png:
        if motion is None:
            raise SystemExit(f"sweepsort info: {args.recording} has no motion estimate")
        from offline.analysis._plot import figure_of, png_bytes

        Path(args.motion_png).write_bytes(png_bytes(figure_of(plot_motion(motion))))
        print(f"motion figure -> {args.motion_png}")
    return 0


def _sorts_beside(recording: Path) -> list[Path]:
    """Sort folders next to ``recording`` (in its parent, two levels deep) whose sort.json
    says they sort data inside it: the hint when the report finds none."""
    import json

    try:
        target = recording.resolve()
    except OSError:
        return []
    found = []
    for pattern in ("*/sort.json", "*/*/sort.json"):
        for p in sorted(target.parent.glob(pattern)):
            if target in p.resolve().parents:
                continue  # inside the recording: found by the report itself
            try:
                src = Path(json.loads(p.read_text())["recording"]["path"]).resolve()
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if src == target or target in src.parents:
                found.append(p.parent)
    return found


def cmd_report(args) -> int:
    from offline.analysis.model import Recording
    from offline.analysis.report import write_report
    from offline.sort.sortfile import SortFileError

    for folder in args.sort or ():
        if not ((Path(folder) / "sort.json").is_file() and (Path(folder) / "sort.npz").is_file()):
            raise SortFileError(f"--sort {folder}: not a complete sort folder (sort.json + "
                                "sort.npz; the folder 'sweepsort sort --out' wrote)")
    rec = Recording(args.recording, sort_dirs=args.sort or (), session_files=args.session or (),
                    refresh_source=args.refresh_source)
    if not rec.sorts:
        beside = _sorts_beside(rec.path)
        hint = (f"sorts of this recording next to it: {', '.join(map(str, beside))}; pass "
                f"--sort {beside[-1]}" if beside else
                "pass --sort SORT_DIR (the folder 'sweepsort sort --out' wrote)")
        print(f"sweepsort report: no sort of {rec.path} (no sort folder, Phy folder, GUI or "
              f"online spike file inside it); {hint}", file=sys.stderr)
        return 2
    if args.sort_name is not None and args.sort_name not in rec.sorts:
        print(f"sweepsort report: no sort {args.sort_name!r}; sorts: {sorted(rec.sorts)}",
              file=sys.stderr)
        return 2
    log = (lambda msg: None) if args.quiet else print
    sort = rec.sorts[args.sort_name] if args.sort_name is not None else rec.sort
    print(f"sort: {sort.name} ({sort.kind}, {sort.path})")
    summary = write_report(rec, args.out, sort=args.sort_name, units=args.units, dpi=args.dpi,
                           log=log, jobs=args.jobs, progress=not args.quiet)
    print(f"{summary['n_units']} units, {len(rec.experiments)} experiments, "
          f"{summary['n_figures']} figures ({summary['n_errors']} failed) in "
          f"{summary['seconds']:.1f} s -> {summary['path']}")
    return 0


def cmd_export_nwb(args) -> int:
    from offline.nwb_export import ExportError, export_recording, parse_start_time
    from offline.sweeps import SessionFileError

    subject = None
    if args.subject_id is not None:
        subject = {"subject_id": args.subject_id, "species": args.species, "sex": args.sex,
                   "age": args.age}
    elif args.species or args.age:
        print("sweepsort export-nwb: --species/--age describe a subject: give --subject-id too",
              file=sys.stderr)
        return 2
    try:
        start = None if args.session_start is None else parse_start_time(args.session_start)
        s = export_recording(args.recording, args.sort, args.out, node=args.node,
                             recording_index=args.recording_index, stream=args.stream,
                             session_files=args.session or (),
                             refresh_source=args.refresh_source,
                             session_start=start, overwrite=args.overwrite,
                             allow_truncated=args.allow_truncated, subject=subject,
                             location=args.location)
    except (ExportError, SessionFileError, FileExistsError) as exc:
        print(f"sweepsort export-nwb: {exc}", file=sys.stderr)
        return 2
    print(f"{s['n_units']} units on {s['n_electrodes']} electrodes, {s['n_trials']} trials from "
          f"{s['n_experiments']} experiments -> {s['path']}")
    return 0


def cmd_monitor(args) -> int:
    from offline.monitor import monitor

    try:
        return monitor(args.recording, once=args.once, png=args.png, dimension=args.dimension,
                       session=args.session, interval_s=args.interval, max_units=args.max_units,
                       experiment=args.experiment, config=args.config)
    except ValueError as exc:
        print(f"sweepsort monitor: {exc}", file=sys.stderr)
        return 2


def cmd_demo(args) -> int:
    from offline.demo import run_demo

    summary = run_demo(args.out, quick=args.quick, probe=args.probe, jobs=args.jobs,
                       seed=args.seed, report_units=args.report_units, drift_um=args.drift_um,
                       log=(lambda msg: None) if args.quiet else print)
    if args.quiet:
        print((Path(args.out) / "summary.txt").read_text(), end="")
    return 0 if summary["frames_decoded_exact"] == summary["frames_expected"] else 1


def build_parser() -> argparse.ArgumentParser:
    paragraphs = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(prog="sweepsort", description=_plain(paragraphs[0]),
                                     epilog=_plain(paragraphs[-1]))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="play a recording through a Python Processor module")
    _add_source_args(p)
    p.add_argument("--module", required=True, help="the module file the GUI would load")
    p.add_argument("--config", help="settings TOML (default: <module stem>.toml beside it)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--block-size", type=int, help="fixed block size (default: the GUI's)")
    g.add_argument("--random-blocks", action="store_true", help="random block sizes")
    p.add_argument("--native", action="store_true", help="run under the GIL-less native runner")
    p.add_argument("--out", help="where the module writes its outputs (default: a temp folder)")
    p.add_argument(
        "--compare-offline",
        action="store_true",
        help="also compute the offline reference and compare spike for spike (the causal "
             "sort from the module's sort folder, or detection with the same settings)",
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("detect", help="offline spike detection with the online kernels")
    _add_source_args(p)
    p.add_argument("--out", required=True, help="output folder for peaks.npy / peaks.json")
    p.add_argument("--config", help="settings TOML ([filter], [detect] sections)")
    p.add_argument("--threshold-uv", type=float, help="fixed threshold in µV (overrides config)")
    p.add_argument("--probe", help="probe layout name or probeinterface JSON (default: the "
                   "probe in the recording's settings.xml, else single)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("sort", help="offline template sort -> sort file + Phy folder")
    _add_source_args(p)
    p.add_argument("--out", required=True, help="sort folder (sort.npz/.json, phy/, work/)")
    p.add_argument("--probe", help="probe layout name, probeinterface JSON, or 'single' (each "
                   "channel alone); default: the probe in the recording's settings.xml; needed "
                   "for multi-channel data without one")
    p.add_argument("--jobs", type=_jobs_arg, help="local worker processes, >= 1 (default: all "
                   "cores)")
    p.add_argument("--scheduler", help="dask.distributed scheduler address (tcp://host:8786)")
    p.add_argument("--config", help="settings TOML ([preprocess], [detect], [sort])")
    p.add_argument("--flat-dtype", help="RECORDING is a raw flat binary of this dtype")
    p.add_argument("--flat-channels", type=int, help="flat binary: channel count")
    p.add_argument("--flat-rate-hz", type=float, help="flat binary: sample rate")
    p.add_argument("--flat-gain-uv", type=float, default=1.0, help="flat binary: µV per unit")
    p.add_argument("--flat-offset", type=int, default=0, help="flat binary: header bytes")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_sort)

    p = sub.add_parser("info", help="recordings, streams, channels, duration, TTL events; or "
                       "a sort folder's units and probe motion")
    p.add_argument("recording", help="session, 'Record Node …' or recording folder, or a sort "
                   "folder")
    p.add_argument("--node", type=_node_arg, help="record node: index, number or name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_truncated_arg(p)
    p.add_argument("--motion-png", metavar="FILE",
                   help="with a sort folder: write its probe-motion figure (peaks by depth and "
                        "the estimate) to FILE")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("report", help="analysis report (HTML): population page + one per unit")
    p.add_argument("recording", help="recording directory (sorts, session files found below it)")
    p.add_argument("--out", required=True, help="the report: .html (or .pdf) file to write")
    p.add_argument("--sort", action="append",
                   help="a sort folder kept outside the recording (repeatable); without it the "
                        "sorts inside the recording folder are used")
    p.add_argument("--session", action="append", help="an extra stimulus session file")
    p.add_argument("--sort-name", help="which sort to report (default: the newest offline)")
    p.add_argument("--units", type=int, nargs="+", help="only these unit ids")
    p.add_argument("--refresh-source", choices=("auto", "ttl", "online"), default="auto",
                   help="decoded sweeps from the TTL events or the online sweep file")
    p.add_argument("--dpi", type=int, default=80, help="figure resolution")
    p.add_argument("--jobs", type=int, default=0,
                   help="worker processes for the unit pages (default 0: one per CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export-nwb", help="the sort and the stimulus sweeps as one NWB file")
    _add_source_args(p)
    p.add_argument("--sort", required=True, help="the sort folder ('sweepsort sort --out')")
    p.add_argument("--out", required=True, help="the .nwb file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--session", action="append", help="an extra stimulus session file")
    p.add_argument("--refresh-source", choices=("auto", "ttl", "online"), default="auto",
                   help="decoded sweeps from the TTL events or the online sweep file")
    p.add_argument("--session-start",
                   help="the recording's start (ISO-8601 with zone) when the recording's "
                        "sync_messages.txt / settings.xml do not give it")
    p.add_argument("--subject-id", help="the animal's id (NWB Subject; without it no Subject)")
    p.add_argument("--species", help="Latin binomial (Mus musculus) or NCBI taxonomy link")
    p.add_argument("--sex", choices=("M", "F", "U", "O"), default="U", help="subject sex")
    p.add_argument("--age", help="ISO-8601 duration (P90D)")
    p.add_argument("--location", default="unknown",
                   help="the electrodes' brain area (mouse: an Allen CCF name or acronym, VISp)")
    p.set_defaults(func=cmd_export_nwb)

    p = sub.add_parser("monitor", help="live plots of the pipeline module's online statistics")
    p.add_argument("recording", help="recording folder (or inside it, or its sweepsort/"
                   "online_stats.bin), or its bare name as the GUI shows it: found like the "
                   "modules find it (GUI HTTP API, [output] directory, fallback)")
    p.add_argument("--config", help="the module's settings TOML (its [output] section)")
    p.add_argument("--dimension", help="sweep-table dimension of the tuning curves")
    p.add_argument("--experiment", type=int,
                   help="stimulus experiment shown: N-th START marker of the acquisition, 0 = "
                        "before the first (default: the latest with data)")
    p.add_argument("--session", action="append",
                   help="stimulus session file or folder of them, matched to the experiments "
                        "(repeatable; default: the ones the pipeline was configured with)")
    p.add_argument("--interval", type=float, default=2.0, help="refresh period (s)")
    p.add_argument("--max-units", type=int, default=8, help="most active units shown")
    p.add_argument("--once", action="store_true", help="render once and exit (headless, Agg)")
    p.add_argument("--png", help="also save the figure to this PNG")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("demo", help="the virtual experiment: the whole system end to end")
    p.add_argument("--out", required=True, help="output folder (recording, sort, report, ...)")
    p.add_argument("--quick", action="store_true", help="small variant (~1 min of data)")
    p.add_argument("--probe", default="polytrode54", choices=("polytrode54", "linear32"),
                   help="the simulated probe")
    p.add_argument("--jobs", type=_jobs_arg, default=2, help="sort worker processes (>= 1)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed")
    p.add_argument("--drift-um", type=_drift_arg, default=15.0,
                   help="the probe's slow drift along depth over the recording, µm (0: none)")
    p.add_argument("--report-units", type=int, help="report only the first N units")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)  # --help exits here, before any heavy import
    from oe_plugin.config import SettingsError
    from oe_plugin.probe import ProbeError
    from offline import interrupt
    from offline.recording import RecordingError
    from offline.sort.sortfile import SortFileError

    previous = interrupt.install()
    try:
        code = args.func(args)
    except (SettingsError, ProbeError, RecordingError, SortFileError, FileNotFoundError,
            FileExistsError) as exc:
        print(f"sweepsort {args.command}: {exc}", file=sys.stderr)
        code = 2
    except Exception:
        if not interrupt.pressed():
            raise
        return _interrupted(args.command)  # cleanup turned the KeyboardInterrupt into this
    except KeyboardInterrupt:
        return _interrupted(args.command)
    finally:
        interrupt.restore(previous)
    if argv is None and args.command in _FAST_EXIT:
        _fast_exit(code)
    return code


def _interrupted(command: str) -> int:
    resume = "; re-run the same command to resume" if command == "sort" else ""
    print(f"sweepsort {command}: interrupted{resume}", file=sys.stderr)
    return 130


_FAST_EXIT = ("detect", "info")
"""Commands that, run as the ``sweepsort`` program, end without the interpreter's finalization:
tearing down numba, scipy and pandas takes 0.5-1 s, a third of a short ``detect``. Only
commands that start no worker, thread or executor and have closed every file they wrote."""


def _fast_exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
