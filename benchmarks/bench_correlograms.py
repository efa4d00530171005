"""Benchmark: all auto/cross-correlograms of 100 units x 1 h, 1 ms bins, ±50 ms window.

Compares, in one run on the same spike trains (30 kHz sample numbers, log-normal rates around
5 Hz, a few hundred thousand to millions of spikes):

- sweepsort ``offline.analysis.correlograms.compute_correlograms`` (numba; 1 thread and all
  threads; compile time excluded, reported separately);
- SpikeInterface ``spikeinterface.postprocessing.compute_correlograms(sorting, window_ms=100,
  bin_ms=1, method="numba")`` (its ``window_ms`` is the full width: lags ±50 ms);
- Elephant ``cross_correlation_histogram(BinnedSpikeTrain, BinnedSpikeTrain,
  window=[-50, 50])``, one call per pair: timed on ``--elephant-pairs`` pairs and extrapolated
  to the U (U + 1) / 2 pairs needed (the other half by symmetry) — a full run would take hours.

sweepsort and SpikeInterface are timed ``--repeat`` times, interleaved, and the best time of
each is reported (the machine may be shared). Counts are checked against SpikeInterface
(totals within the window; SpikeInterface's bins are edge-aligned at 0, ours centred on 0, so
only totals are comparable).

    .venv/bin/python benchmarks/bench_correlograms.py [--units 100] [--minutes 60]
        [--rate-hz 5] [--repeat 3] [--elephant-pairs 20] [--skip-elephant]
        [--skip-spikeinterface]

Needs the ``bench`` extra (spikeinterface, elephant).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offline.analysis.correlograms import compute_correlograms  # noqa: E402

FS = 30000.0


def make_trains(n_units: int, minutes: float, rate_hz: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    dur_s = minutes * 60.0
    rates = rate_hz * rng.lognormal(0.0, 0.8, n_units) / np.exp(0.32)
    trains = []
    for r in rates:
        n = rng.poisson(r * dur_s)
        trains.append(np.sort(rng.integers(0, int(dur_s * FS), n)).astype(np.int64))
    return trains, dur_s


def bench_ours(trains, threads):
    compute_correlograms([t[:100] for t in trains[:3]], sample_rate_hz=FS, n_threads=threads)
    t0 = time.perf_counter()
    res = compute_correlograms(trains, bin_ms=1.0, window_ms=50.0, sample_rate_hz=FS,
                               n_threads=threads)
    return time.perf_counter() - t0, res


def bench_spikeinterface(trains):
    import spikeinterface.core as si
    from spikeinterface.postprocessing import compute_correlograms as si_ccg

    times = np.concatenate(trains)
    labels = np.concatenate([np.full(t.size, i) for i, t in enumerate(trains)])
    order = np.argsort(times, kind="stable")
    sorting = si.NumpySorting.from_samples_and_labels([times[order]], [labels[order]], FS)
    small = si.NumpySorting.from_samples_and_labels([times[order][:1000]],
                                                    [labels[order][:1000]], FS)
    si_ccg(small, window_ms=100.0, bin_ms=1.0, method="numba")  # compile
    t0 = time.perf_counter()
    ccg, bins = si_ccg(sorting, window_ms=100.0, bin_ms=1.0, method="numba")
    return time.perf_counter() - t0, ccg, bins


def bench_elephant(trains, dur_s, n_pairs, rng):
    import neo
    import quantities as pq
    from elephant.conversion import BinnedSpikeTrain
    from elephant.spike_train_correlation import cross_correlation_histogram

    u = len(trains)
    pairs = [(int(rng.integers(u)), int(rng.integers(u))) for _ in range(n_pairs)]
    t0 = time.perf_counter()
    for i, j in pairs:
        sts = [neo.SpikeTrain(trains[k] / FS, t_stop=dur_s, units="s") for k in (i, j)]
        bi = BinnedSpikeTrain(sts[0], bin_size=1 * pq.ms, t_start=0 * pq.s, t_stop=dur_s * pq.s)
        bj = BinnedSpikeTrain(sts[1], bin_size=1 * pq.ms, t_start=0 * pq.s, t_stop=dur_s * pq.s)
        cross_correlation_histogram(bi, bj, window=[-50, 50])
    per_pair = (time.perf_counter() - t0) / n_pairs
    return per_pair, per_pair * u * (u + 1) / 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate-hz", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--elephant-pairs", type=int, default=20)
    ap.add_argument("--skip-elephant", action="store_true")
    ap.add_argument("--skip-spikeinterface", action="store_true")
    args = ap.parse_args(argv)
    import numba

    n_all = numba.get_num_threads()  # SpikeInterface may change numba's thread count
    trains, dur_s = make_trains(args.units, args.minutes, args.rate_hz)
    n_spikes = sum(t.size for t in trains)
    print(f"{args.units} units x {args.minutes:g} min, {n_spikes} spikes "
          f"({n_spikes / dur_s:.0f} spikes/s in all), 1 ms bins, ±50 ms; "
          f"numba threads available: {n_all}")
    t0 = time.perf_counter()
    compute_correlograms([np.array([1, 2])], sample_rate_hz=FS)
    print(f"sweepsort first call (numba load/compile from cache): "
          f"{time.perf_counter() - t0:.2f} s")
    t1 = tn = ts = np.inf
    for _ in range(args.repeat):
        t, res = bench_ours(trains, 1)
        t1 = min(t1, t)
        t, res_n = bench_ours(trains, n_all)
        tn = min(tn, t)
        assert np.array_equal(res.counts, res_n.counts)
        if not args.skip_spikeinterface:
            t, ccg, _bins = bench_spikeinterface(trains)
            ts = min(ts, t)
    print(f"sweepsort, 1 thread:  {t1:8.2f} s (best of {args.repeat})")
    print(f"sweepsort, {n_all} threads: {tn:8.2f} s")
    if not args.skip_spikeinterface:
        ours_total = int(res.counts[:, :, 1:-1].sum())  # lags within ±49.5 ms
        si_total = int(ccg[:, :, 1:-1].sum())  # lags within ±49 ms
        print(f"spikeinterface (numba): {ts:8.2f} s  (pair totals: sweepsort {ours_total}, "
              f"spikeinterface {si_total}, ratio {ours_total / max(si_total, 1):.4f} "
              f"~ 99/98 expected from the window edges)")
        print(f"  sweepsort is {ts / t1:.1f}x faster on 1 thread, {ts / tn:.1f}x with all")
    if not args.skip_elephant:
        per_pair, total = bench_elephant(trains, dur_s, args.elephant_pairs,
                                         np.random.default_rng(1))
        print(f"elephant: {per_pair:.3f} s per pair ({args.elephant_pairs} pairs timed) -> "
              f"~{total:.0f} s for the {args.units * (args.units + 1) // 2} pairs "
              f"(extrapolated); sweepsort is ~{total / t1:.0f}x faster on 1 thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
