"""Benchmark of the sweep TTL decoder (a script, not a timed test).

Prints, for both schemes at 30 kHz, on a worst-case session (the sweep changes on every refresh,
like an m-sequence: the serial scheme sends a word every frame; the parallel scheme with 16
index lines + parity + 2 counter lines + strobe drives up to 20 lines at 200 Hz):

- offline decoding throughput, events/s (``decode_events``, the same classes as online);
- the online module's cost per TTL event (``PyProcessor.handle_ttl_event`` as the host calls
  it, pure Python) and per ``process()`` block (drain to the file, onset TTL, flush), and the
  resulting CPU share at that session's event rate;
- optionally (``--native``), the per-block latency of the module under the GIL-less native
  runner over a recording of the session.

    .venv/bin/python benchmarks/bench_sweep_decoder.py [--frames 100000] [--native]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oe_plugin.host.loader import install_stand_in  # noqa: E402
from oe_plugin.protocol import ProtocolSettings, decode_events, session_codes  # noqa: E402
from oe_plugin.protocol.encoder import encode_session  # noqa: E402
from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions  # noqa: E402

FS = 30000.0
SCHEMES = {
    "serial": ProtocolSettings(),
    "parallel": ProtocolSettings(scheme="parallel", frame_line=1, parity_line=2,
                                 counter_lines=(3, 4), index_lines=tuple(range(5, 21))),
}


def worst_case_events(settings: ProtocolSettings, n_frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    body = rng.integers(0, settings.max_sweep_index() + 1, n_frames)  # a new sweep every frame
    sess = encode_session(settings, session_codes(settings, body))
    return sample_transitions(sess.transitions, SimSettings(sample_rate_hz=FS, jitter_us=5.0,
                                                            seed=seed))


def bench_offline(settings, events, repeats=3) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        decode_events(settings, FS, events["sample_number"], events["line"], events["state"])
        best = min(best, time.perf_counter() - t)
    return events.size / best


def bench_online(settings, events, config_dir: Path) -> dict:
    """Per-event and per-block costs of the real module object, called as the host calls it."""
    install_stand_in()
    config = config_dir / "sweep_decoder.toml"
    lines = ["[protocol]"]
    for k, v in settings.to_dict().items():
        if k == "protocol_version":
            continue
        v = ("true" if v else "false") if isinstance(v, bool) else (
            f'"{v}"' if isinstance(v, str) else v)
        lines.append(f"{k} = {v}")
    config.write_text("\n".join(lines) + "\n[decoder]\nonset_ttl_line = 30\n")
    import os

    os.environ["SWEEPSORT_CONFIG"] = str(config)
    import oe_pyprocessor

    from oe_plugin.online.sweep_decoder import SweepDecoderModule

    module = SweepDecoderModule(oe_pyprocessor.PythonProcessor(), 4, FS,
                                ROOT / "oe_plugin" / "modules" / "sweep_decoder.py")
    module.start_acquisition()
    module.start_recording(str(config_dir / "rec"))
    block = 696
    data = np.zeros((4, block), np.float32)
    s_list = events["sample_number"].tolist()
    l_list = events["line"].tolist()
    v_list = events["state"].tolist()
    per_event = np.empty(len(s_list))
    per_block = []
    handle = module.handle_ttl_event
    clock = time.perf_counter_ns
    i = 0
    first = s_list[0]
    block_end = first + block
    while i < len(s_list):
        while i < len(s_list) and s_list[i] < block_end:
            t = clock()
            handle(100, 0, s_list[i], l_list[i], v_list[i])
            per_event[i] = clock() - t
            i += 1
        t = clock()
        module.process(data)
        per_block.append(clock() - t)
        block_end += block
    module.stop_recording()
    module.stop_acquisition()
    per_block = np.asarray(per_block)
    duration_s = (s_list[-1] - first) / FS
    cpu = (per_event.sum() + per_block.sum()) / 1e9 / duration_s
    return {"event_us_median": np.median(per_event) / 1e3,
            "event_us_p99": np.percentile(per_event, 99) / 1e3,
            "block_us_median": np.median(per_block) / 1e3,
            "block_us_p99": np.percentile(per_block, 99) / 1e3,
            "events_per_s": events.size / duration_s, "cpu_share": cpu,
            "frames": module.decoder.n_frames, "errors": module.decoder.n_error_frames}


def bench_native(settings, events, tmp: Path) -> dict | None:
    from oe_plugin.host.native import NativeJob, find_compiler, run_native
    from oe_plugin.host.sources import RecordingSource
    from oe_plugin.protocol.oe_binary_events import write_binary_recording

    if find_compiler() is None:
        return None
    rec = tmp / "native" / "experiment1" / "recording1"
    n = int(events["sample_number"].max() + FS * 0.05)
    write_binary_recording(rec, sample_rate_hz=FS, n_samples=n, n_channels=4, events=events)
    report = run_native(NativeJob(ROOT / "oe_plugin" / "modules" / "sweep_decoder.py",
                                  RecordingSource(tmp / "native"), 696,
                                  config_path=tmp / "sweep_decoder.toml",
                                  recording_dir=tmp / "native_out", timeout_s=900.0))
    lat = np.asarray(report.latencies_ms)
    return {"blocks": lat.size, "process_ms_median": float(np.median(lat)),
            "process_ms_p99": float(np.percentile(lat, 99)), "process_ms_max": float(lat.max())}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--native", action="store_true", help="also run under the native runner")
    args = ap.parse_args(argv)
    print(f"sweep decoder benchmark: {args.frames} refreshes at 200 Hz, {FS:g} Hz sampling, "
          f"a new sweep every refresh (worst case); Python {sys.version.split()[0]}")
    for name, settings in SCHEMES.items():
        events = worst_case_events(settings, args.frames)
        rate = bench_offline(settings, events)
        with tempfile.TemporaryDirectory() as d:
            online = bench_online(settings, events, Path(d))
            native = bench_native(settings, events, Path(d)) if args.native else None
        print(f"\n[{name}] {events.size} events ({online['events_per_s']:.0f} events/s of "
              f"recording, {len(settings.lines())} lines)")
        print(f"  offline decode:        {rate / 1e6:.2f} M events/s "
              f"({rate / online['events_per_s']:.0f}x real time)")
        print(f"  online per event:      median {online['event_us_median']:.2f} µs, "
              f"p99 {online['event_us_p99']:.2f} µs (handle_ttl_event)")
        print(f"  online per block:      median {online['block_us_median']:.1f} µs, "
              f"p99 {online['block_us_p99']:.1f} µs (process, 696 samples)")
        print(f"  online CPU share:      {100 * online['cpu_share']:.2f} % of one core")
        print(f"  frames decoded:        {online['frames']} ({online['errors']} with errors)")
        if native is not None:
            print(f"  native runner (no GIL): {native['blocks']} blocks, process() median "
                  f"{native['process_ms_median']:.3f} ms, p99 {native['process_ms_p99']:.3f} ms,"
                  f" max {native['process_ms_max']:.3f} ms")


if __name__ == "__main__":
    main()
