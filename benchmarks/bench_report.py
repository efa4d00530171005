"""Benchmark: ``sweepsort report`` seconds per unit on synthetic sorts of 41 and 100 units.

The recordings are :func:`offline.analysis.synthetic.make_recording` with ``n_units`` units
(gratings with 12 directions + blanks, then 4 x 4 sparse noise; every unit gets a template,
ACG, ISI, raster + PSTH heat map, a tuning curve and an STA: 6 figures per unit). Each repeat
opens the recording afresh (no cached analyses) and writes the whole HTML report (population
page + unit pages); the time is wall-clock, divided by the number of units, and the CPU time
of this process and the report's worker processes (a measure the machine's other jobs disturb
less: on idle cores the wall time approaches CPU / jobs). Medians over
``--repeat`` runs are printed with the load average before and after (the machine may be
shared: compare numbers taken at a similar load).

    .venv/bin/python benchmarks/bench_report.py [--units 41 100] [--jobs 2] [--repeat 3]
        [--data DIR] [--dpi 80]

``--data DIR`` keeps the synthetic recordings there (made once, reused by later runs).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from offline.analysis import synthetic  # noqa: E402
from offline.analysis.model import Recording  # noqa: E402
from offline.analysis.report import write_report  # noqa: E402


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the report's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, nargs="+", default=[41, 100])
    ap.add_argument("--jobs", type=int, default=0, help="report worker processes (0: CPUs)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dpi", type=int, default=80)
    ap.add_argument("--data", help="folder for the synthetic recordings (default: temporary)")
    args = ap.parse_args(argv)
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_report_")
        data = Path(tmp.name)
    else:
        data = Path(args.data)
    jobs = args.jobs or os.cpu_count() or 1
    print(f"sweepsort report benchmark: jobs {jobs} ({os.cpu_count()} CPUs), dpi {args.dpi}, "
          f"{args.repeat} repeats")
    for n in args.units:
        root = data / f"units{n}" / "2024-05-01_12-00-00"
        if not (root / "sorts").is_dir():
            synthetic.make_recording(root, n_units=n, with_online=False)
        runs, sizes, cpus = [], [], []
        load_before = load()
        for _ in range(args.repeat):
            rec = Recording(root)
            out = data / f"units{n}" / "report.html"
            t0 = time.perf_counter()
            c0 = cpu_s()
            summary = write_report(rec, out, dpi=args.dpi, jobs=jobs)
            runs.append(time.perf_counter() - t0)
            cpus.append(cpu_s() - c0)
            sizes.append(out.stat().st_size)
            assert summary["n_units"] == n and summary["n_errors"] == 0, summary
        med = statistics.median(runs)
        cpu = statistics.median(cpus)
        print(f"{n:4d} units: median {med:6.2f} s = {med / n:.3f} s/unit wall (runs "
              f"{', '.join(f'{r:.2f}' for r in runs)} s); CPU {cpu:.1f} s = {cpu / n:.3f} "
              f"s/unit (all processes); HTML {sizes[-1] / 1e6:.1f} MB; "
              f"load avg {load_before} -> {load()}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
