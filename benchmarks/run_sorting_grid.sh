#!/bin/sh
# The peer runs of the sorting grid, in the order they matter (docs/benchmarks.md, "Sorting
# grid"): sweepsort on the tuning seeds (also generates them), the peers on the held-out seeds
# (101 for every case, then 102), then the peers on the tuning seeds. One sorter at a time,
# --jobs 2; benchmarks/results/sorting.json is committed after every case and seed.
# Usage: sh benchmarks/run_sorting_grid.sh [log file]   (from the repository root)
set -u
LOG=${1:-/tmp/sweepsort-bench/grid.log}
mkdir -p "$(dirname "$LOG")"
B="./.venv/bin/python benchmarks/bench_sorting.py --jobs 2 --commit"
CASES=static64,zigzag64,burst32,dense64,mono64,nonrigid64,np384
PEERS=mountainsort5,spykingcircus2,tridesclous2
{
  $B --cases $CASES --split tuning --sorters sweepsort
  $B --cases $CASES --seeds 101 --sorters $PEERS
  $B --cases $CASES --seeds 102 --sorters $PEERS
  $B --cases $CASES --seeds 1 --sorters $PEERS
  $B --cases $CASES --seeds 2 --sorters $PEERS
  echo "grid done $(date)"
} >>"$LOG" 2>&1
