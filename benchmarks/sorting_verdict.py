#!/usr/bin/env python
"""The held-out bar (docs/sorting.md, "Held-out benchmark") per case and seed, from the stored
sorting grid results.

For every (case, seed) of ``benchmarks/results/sorting.json`` that has a sweepsort row and at
least one peer row, it prints sweepsort against the best peer: well-detected units (bar: >= the
best peer's), mean accuracy (bar: >= the best peer's - 0.02) and wall time against the fastest
peer that finished (bar: <= 0.5x), and whether the bar is met. The load columns say how busy the
shared 2-core machine was when each row ran (1-minute load average at the start); wall times of
rows run at different loads are not comparable beyond a factor of ~2. Runs nothing:

    .venv/bin/python benchmarks/sorting_verdict.py                 # held-out seeds
    .venv/bin/python benchmarks/sorting_verdict.py --split tuning
    .venv/bin/python benchmarks/sorting_verdict.py --split unseen  # seed 103 (session 19)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "sorting.json"
SPLIT_SEEDS = {"tuning": (1, 2), "heldout": (101, 102), "unseen": (103,)}
ACC_SLACK = 0.02
TIME_RATIO = 0.5


def verdict_rows(rows: list[dict], seeds) -> list[dict]:
    """One dict per (case, seed) with a sweepsort row and a finished peer row."""
    by_key: dict[tuple, dict] = {}
    for r in rows:
        if r.get("seed") in seeds and "well_detected" in r and not r.get("error"):
            by_key.setdefault((r["case"], r["seed"]), {})[r["sorter"]] = r
    out = []
    for (case, seed), sorters in sorted(by_key.items()):
        ss = sorters.get("sweepsort")
        peers = {k: v for k, v in sorters.items() if k != "sweepsort"}
        if ss is None or not peers:
            continue
        best_units = max(p["well_detected"] for p in peers.values())
        best_acc = max(p["accuracy"] for p in peers.values())
        fastest = min(peers.values(), key=lambda p: p["wall_s"])
        units_ok = ss["well_detected"] >= best_units
        acc_ok = ss["accuracy"] >= best_acc - ACC_SLACK
        ratio = ss["wall_s"] / fastest["wall_s"]
        out.append(dict(
            case=case, seed=seed, units=ss["well_detected"], gt=ss["gt_units"],
            best_units=best_units,
            best_units_by=",".join(sorted(k for k, p in peers.items()
                                          if p["well_detected"] == best_units)),
            accuracy=ss["accuracy"], best_accuracy=best_acc, wall_s=ss["wall_s"],
            fastest=fastest["sorter"], fastest_wall_s=fastest["wall_s"], time_ratio=ratio,
            load=ss["load_start"][0], peer_load=fastest["load_start"][0],
            units_ok=units_ok, acc_ok=acc_ok, time_ok=ratio <= TIME_RATIO,
            met=units_ok and acc_ok and ratio <= TIME_RATIO, peers=sorted(peers)))
    return out


def markdown(vs: list[dict]) -> str:
    head = ("| case | seed | well detected: sweepsort vs best peer | mean accuracy vs best | "
            "wall s vs fastest peer (ratio) | load (ss / peer) | bar |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for v in vs:
        missed = [name for name, ok in (("units", v["units_ok"]), ("accuracy", v["acc_ok"]),
                                        ("time", v["time_ok"])) if not ok]
        lines.append(
            f"| {v['case']} | {v['seed']} | {v['units']}/{v['gt']} vs {v['best_units']} "
            f"({v['best_units_by']}) | {v['accuracy']:.2f} vs {v['best_accuracy']:.2f} | "
            f"{v['wall_s']:.0f} vs {v['fastest_wall_s']:.0f} {v['fastest']} "
            f"({v['time_ratio']:.2f}x) | {v['load']:.1f} / {v['peer_load']:.1f} | "
            f"{'met' if v['met'] else 'lost on ' + ', '.join(missed)} |")
    met = sum(v["met"] for v in vs)
    units = sum(v["units_ok"] for v in vs)
    lines.append(f"\n{met} of {len(vs)} case-seeds meet the whole bar; sweepsort has >= the best "
                 f"peer's well-detected units on {units} of {len(vs)}; well-detected units in "
                 f"all: sweepsort {sum(v['units'] for v in vs)}, best peer per case "
                 f"{sum(v['best_units'] for v in vs)}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="heldout")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    db = json.loads(args.results.read_text())
    print(markdown(verdict_rows(db["rows"], SPLIT_SEEDS[args.split])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
