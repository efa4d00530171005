"""The template-matching kernel against its previous version, on the same events.

    .venv/bin/python benchmarks/bench_match_kernel.py [--seconds 6] [--baseline-rev 5ce1bdf]

The baseline is ``oe_plugin/kernels/match.py`` as of ``--baseline-rev`` (default: the last
commit before the gathered float32 search; a float64 sample loop over ``src``), loaded from git
into a temporary module, so both run in this process on the same data. Scenes: synthetic
time-major traces in noise units (unit noise), 5-row templates with distinct waveforms (trough
width, rebound and spatial decay drawn per unit) on a linear layout, every unit firing at 10 Hz,
events on the unit's peak channel jittered by ±1 sample, time-sorted; matching with peeling and
pair resolution (±2 shifts, ±15 for pairs, amplitudes 0.75–1.33, threshold 3), over a plain
array. Printed: µs per event (median of 3), the ratio, and the agreement of unit, shift and
accepted-count per event (the kernels sum in different orders: float32 vectorised vs float64
sequential, so only near-ties could differ).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from oe_plugin.waveforms import biphasic_spike

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oe_plugin.kernels import match as new  # noqa: E402
from oe_plugin.kernels.candidates import candidates  # noqa: E402

FS = 30000.0


def load_baseline(rev: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:oe_plugin/kernels/match.py"],
                         check=True, capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp()) / "match_baseline.py"
    tmp.write_text(src.replace("cache=True", "cache=False"))
    spec = importlib.util.spec_from_file_location("match_baseline", tmp)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scene(n_ch, n_units, seconds, seed=0):
    rng = np.random.default_rng(seed)
    w, pre = 54, 18
    t = (np.arange(w) - pre) / FS * 1e3
    peak = np.sort(rng.integers(2, n_ch - 2, n_units))
    tpl = np.zeros((n_units, 5, w), np.float32)
    chans = np.zeros((n_units, 5), np.int32)
    for u in range(n_units):
        rows = np.arange(peak[u] - 2, peak[u] + 3)
        chans[u] = rows
        shape = biphasic_spike(t, rng.uniform(0.08, 0.2), rng.uniform(0.2, 0.5),
                               rng.uniform(0.3, 0.7), 0.2)
        shape /= -shape.min()
        decay = np.exp(-np.abs(rows - peak[u]) / rng.uniform(0.7, 1.5))
        tpl[u] = rng.uniform(6, 10) * decay[:, None] * shape
    n = int(seconds * FS)
    x = rng.standard_normal((n, n_ch)).astype(np.float32)
    ev = []
    for u in range(n_units):
        ts = np.cumsum(rng.exponential(FS / 10.0, int(seconds * 14) + 10)).astype(np.int64) + w
        for s in ts[ts < n - w]:
            x[s - pre:s - pre + w, chans[u]] += tpl[u].T
            ev.append((s + rng.integers(-1, 2), peak[u]))
    ev.sort()
    return (x, tpl, chans, np.array([e[0] for e in ev], np.int64),
            np.array([e[1] for e in ev], np.int32), pre)


def outputs(n):
    return [np.zeros(n, d) for d in (np.int32, np.int32, np.float32, np.float32, np.int32,
                                     np.int32, np.int32, np.float32, np.float32)]


def timed(fn, x, head, tail, n_events):
    """µs per event (median of 3 runs after one to compile) and the last run's outputs."""
    times, outs = [], None
    for rep in range(4):
        src, outs = x.copy(), outputs(n_events)
        t0 = time.perf_counter()
        fn(src, *head, *tail, *outs)
        if rep:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / n_events * 1e6, outs


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--baseline-rev", default="5ce1bdf")
    args = ap.parse_args(argv)
    old = load_baseline(args.baseline_rev)
    print(f"baseline: oe_plugin/kernels/match.py at {args.baseline_rev}; {args.seconds:g} s per "
          f"scene, units at 10 Hz")
    print("channels templates  events  baseline us/ev  current us/ev  ratio  agreement")
    for n_ch, n_units in ((64, 50), (64, 200), (384, 200)):
        x, tpl, chans, et, ec, pre = scene(n_ch, n_units, args.seconds)
        cp, ci = candidates(tpl, chans, n_ch)
        thr = np.full(n_units, 3.0, np.float32)
        params = new.make_params(pre, 2, 0.75, 1.33, pair_window=15)
        norm = np.zeros(n_units, np.float32)
        new.template_norms(tpl, norm)
        n2, rows, work, iwork = new.match_tables(tpl, cp, n_ch, params)

        head = (et, ec, tpl, chans)
        t_old, o_old = timed(old.match_events, x, head, (norm, cp, ci, thr, params), len(et))
        t_new, o_new = timed(new.match_events, x, head,
                             (n2, rows, cp, ci, thr, params, work, iwork), len(et))
        same = np.mean((o_old[0] == o_new[0]) & (o_old[1] == o_new[1]) & (o_old[4] == o_new[4]))
        print(f"{n_ch:8d} {n_units:9d} {len(et):7d} {t_old:15.2f} {t_new:14.2f} "
              f"{t_old / t_new:6.2f}  {same:.5f}")


if __name__ == "__main__":
    main()
