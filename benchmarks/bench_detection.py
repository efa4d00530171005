"""Detection benchmark: online ``process()`` latency and offline throughput vs SpikeInterface.

A script, not a timed test. Targets: ``process()`` p99 under 2 ms for a 384 x 1024 block (under
0.5 ms at 64 channels); offline detection faster than SpikeInterface's ``detect_peaks``
(``locally_exclusive``) at equal or better recall and precision::

    .venv/bin/python benchmarks/bench_detection.py            # full run, ~3-5 min on 2 cores
    .venv/bin/python benchmarks/bench_detection.py --quick    # smaller, ~1-2 min
    .venv/bin/python benchmarks/bench_detection.py --json out.json

**Online** — latency of one 1024-sample float32 block at 30 kHz (34.1 ms of data) for 16, 64
and 384 channels, measured three ways over the same synthetic stream (white noise + injected
spikes, :class:`~oe_plugin.host.sources.SyntheticSource`):

- ``kernel``: :meth:`SpikeDetector.process_online` alone (the cfunc entry ``process()`` uses);
- ``module/sim``: ``oe_plugin/modules/spike_detector.py`` as a whole through the host
  simulator (:func:`~oe_plugin.host.session.run_session`), recording on (spike file written);
- ``module/native``: the same module under the native GIL-less runner
  (:func:`~oe_plugin.host.native.run_native`), 64 channels only.

The first ``--warmup-blocks`` latencies (the noise estimate's initial window) are dropped; p50
and p99 are over the next ``--blocks``. A per-stage breakdown at 384 channels follows.

**Offline** — ``offline.detect.detect_recording`` vs SpikeInterface ``bandpass_filter`` (causal,
``direction="forward"``, same Butterworth order 2, 300-6000 Hz) + ``get_noise_levels`` +
``detect_peaks(method="locally_exclusive")``, both single-threaded (``n_jobs=1``, 1 s chunks),
on one SpikeInterface ground-truth recording held in memory; then both detection-only on the
same pre-filtered data. Same threshold (× MAD/0.6745 noise), temporal lockout
(``exclude_sweep_ms`` = ``lockout_us``) and spatial radius (``radius_um`` =
``lockout_radius_um``). Recall and precision against the ground truth use the rule in
:func:`match_ground_truth`.

Needs the ``bench`` extra (``pip install -e '.[bench]'``) for the offline part.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from oe_plugin.host.sources import SyntheticSource, spike_waveform
from oe_plugin.kernels.bandpass import (
    FILTER_TILE,
    bandpass_block,
    default_band_sos,
    load_rows,
    make_filter_state,
)
from oe_plugin.kernels.detector import SpikeDetector, self_only_neighbours
from oe_plugin.probe import Probe, load_probe, neighbour_lists
from oe_plugin.settings import DetectSettings, FilterSettings

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "oe_plugin" / "modules" / "spike_detector.py"
FS = 30000.0
BLOCK = 1024
TARGET_P99_MS = {64: 0.5, 384: 2.0}
SPIKE_RATE_HZ = 10.0  # per channel (as the peak channel of a spike)
SPIKE_SPREAD_UM = 30.0  # an injected spike also appears on channels this close, attenuated
LATE_S = 0.5  # recall is also given for spikes after this time (our noise window is 250 ms)


# ---------------------------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("numpy", "numba", "scipy", "spikeinterface"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


# ---------------------------------------------------------------------------------------------
# online
# ---------------------------------------------------------------------------------------------
class _IndexedSyntheticSource(SyntheticSource):
    """:class:`SyntheticSource` with the same samples, but its spikes looked up by binary search
    over arrays built once (the base class rebuilds the spike-time array on every ``read_uv``,
    which costs O(all spikes) per block: minutes for 384 channels × 10 Hz). Not timed either way;
    only makes the benchmark finish."""

    @functools.cached_property
    def _spike_arrays(self):
        t = np.array([s.sample_index for s in self.spikes], dtype=np.int64)
        c = np.array([s.channel for s in self.spikes], dtype=np.int64)
        a = [s.amplitude_uv for s in self.spikes]
        wave, n_pre = spike_waveform(self.sample_rate_hz)
        return t, c, a, wave, n_pre

    def _add_spikes(self, out, start, stop):
        times, chans, amps, wave, n_pre = self._spike_arrays
        n_post = wave.size - n_pre - 1
        lo = int(np.searchsorted(times, start - n_post, side="left"))
        hi = int(np.searchsorted(times, stop + n_pre, side="right"))
        for k in range(lo, hi):
            a, b = int(times[k]) - n_pre, int(times[k]) + n_post + 1
            i0, i1 = max(a, start), min(b, stop)
            if i0 < i1:
                out[chans[k], i0 - start : i1 - start] += -amps[k] * wave[i0 - a : i1 - a]


def online_probe(n_channels: int, tmp: Path) -> tuple[Probe, str]:
    """(probe, the module's ``detect.probe`` value) for an online case.

    16: ``single`` (independent channels, the module's default); 384: the shipped
    ``neuropixels384``; 64: the first 64 sites of ``neuropixels384`` (a dense 4-column shank),
    written as a probeinterface JSON file for the module."""
    if n_channels == 384:
        return load_probe("neuropixels384", 384), "neuropixels384"
    if n_channels == 64:
        from probeinterface import Probe as PIProbe
        from probeinterface import ProbeGroup, write_probeinterface

        pos = load_probe("neuropixels384", 384).positions_um[:64]
        pi = PIProbe(ndim=2, si_units="um")
        pi.set_contacts(positions=pos, shapes="square", shape_params={"width": 12})
        pi.set_device_channel_indices(np.arange(64))
        group = ProbeGroup()
        group.add_probe(pi)
        path = tmp / "np_first64.json"
        write_probeinterface(path, group)
        return load_probe(str(path), 64), str(path)
    return load_probe("single", n_channels), "single"


def make_spikes(probe: Probe, n_samples: int, seed: int) -> list[tuple[int, int, float]]:
    """Poisson spikes, ``SPIKE_RATE_HZ`` per peak channel, trough -50..-200 µV, copied to the
    channels of the same group within ``SPIKE_SPREAD_UM`` with amplitude × exp(-d / 20 µm)."""
    rng = np.random.default_rng(seed)
    pos, groups = probe.positions_um, probe.groups
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    out = []
    duration = n_samples / FS
    margin = 64
    for c in range(probe.n_channels):
        n = rng.poisson(SPIKE_RATE_HZ * duration)
        times = rng.integers(margin, n_samples - margin, n)
        amps = rng.uniform(-200.0, -50.0, n)
        near = np.nonzero((groups == groups[c]) & (d[c] <= SPIKE_SPREAD_UM))[0]
        for t, a in zip(times.tolist(), amps.tolist(), strict=True):
            for c2 in near.tolist():
                out.append((t, c2, a * float(np.exp(-d[c, c2] / 20.0))))
    return out


def write_config(tmp: Path, probe_spec: str, n_channels: int) -> Path:
    path = tmp / f"spike_detector_{n_channels}.toml"
    path.write_text(f'[detect]\nprobe = "{probe_spec}"\n')
    return path


def percentiles(lat_ms: np.ndarray) -> dict:
    return {
        "n": int(lat_ms.size),
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "max_ms": float(lat_ms.max()),
    }


def time_kernel(detector: SpikeDetector, source, n_blocks: int, warmup: int) -> np.ndarray:
    """Latency (ms) of ``process_online`` per block; data read between calls (not timed)."""
    lat = np.empty(warmup + n_blocks)
    clock = time.perf_counter
    for k in range(warmup + n_blocks):
        block = source.read_uv(k * BLOCK, (k + 1) * BLOCK)
        t0 = clock()
        detector.process_online(block)
        lat[k] = (clock() - t0) * 1e3
    return lat[warmup:]


def bench_online(args, tmp: Path) -> dict:
    from oe_plugin.host.session import run_session

    results: dict = {"cases": [], "breakdown": None}
    n_total = args.warmup_blocks + args.blocks
    n_samples = n_total * BLOCK
    for n_channels in args.online_channels:
        probe, probe_spec = online_probe(n_channels, tmp)
        spikes = make_spikes(probe, n_samples, seed=n_channels)
        source = _IndexedSyntheticSource(
            num_channels=n_channels,
            sample_rate_hz=FS,
            duration_s=n_samples / FS,
            seed=n_channels,
            noise_uv=args.online_noise_uv,
            spikes=spikes,
        )
        ds = DetectSettings(probe=probe_spec)
        nb = neighbour_lists(probe, ds.lockout_radius_um)
        detector = SpikeDetector(n_channels, FS, FilterSettings(), ds, nb, max_block=8192)
        detector.warm_up()
        lat = time_kernel(detector, source, args.blocks, args.warmup_blocks)
        case = {
            "channels": n_channels,
            "probe": Path(probe_spec).stem,
            "neighbours_mean": float(np.diff(nb[0]).mean()),
            "spikes_injected": len(spikes),
        }
        results["cases"].append(
            {**case, "path": "kernel", **percentiles(lat), "events": detector.stats["events"]}
        )
        print(
            f"  {n_channels:>3} ch kernel      p50 {np.percentile(lat, 50):.3f} ms  "
            f"p99 {np.percentile(lat, 99):.3f} ms",
            flush=True,
        )

        config = write_config(tmp, probe_spec, n_channels)
        rec_dir = tmp / f"rec_{n_channels}"
        report = run_session(MODULE, source, BLOCK, recording_dir=rec_dir, config_path=config)
        lat = report.latencies_ms[args.warmup_blocks :]
        results["cases"].append({**case, "path": "module/sim", **percentiles(lat), "events": None})
        print(
            f"  {n_channels:>3} ch module/sim  p50 {np.percentile(lat, 50):.3f} ms  "
            f"p99 {np.percentile(lat, 99):.3f} ms",
            flush=True,
        )

        if n_channels == 64 and not args.no_native:
            results["cases"].append(
                {**case, "path": "module/native", **bench_native(args, source, spikes, config, tmp)}
            )
        if n_channels == 384:
            results["breakdown"] = breakdown(args, source, probe)
    return results


def bench_native(args, source, spikes, config: Path, tmp: Path) -> dict:
    from oe_plugin.host.native import NativeBuildError, NativeJob, NativeRunnerError, run_native

    plain = SyntheticSource(
        num_channels=source.num_channels,
        sample_rate_hz=FS,
        duration_s=source.duration_s,
        seed=source.seed,
        noise_uv=source.noise_uv,
        spikes=spikes,
    )
    job = NativeJob(
        MODULE,
        plain,
        BLOCK,
        config_path=config,
        recording_dir=tmp / "rec_native",
        hang_timeout_s=30.0,
        timeout_s=600.0,
    )
    try:
        report = run_native(job)
    except (NativeBuildError, NativeRunnerError) as err:
        print(f"  native runner unavailable/failed: {err}", flush=True)
        return {"error": str(err).splitlines()[0]}
    lat = report.latencies_ms[args.warmup_blocks :]
    print(
        f"   64 ch module/native p50 {np.percentile(lat, 50):.3f} ms  "
        f"p99 {np.percentile(lat, 99):.3f} ms",
        flush=True,
    )
    return percentiles(lat)


def breakdown(args, source, probe: Probe) -> dict:
    """Where the 384-channel kernel's time goes, from settings only (the kernel is not touched).

    Every block goes through each variant in turn (interleaved, so machine load hits all alike):
    the whole kernel; filter disabled; spatial lockout off (self-only neighbours); the noise
    estimate at 1/4 of its work (``noise_decimate`` 8 -> 32); and, alone, the input transpose
    (``load_rows``) and the band-pass kernel (``bandpass_block``, which also transposes in and
    out). Stage costs are p50 differences: filter = full - no filter; spatial lockout =
    full - no spatial lockout; noise estimate = (full - decimate 32) x 4/3."""
    n_channels = probe.n_channels
    n = min(args.blocks, 300)
    w = args.warmup_blocks
    nb = neighbour_lists(probe, DetectSettings().lockout_radius_um)
    variants = {
        "full kernel": SpikeDetector(n_channels, FS, FilterSettings(), DetectSettings(), nb),
        "filter disabled": SpikeDetector(
            n_channels, FS, FilterSettings(enabled=False), DetectSettings(), nb
        ),
        "no spatial lockout": SpikeDetector(
            n_channels, FS, FilterSettings(), DetectSettings(), self_only_neighbours(n_channels)
        ),
        "noise_decimate 32": SpikeDetector(
            n_channels, FS, FilterSettings(), DetectSettings(noise_decimate=32), nb
        ),
    }
    for det in variants.values():
        det.warm_up()
    sos = default_band_sos(FS)
    zi = make_filter_state(sos, n_channels)
    tile = np.zeros((256, n_channels), np.float32)
    ring = np.zeros((1024, n_channels), np.float32)
    tmp64 = np.zeros(FILTER_TILE * n_channels, np.float64)  # as the detector's
    scratch = np.zeros((n_channels, BLOCK), np.float32)
    bandpass_block(sos, zi, scratch, scratch, tile, tmp64)  # compile / load from cache
    load_rows(scratch, 0, BLOCK, ring, 0, False)
    calls = {name: functools.partial(det.process_online) for name, det in variants.items()}
    calls["input transpose only (load_rows)"] = lambda b: load_rows(b, 0, BLOCK, ring, 0, False)
    calls["band-pass only (bandpass_block)"] = lambda b: bandpass_block(
        sos, zi, b, scratch, tile, tmp64
    )
    lat = {name: np.empty(w + n) for name in calls}
    clock = time.perf_counter
    for k in range(w + n):
        block = source.read_uv(k * BLOCK, (k + 1) * BLOCK)
        for name, call in calls.items():
            t0 = clock()
            call(block)
            lat[name][k] = (clock() - t0) * 1e3
    out = {name: percentiles(v[w:]) for name, v in lat.items()}
    p50 = {name: r["p50_ms"] for name, r in out.items()}
    full = p50["full kernel"]
    out["_stages_p50_ms"] = {
        "band-pass filter": full - p50["filter disabled"],
        "noise estimate": (full - p50["noise_decimate 32"]) * 4.0 / 3.0,
        "spatial lockout": full - p50["no spatial lockout"],
        "input transpose": p50["input transpose only (load_rows)"],
    }
    for name, r in out.items():
        if not name.startswith("_"):
            print(
                f"  384 ch {name:<34} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms",
                flush=True,
            )
    return out


# ---------------------------------------------------------------------------------------------
# offline
# ---------------------------------------------------------------------------------------------
class ArrayRecording:
    """The reader interface of :func:`offline.detect.detect_recording` over an in-memory
    (n_samples, n_channels) float32 array — the layout SpikeInterface reads, and the interleaved
    layout of Open Ephys binary files. Like ``offline.recording``'s streams it offers
    ``read_uv_rows`` (sample-major chunks, which the detector reads without transposing) besides
    ``read_uv``; the chunk copy is part of our timed cost."""

    def __init__(self, traces: np.ndarray, sample_rate_hz: float):
        self.traces = traces
        self.n_samples, self.n_channels = traces.shape
        self.sample_rate_hz = float(sample_rate_hz)

    def read_uv(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self.traces[start:stop].T)

    def read_uv_rows(self, start: int, stop: int) -> np.ndarray:
        return np.array(self.traces[start:stop], dtype=np.float32, order="C")


def match_ground_truth(peak_t, peak_c, gt_t, gt_chan, dist_um, tol_samples, radius_um) -> dict:
    """One-to-one matching of detected peaks to ground-truth spikes.

    A ground-truth spike (time ``gt_t``, unit's peak channel ``gt_chan``) is *found* by the
    unclaimed peak nearest in time with ``|t - gt_t| <= tol_samples`` on a channel within
    ``radius_um`` of ``gt_chan``; each peak can find at most one spike. recall = found / spikes;
    precision = peaks that found a spike / all peaks (so a second peak on the same spike is a
    false positive)."""
    order = np.argsort(peak_t, kind="stable")
    pt = np.asarray(peak_t, np.int64)[order]
    pc = np.asarray(peak_c, np.int64)[order]
    near = dist_um <= radius_um + 1e-6
    claimed = np.zeros(pt.size, bool)
    found = np.zeros(gt_t.size, bool)
    lags = []
    lo = np.searchsorted(pt, gt_t - tol_samples, side="left")
    hi = np.searchsorted(pt, gt_t + tol_samples, side="right")
    for i in np.argsort(gt_t, kind="stable"):
        best, best_d = -1, tol_samples + 1
        for j in range(lo[i], hi[i]):
            if claimed[j] or not near[pc[j], gt_chan[i]]:
                continue
            dt = abs(int(pt[j]) - int(gt_t[i]))
            if dt < best_d:
                best, best_d = j, dt
        if best >= 0:
            claimed[best] = True
            found[i] = True
            lags.append(int(pt[best]) - int(gt_t[i]))
    return {
        "recall": float(found.mean()) if found.size else float("nan"),
        "precision": float(claimed.mean()) if claimed.size else float("nan"),
        "n_peaks": int(pt.size),
        "n_gt": int(gt_t.size),
        "n_found": int(found.sum()),
        "median_lag_samples": float(np.median(lags)) if lags else float("nan"),
        "found_mask": found,
    }


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def bench_offline(args) -> dict:
    import scipy.signal
    import spikeinterface.core as si
    import spikeinterface.preprocessing as spre
    from spikeinterface.sortingcomponents.peak_detection import detect_peaks

    from offline.detect import detect_recording

    c, dur, fs = args.channels, args.duration_s, FS
    print(
        f"  generating ground truth: {c} ch × {dur:g} s, {args.units} units, "
        f"noise {args.noise_uv:g} µV (SpikeInterface generate_ground_truth_recording)",
        flush=True,
    )
    with _quiet():
        gt_rec, gt_sort = si.generate_ground_truth_recording(
            durations=[dur],
            sampling_frequency=fs,
            num_channels=c,
            num_units=args.units,
            noise_kwargs=dict(noise_levels=args.noise_uv, strategy="on_the_fly"),
            seed=args.seed,
        )
        raw = np.ascontiguousarray(gt_rec.get_traces(), dtype=np.float32)  # (n, C)
    si_probe = gt_rec.get_probe()
    positions = np.asarray(gt_rec.get_channel_locations(), np.float64)
    dist_um = np.sqrt(((positions[:, None] - positions[None]) ** 2).sum(-1))
    templates = gt_rec.templates  # (units, samples, channels)
    gt_peak_chan = np.abs(templates).max(axis=1).argmax(axis=1)
    spikes = gt_sort.to_spike_vector()
    gt_t = spikes["sample_index"].astype(np.int64)
    gt_chan = gt_peak_chan[spikes["unit_index"]]

    sos = default_band_sos(fs)
    pre = np.empty_like(raw)
    for c0 in range(0, c, 8):  # causal, same SOS as both detectors use
        pre[:, c0 : c0 + 8] = scipy.signal.sosfilt(sos, raw[:, c0 : c0 + 8], axis=0)

    ours_probe = Probe("gt", positions, np.zeros(c, np.int64))
    ds = DetectSettings(
        threshold_mad=args.threshold,
        lockout_us=args.lockout_us,
        lockout_radius_um=args.radius_um,
        polarity="negative",
    )
    si_kwargs = dict(
        peak_sign="neg",
        detect_threshold=args.threshold,
        exclude_sweep_ms=args.lockout_us / 1000.0,
        radius_um=args.radius_um,
    )
    job = dict(n_jobs=1, chunk_duration="1s", progress_bar=False)

    def ours(data, filtered: bool):
        rec = ArrayRecording(data, fs)
        f = FilterSettings(enabled=not filtered)
        t0 = time.perf_counter()
        peaks, _ = detect_recording(rec, f, ds, probe=ours_probe)
        return time.perf_counter() - t0, 0.0, peaks["sample_index"], peaks["channel_index"]

    def theirs(data, filtered: bool):
        with _quiet():
            t0 = time.perf_counter()
            rec = si.NumpyRecording(data, fs)
            with_probe = rec.set_probe(si_probe)  # in place since 0.103; a copy before
            rec = rec if with_probe is None else with_probe
            if not filtered:
                rec = spre.bandpass_filter(
                    rec,
                    freq_min=300.0,
                    freq_max=6000.0,
                    filter_order=2,
                    direction="forward",
                    dtype="float32",
                )
            t1 = time.perf_counter()
            noise = si.get_noise_levels(rec, return_in_uV=False, force_recompute=True, **job)
            t2 = time.perf_counter()
            peaks = detect_peaks(
                rec,
                method="locally_exclusive",
                method_kwargs=dict(noise_levels=noise, **si_kwargs),
                job_kwargs=job,
            )
            t3 = time.perf_counter()
        return t3 - t0, t2 - t1, peaks["sample_index"], peaks["channel_index"]

    # warm-up: compile (or load from cache) every kernel on 2 s of data, untimed
    n_warm = int(2 * fs)
    for fn in (ours, theirs):
        fn(raw[:n_warm], False)
        fn(pre[:n_warm], True)

    runs: dict = {}
    for rep in range(args.repeats):
        for label, data, filtered in (("filter+detect", raw, False), ("detect only", pre, True)):
            for who, fn in (("ours", ours), ("SI", theirs)):
                wall, noise_s, t, ch = fn(data, filtered)
                r = runs.setdefault((label, who), {"wall_s": [], "noise_s": []})
                r["wall_s"].append(wall)
                r["noise_s"].append(noise_s)
                r["t"], r["ch"] = t, ch
        print(
            f"  repeat {rep + 1}/{args.repeats}: "
            + ", ".join(f"{k[1]} {k[0]} {v['wall_s'][-1]:.2f} s" for k, v in runs.items()),
            flush=True,
        )

    tol = int(round(args.tol_ms * 1e-3 * fs))
    out = {
        "channels": c,
        "duration_s": dur,
        "units": args.units,
        "noise_uv": args.noise_uv,
        "threshold_mad": args.threshold,
        "lockout_us": args.lockout_us,
        "radius_um": args.radius_um,
        "tolerance_ms": args.tol_ms,
        "match_radius_um": args.match_radius_um,
        "n_gt_spikes": int(gt_t.size),
        "probe": f"{c} contacts, generate_multi_columns_probe defaults (2 columns, 20 µm)",
        "results": [],
    }
    for (label, who), r in runs.items():
        m = match_ground_truth(r["t"], r["ch"], gt_t, gt_chan, dist_um, tol, args.match_radius_um)
        late = gt_t >= int(LATE_S * fs)  # after our detector's initial noise window (250 ms)
        m["recall_after_0.5s"] = float(m.pop("found_mask")[late].mean())
        wall = float(np.median(r["wall_s"]))
        out["results"].append(
            {
                "stage": label,
                "who": who,
                "wall_s_median": wall,
                "wall_s_all": r["wall_s"],
                "noise_s_median": float(np.median(r["noise_s"])),
                "samples_per_s": gt_rec.get_num_samples() / wall,
                "x_realtime": dur / wall,
                **m,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def print_tables(info: dict, online: dict | None, offline: dict | None) -> None:
    print()
    print(
        f"machine: {info['cpu']}, nproc {info['nproc']} (affinity {info['affinity']}); "
        f"Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, "
        f"spikeinterface {info['spikeinterface']}"
    )
    if online:
        ms = BLOCK / FS * 1e3
        print(
            f"\nonline process() latency, {BLOCK}-sample float32 blocks at {FS / 1e3:g} kHz "
            f"({ms:.1f} ms of data per block)"
        )
        print(
            f"{'ch':>4} {'probe':<16} {'path':<14} {'blocks':>6} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'target':>7} {'p99/rt':>7}"
        )
        for r in online["cases"]:
            if "error" in r:
                print(f"{r['channels']:>4} {r['probe']:<16} {r['path']:<14} {r['error']}")
                continue
            target = TARGET_P99_MS.get(r["channels"])
            tgt = f"{target:.1f}" if target else "-"
            if target:
                tgt += " ok" if r["p99_ms"] <= target else " MISS"
            print(
                f"{r['channels']:>4} {r['probe']:<16} {r['path']:<14} {r['n']:>6} "
                f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['max_ms']:>8.3f} {tgt:>7} "
                f"{r['p99_ms'] / ms:>7.1%}"
            )
        if online.get("breakdown"):
            bd = online["breakdown"]
            print("384-channel kernel variants, interleaved block by block (p50 / p99 ms):")
            for name, r in bd.items():
                if not name.startswith("_"):
                    print(f"     {name:<34} {r['p50_ms']:.3f} / {r['p99_ms']:.3f}")
            full = bd["full kernel"]["p50_ms"]
            print(
                "  estimated share of the full kernel's p50 "
                + ", ".join(
                    f"{k} {v:.2f} ms ({v / full:.0%})" for k, v in bd["_stages_p50_ms"].items()
                )
            )
    if offline:
        o = offline
        print(
            f"\noffline detection: {o['channels']} ch × {o['duration_s']:g} s at 30 kHz, "
            f"{o['units']} GT units ({o['n_gt_spikes']} spikes), noise {o['noise_uv']:g} µV; "
            f"threshold {o['threshold_mad']:g} × MAD, neg, lockout {o['lockout_us']:g} µs / "
            f"{o['radius_um']:g} µm; one thread each"
        )
        print(
            f"match: ±{o['tolerance_ms']:g} ms, any channel within {o['match_radius_um']:g} µm "
            f"of the unit's peak channel, one-to-one"
        )
        print(
            f"{'stage':<14} {'who':<5} {'median s':>9} {'x rt':>6} {'Msamp/s':>8} "
            f"{'ours/SI':>8} {'recall':>7} {'rec>.5s':>7} {'prec':>7} {'peaks':>7} {'lag':>4}"
        )
        res = {(r["stage"], r["who"]): r for r in o["results"]}
        for (stage, who), r in res.items():
            si_r = res.get((stage, "SI"))
            ratio = f"{r['wall_s_median'] / si_r['wall_s_median']:.2f}" if who == "ours" else ""
            print(
                f"{stage:<14} {who:<5} {r['wall_s_median']:>9.2f} {r['x_realtime']:>6.0f} "
                f"{r['samples_per_s'] * o['channels'] / 1e6:>8.1f} {ratio:>8} "
                f"{r['recall']:>7.3f} {r['recall_after_0.5s']:>7.3f} {r['precision']:>7.3f} "
                f"{r['n_peaks']:>7} {r['median_lag_samples']:>4.0f}"
            )
        for (stage, who), r in res.items():
            if who == "SI":
                rest = r["wall_s_median"] - r["noise_s_median"]
                ours = res[(stage, "ours")]["wall_s_median"]
                print(
                    f"  SI {stage}: get_noise_levels {r['noise_s_median']:.2f} s of "
                    f"{r['wall_s_median']:.2f} s; without it {rest:.2f} s "
                    f"(ours/that = {ours / rest:.2f})"
                )
        print(
            "ours/SI < 1: ours faster (ours always includes its own noise estimate). "
            "Msamp/s = channel-samples/s; rec>.5s = recall of spikes after 0.5 s; lag = "
            "median detected-minus-true peak time (samples)."
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="200 blocks, 32 ch × 20 s offline (still 3 repeats)"
    )
    p.add_argument("--blocks", type=int, help="timed blocks per online case (default 1000)")
    p.add_argument("--warmup-blocks", type=int, default=30)
    p.add_argument("--online-channels", type=int, nargs="+", default=[16, 64, 384])
    p.add_argument("--online-noise-uv", type=float, default=10.0)
    p.add_argument("--no-native", action="store_true", help="skip the native runner")
    p.add_argument("--skip-online", action="store_true")
    p.add_argument("--skip-offline", action="store_true")
    p.add_argument("--channels", type=int, help="offline channels (default 64)")
    p.add_argument("--duration-s", type=float, help="offline duration (default 60)")
    p.add_argument("--units", type=int, default=20)
    p.add_argument(
        "--noise-uv", type=float, default=5.0, help="GT noise (SpikeInterface's default 5 µV)"
    )
    p.add_argument("--threshold", type=float, default=DetectSettings.threshold_mad)
    p.add_argument("--lockout-us", type=float, default=DetectSettings.lockout_us)
    p.add_argument("--radius-um", type=float, default=DetectSettings.lockout_radius_um)
    p.add_argument("--tol-ms", type=float, default=0.5)
    p.add_argument("--match-radius-um", type=float, default=50.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    args.blocks = args.blocks or (200 if args.quick else 1000)
    args.channels = args.channels or (32 if args.quick else 64)
    args.duration_s = args.duration_s or (20.0 if args.quick else 60.0)

    t_start = time.perf_counter()
    info = machine_info()
    print(f"sweepsort detection benchmark — {info['cpu']}, nproc {info['nproc']}", flush=True)
    online = offline = None
    with tempfile.TemporaryDirectory(prefix="sweepsort-bench-") as tmp:
        if not args.skip_online:
            print("online latency:", flush=True)
            online = bench_online(args, Path(tmp))
    if not args.skip_offline:
        try:
            import spikeinterface  # noqa: F401
        except ImportError:
            print("offline: spikeinterface not installed (pip install -e '.[bench]'); skipped")
        else:
            print("offline throughput vs SpikeInterface:", flush=True)
            offline = bench_offline(args)
    print_tables(info, online, offline)
    total = time.perf_counter() - t_start
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(
        f"load average (1/5/15 min) at start {info['loadavg_start']}, at end {info['loadavg_end']}"
    )
    print(f"\ntotal {total:.0f} s; command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "online": online,
                    "offline": offline,
                    "args": {
                        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    },
                    "git": _git_rev(),
                    "total_s": total,
                },
                indent=2,
            )
        )
    return 0


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


if __name__ == "__main__":
    sys.exit(main())
