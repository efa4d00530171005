"""Start-up cost of the command-line tools: wall time and peak memory of ``--help``.

    python benchmarks/bench_cli_startup.py [--repeat 7]

Runs ``python -m offline.cli [CMD] --help`` and ``python -m stimulus.cli [CMD] --help`` from
the checkout (the checkout's packages shadow an installed copy) in fresh processes and prints
the median wall time (s) and the median peak resident memory (MB, ``ru_maxrss`` of the child)
of each. Python's own start-up is printed as the floor (``python -c pass``). Timing varies with
the machine's load; tests/test_cli_startup.py checks the cause (no heavy import) instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("python -c pass", ["-c", "pass"]),
    ("sweepsort --help", ["-m", "offline.cli", "--help"]),
    ("sweepsort detect --help", ["-m", "offline.cli", "detect", "--help"]),
    ("sweepsort sort --help", ["-m", "offline.cli", "sort", "--help"]),
    ("sweepsort report --help", ["-m", "offline.cli", "report", "--help"]),
    ("sweepstim --help", ["-m", "stimulus.cli", "--help"]),
    ("sweepstim run --help", ["-m", "stimulus.cli", "run", "--help"]),
]


def run_once(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process (``os.wait4``: Linux, macOS)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit status {proc.returncode}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs per command (median)")
    args = ap.parse_args()
    print(f"{'command':28s} {'median s':>9s} {'min s':>7s} {'MB':>6s}   ({args.repeat} runs, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    for name, argv in CASES:
        run_once(argv)  # warm the file cache (and numba's, were it loaded)
        runs = [run_once(argv) for _ in range(args.repeat)]
        walls = [w for w, _ in runs]
        mb = statistics.median(m for _, m in runs)
        print(f"{name:28s} {statistics.median(walls):9.3f} {min(walls):7.3f} {mb:6.0f}")


if __name__ == "__main__":
    main()
