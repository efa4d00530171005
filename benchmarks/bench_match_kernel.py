"""The template-matching kernel against a git revision of itself, on the same events.

    .venv/bin/python benchmarks/bench_match_kernel.py [--seconds 6] [--baseline-rev HEAD]

The baseline is ``oe_plugin/kernels/match.py`` as of ``--baseline-rev`` (default ``HEAD``:
the working tree's change against the last commit), loaded from git into a temporary module,
so both run in this process on the same data; the revision must have the current
``match_events`` signature (N_PARAMS 19, the channel-mask argument). Scenes: synthetic
time-major traces in noise units (unit noise), 5-row templates with distinct waveforms (trough
width, rebound and spatial decay drawn per unit) on a linear layout, every unit firing at 10 Hz,
events on the unit's peak channel jittered by ±1 sample, time-sorted; matching with peeling
(±2 shifts, amplitudes 0.75–1.33, threshold 3) over a plain array, in two settings:

* ``single``: no overlap resolution (every event one search over its channel's candidates);
* ``online``: the pipeline module's overlap effort (``oe_plugin.online.match_model``: ±15
  sample window searched every 2nd sample, one round, no refits, two spikes at most) with no
  budget, so every rejected event is tried as an overlap.

Printed per scene and setting: µs per event (median of 5 runs), µs per overlap try (the
``online`` time less the ``single`` time, over the tries), the ratio baseline/current, and the
agreement of unit, shift and accepted-count per event, with "bit-identical" when every output
(amplitudes and errors too) is the baseline's to the bit (a change of summation order can move
the last bits, and then only near-ties).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oe_plugin.kernels import match as new  # noqa: E402
from oe_plugin.kernels.candidates import candidates  # noqa: E402
from oe_plugin.online import match_model as online  # noqa: E402
from oe_plugin.waveforms import biphasic_spike  # noqa: E402

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


def timed(mod, x, et, ec, tpl, chans, cp, ci, thr, params):
    """µs per event (median of 5 runs after one to compile) and the last run's outputs."""
    norm = np.zeros(tpl.shape[0], np.float32)
    mod.template_norms(tpl, norm)
    n2, rows, work, iwork = mod.match_tables(tpl, cp, x.shape[1], params)
    valid = np.zeros((1, 0), np.int32)
    times, outs = [], None
    for rep in range(6):
        src, outs = x.copy(), outputs(len(et))
        mod.reset_overlap_budget(work, params)
        t0 = time.perf_counter()
        mod.match_events(src, et, ec, tpl, chans, n2, rows, cp, ci, thr, params, work, iwork,
                         *outs, valid)
        if rep:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / len(et) * 1e6, outs


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--baseline-rev", default="HEAD")
    args = ap.parse_args(argv)
    old = load_baseline(args.baseline_rev)
    print(f"baseline: oe_plugin/kernels/match.py at {args.baseline_rev}; {args.seconds:g} s per "
          f"scene, units at 10 Hz")
    print("channels templates setting  events  tries  baseline us/ev  current us/ev  ratio"
          "  baseline us/try  current us/try  agreement")
    for n_ch, n_units in ((64, 50), (64, 200), (384, 200)):
        x, tpl, chans, et, ec, pre = scene(n_ch, n_units, args.seconds)
        cp, ci = candidates(tpl, chans, n_ch)
        thr = np.full(n_units, 3.0, np.float32)
        per_ev = {}
        for setting in ("single", "online"):
            if setting == "single":
                params = new.make_params(pre, 2, 0.75, 1.33)
            else:
                params = new.make_params(pre, 2, 0.75, 1.33, pair_window=15,
                                         refit_rounds=online.ONLINE_REFIT_ROUNDS,
                                         overlap_rounds=online.ONLINE_OVERLAP_ROUNDS,
                                         pursuit_step=online.ONLINE_PURSUIT_STEP)
            t_old, o_old = timed(old, x, et, ec, tpl, chans, cp, ci, thr, params)
            t_new, o_new = timed(new, x, et, ec, tpl, chans, cp, ci, thr, params)
            per_ev[setting] = (t_old, t_new, o_new)
            same = np.mean((o_old[0] == o_new[0]) & (o_old[1] == o_new[1])
                           & (o_old[4] == o_new[4]))
            exact = all(np.array_equal(a, b, equal_nan=True)
                        for a, b in zip(o_old, o_new, strict=True))
            tries, per_try = "", ""
            if setting == "online":
                n_try = int(np.sum(per_ev["single"][2][4] == 0))  # rejected alone: tried
                s_old, s_new = per_ev["single"][0], per_ev["single"][1]
                tries = f"{n_try:6d}"
                per_try = (f"{(t_old - s_old) * len(et) / max(n_try, 1):16.2f} "
                           f"{(t_new - s_new) * len(et) / max(n_try, 1):15.2f}")
            print(f"{n_ch:8d} {n_units:9d} {setting:7s} {len(et):7d} {tries:>6s} "
                  f"{t_old:15.2f} {t_new:14.2f} {t_old / t_new:6.2f} {per_try:>32s}"
                  f"  {same:.5f}{'  bit-identical' if exact else ''}")


if __name__ == "__main__":
    main()
