#!/usr/bin/env python
"""Peer benchmark: sweepsort sort vs MountainSort5 / SpykingCircus2 / Tridesclous2 / Kilosort4.

The cases (``benchmarks/sorting_cases.py``) are SpikeInterface-generated ground-truth recordings
written as **Open Ephys Binary recordings** (int16, bit_volts 0.195) with a probeinterface
``probe.json``, so sweepsort's reader is part of what is measured; the peers read the same int16
data through SpikeInterface's Open Ephys reader. Every sorter runs in its own subprocess (wall
time; peak RSS of the largest process from /usr/bin/time, and of the whole process tree sampled
every 0.5 s), killed after ``--timeout`` s or when the machine has < 2 GB left. Each result is
compared to the ground truth with SpikeInterface's ``compare_sorter_to_ground_truth`` (match
score 0.5, 0.4 ms tolerance; a unit is well detected at accuracy >= 0.8).

Seeds are split: ``--split tuning`` (seeds 1, 2) for choosing defaults, ``--split heldout``
(seeds 101, 102) for the report only, ``--split unseen`` (seed 103, added in session 19 once
101 and 102 had been reported after many changes) for a report on defaults fixed before it was
first run. Results are merged into ``benchmarks/results/sorting.json``
(one row per case, seed, sorter; a re-run replaces its own rows only), so the peers run once and
sweepsort can be re-measured alone with the peers' rows still in the table:

    .venv/bin/python benchmarks/bench_sorting.py --split tuning --jobs 2            # everything
    .venv/bin/python benchmarks/bench_sorting.py --split tuning --sorters sweepsort --jobs 2
    .venv/bin/python benchmarks/bench_sorting.py --split heldout --cases static64,zigzag64
    .venv/bin/python benchmarks/bench_sorting.py --split heldout --table   # print, run nothing
    .venv/bin/python benchmarks/bench_sorting.py --split all --generate-only

Kilosort4 (``--sorters kilosort4``, not in the default list) needs torch, whose only wheel at
hand is a CPU build for Python 3.11, so it runs from a separate venv (docs/benchmarks.md):

    /work/ks4-venv/bin/python benchmarks/bench_sorting.py --sorters kilosort4 --cases static64 \
        --seeds 101 --jobs 2 --timeout 3600

The legacy cases ``32x60`` and ``64x300`` (docs/sorting.md; ``--seed 0``/``--seed 1``) still
run, from ``generate_ground_truth_recording`` as before. Not part of the test run (needs the
``bench`` extra and minutes to hours).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sorting_cases as cases  # noqa: E402

PEERS = ("mountainsort5", "spykingcircus2", "tridesclous2")  # the default --sorters
# Kilosort4 needs torch: a CPU build exists here for Python 3.11 only, so it runs from its own venv
KS4_VENV = "/work/ks4-venv"
KS4_MISSING = ("kilosort4: torch/kilosort not importable in this Python; run it with "
               f"{KS4_VENV}/bin/python benchmarks/bench_sorting.py --sorters kilosort4 ... "
               "(docs/benchmarks.md)")
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "sorting.json"
# motion correction of SpykingCircus2 / Tridesclous2 on drifting cases: their default preset
# (dredge_fast) needs torch, which the bench extra does not install; this one runs on numpy
MOTION_PRESET = "nonrigid_fast_and_accurate"


def peer_config(sorter: str, case: str) -> tuple[dict, str]:
    """(run_sorter kwargs, description) for a peer on a case."""
    drift = case in cases.CASES and cases.CASES[case].get("drift") is not None
    if sorter == "spykingcircus2":
        if drift:
            return ({"apply_motion_correction": True,
                     "motion_correction": {"preset": MOTION_PRESET}}, f"motion {MOTION_PRESET}")
        return {"apply_motion_correction": False}, "motion off (static ground truth)"
    if sorter == "tridesclous2":
        if drift:
            return ({"apply_motion_correction": True, "motion_correction_preset": MOTION_PRESET},
                    f"motion {MOTION_PRESET}")
        return {}, "defaults (motion off)"
    if sorter == "mountainsort5":
        return {}, "SI bandpass 300-6000 + whiten; no motion correction"
    if sorter == "kilosort4":
        # its own filtering, CAR, whitening and drift correction; no GPU on this machine
        return {"torch_device": "cpu"}, (f"defaults, CPU, torch {_version('torch')}, "
                                         f"kilosort {_version('kilosort')}")
    return {}, "defaults"


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


# -- one sorter, in a subprocess ---------------------------------------------------------------
def run_one(sorter: str, case: str, folder: Path, out: Path, jobs: int) -> None:
    """Runs inside the measured subprocess; writes out/spikes.npz (times, units)."""
    out.mkdir(parents=True, exist_ok=True)
    if sorter == "sweepsort":
        shutil.rmtree(out / "sort", ignore_errors=True)  # cold: no resumed chunk results
        from offline.cli import main

        code = main(["sort", str(folder / "session"), "--out", str(out / "sort"), "--probe",
                     str(folder / "probe.json"), "--jobs", str(jobs), "--quiet"])
        if code:
            raise SystemExit(code)
        from offline.sort import load_sort

        res = load_sort(out / "sort")
        keep = res.arrays["spike_unit"] >= 0
        np.savez(out / "spikes.npz", times=res.arrays["spike_index"][keep],
                 units=res.arrays["spike_unit"][keep])
        return
    if sorter == "kilosort4":
        try:
            import kilosort  # noqa: F401
            import torch  # noqa: F401
        except ImportError:
            raise SystemExit(KS4_MISSING) from None  # one line, the row's error
    import probeinterface
    import spikeinterface.extractors as se
    import spikeinterface.preprocessing as spre
    import spikeinterface.sorters as ss

    rec = se.read_openephys(folder / "session", stream_id="0")
    rec = rec.set_probe(probeinterface.read_probeinterface(folder / "probe.json").probes[0],
                        in_place=False)
    if sorter == "mountainsort5":
        rec = spre.whiten(spre.bandpass_filter(rec, 300, 6000), dtype="float32")
    extra = peer_config(sorter, case)[0]
    if sorter == "kilosort4":
        extra["n_jobs"] = jobs  # only for SI's int16 copy (recording.dat); torch uses its own
    elif sorter != "mountainsort5":
        extra["job_kwargs"] = {"n_jobs": jobs}
    sorting = ss.run_sorter(sorter, rec, folder=out / "si", remove_existing_folder=True,
                            verbose=False, **extra)
    times, units = [], []
    for k, u in enumerate(sorting.unit_ids):
        st = sorting.get_unit_spike_train(u)
        times.append(st)
        units.append(np.full(len(st), k))
    np.savez(out / "spikes.npz", times=np.concatenate(times) if times else np.zeros(0, int),
             units=np.concatenate(units) if units else np.zeros(0, int))


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """(RSS MB, user + system CPU s) of the live process tree under ``pid``."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0
    total, cpu = 0, 0.0
    for q in procs:
        try:
            total += q.memory_info().rss
            t = q.cpu_times()
            cpu += t.user + t.system
        except psutil.Error:
            pass
    return total / 2**20, cpu


MIN_AVAILABLE_GB = 2.0


def memory_low() -> bool:
    """A run is killed rather than let the shared machine run out of memory."""
    import psutil

    return psutil.virtual_memory().available < MIN_AVAILABLE_GB * 2**30


def measure(sorter: str, case: str, folder: Path, out: Path, jobs: int, timeout: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "spikes.npz").unlink(missing_ok=True)
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--run", sorter, "--case", case,
           "--folder", str(folder), "--out", str(out), "--jobs", str(jobs)]
    load = os.getloadavg()
    t0 = time.perf_counter()
    with open(out / "stdout.txt", "w") as fo, open(out / "stderr.txt", "w") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=REPO, start_new_session=True)
        peak_tree, tree_cpu, killed = 0.0, 0.0, None
        while proc.poll() is None:
            mb, cpu = tree_rss_mb(proc.pid)
            peak_tree, tree_cpu = max(peak_tree, mb), max(tree_cpu, cpu)
            if time.perf_counter() - t0 > timeout:
                killed = f"timeout: killed after {timeout:.0f} s"
            elif memory_low():
                killed = (f"killed at {peak_tree / 1024:.1f} GB (process tree): the machine had "
                          f"< {MIN_AVAILABLE_GB} GB left (shared with other jobs)")
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)  # the session this run started, only
                proc.wait()
                break
            time.sleep(0.5)
    wall = time.perf_counter() - t0
    err = (out / "stderr.txt").read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    # CPU time (the machine is shared: wall time / CPU time shows the load): /usr/bin/time's
    # user + system; for a killed run (no report) the last sample of the live process tree
    cpu_t = re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", err)
    cpu_s = sum(float(c) for c in cpu_t) if len(cpu_t) == 2 else tree_cpu
    row = {"sorter": sorter, "config": peer_config(sorter, case)[1], "wall_s": round(wall, 1),
           "peak_mb": round(int(rss.group(1)) / 1024) if rss else None,
           "peak_tree_mb": round(peak_tree), "cpu_s": round(cpu_s, 1),
           "load_start": [round(v, 2) for v in load],
           "load_end": [round(v, 2) for v in os.getloadavg()]}
    if killed:
        row["error"] = killed + ks4_stage(out, err)
    elif proc.returncode != 0 or not (out / "spikes.npz").is_file():
        # the last line before /usr/bin/time's report ("Command exited ...", tab-indented)
        lines = [s for s in err.strip().splitlines()
                 if not s.startswith(("\t", "Command exited", "Command terminated"))]
        row["error"] = (lines or ["?"])[-1][:300]
    if "error" not in row:
        row.update(score(folder, out / "spikes.npz"))
    return row


def ks4_stage(out: Path, err: str) -> str:
    """Where a killed Kilosort4 run was: its last log step and progress bar ('' if none)."""
    log = out / "si" / "sorter_output" / "kilosort4.log"
    if not log.is_file():
        return ""
    steps = re.findall(r" INFO +((?:Computing|Extracting|First|Final|Merging|Saving)[^:\n]*)$",
                       log.read_text(errors="replace"), re.M)
    bars = re.findall(r"(\d+/\d+) \[", err)
    if not steps:
        return ""
    return f" (kilosort4 was at: {steps[-1].rstrip('.')}" + (
        f", last progress bar {bars[-1]} batches)" if bars else ")")


def score(folder: Path, spikes: Path) -> dict:
    import spikeinterface.core as si

    z = np.load(spikes)
    return score_trains(si.load(folder / "gt_sorting"), z["times"], z["units"])


WELL_DETECTED = 0.8  # accuracy at or above which a ground-truth unit counts as well detected


def score_trains(gt, times: np.ndarray, units: np.ndarray, unit_ids=None) -> dict:
    """A sorter's spikes (sample indices ``times``, labels ``units``) against the ground-truth
    sorting ``gt``: SpikeInterface's ``compare_sorter_to_ground_truth`` (exhaustive ground
    truth, its default match score and tolerance). ``unit_ids``: the sorter's units (default:
    the labels present), so that a unit without spikes is still one of them."""
    import spikeinterface.comparison as sc
    import spikeinterface.core as si

    kw = {} if unit_ids is None else {"unit_ids": np.asarray(unit_ids)}
    tested = si.NumpySorting.from_samples_and_labels([np.asarray(times, np.int64)],
                                                     [np.asarray(units)], cases.FS, **kw)
    cmp = sc.compare_sorter_to_ground_truth(gt, tested, exhaustive_gt=True)
    perf = cmp.get_performance()
    return {"gt_units": int(len(perf)),
            "well_detected": int((perf["accuracy"] >= WELL_DETECTED).sum()),
            "units_found": int(len(np.unique(units))),
            "accuracy": round(float(perf["accuracy"].mean()), 4),
            "precision": round(float(perf["precision"].mean()), 4),
            "recall": round(float(perf["recall"].mean()), 4),
            "unit_accuracy": [round(float(a), 3) for a in perf["accuracy"]]}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    v = {}
    for pkg in ("spikeinterface", "mountainsort5", "numpy", "numba", "scipy", "hdbscan",
                "scikit-learn", "probeinterface", "torch", "kilosort", "faiss-cpu"):
        try:
            v[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    v["python"] = sys.version.split()[0]
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "offline", "oe_plugin"],
                           capture_output=True, text=True).stdout.strip()
    v["sweepsort"] = head.stdout.strip() + ("+uncommitted" if dirty else "")
    return v


# -- the results file ---------------------------------------------------------------------------
def key(r: dict) -> tuple:
    return (r["case"], r["seed"], r["sorter"])


def dumps(db: dict) -> str:
    """JSON with one case and one row per line (readable diffs)."""
    cs = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(db["cases"].items())]
    rs = [f"  {json.dumps(r)}" for r in db["rows"]]
    return ('{\n "cases": {\n' + ",\n".join(cs) + '\n },\n "rows": [\n' + ",\n".join(rs)
            + "\n ]\n}\n")


def merge(path: Path, rows: list, meta: dict | None = None) -> dict:
    """Replaces rows with the same (case, seed, sorter) in ``path`` under a lock; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "sweepsort-bench-results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        db = json.loads(path.read_text()) if path.is_file() else {"cases": {}, "rows": []}
        new = {key(r) for r in rows}
        db["rows"] = [r for r in db["rows"] if key(r) not in new] + rows
        db["rows"].sort(key=lambda r: (r["split"] != "heldout", r["case"], r["seed"],
                                       r["sorter"] != "sweepsort", r["sorter"]))
        if meta:
            db["cases"].update(meta)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(dumps(db))
        tmp.replace(path)
    return db


def stored_ok(path: Path, row: dict) -> bool:
    """Whether ``path`` has a row with the same key that did not fail."""
    if not path.is_file():
        return False
    return any(key(r) == key(row) and "error" not in r
               for r in json.loads(path.read_text())["rows"])


def others(path: Path, mine: list) -> list:
    """Rows that differ from HEAD's results file and this run did not write (another run's)."""
    rel = str(path.relative_to(REPO))
    head = subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{rel}"], capture_output=True,
                          text=True)
    old = {key(r): r for r in json.loads(head.stdout)["rows"]} if head.returncode == 0 else {}
    now = json.loads(path.read_text())["rows"]
    return [r for r in now if old.get(key(r)) != r and key(r) not in {key(m) for m in mine}]


def commit(path: Path, msg: str, mine: list) -> None:
    """Commits the results file alone (``git commit -- path`` ignores anything else staged)."""
    rel = str(path.relative_to(REPO))
    extra = others(path, mine)
    if extra:
        msg += "; also rows written by another run: " + ", ".join(
            f"{r['case']}-s{r['seed']} {r['sorter']}" for r in extra)
    for _ in range(5):
        a = subprocess.run(["git", "-C", str(REPO), "add", rel], capture_output=True, text=True)
        c = subprocess.run(["git", "-C", str(REPO), "commit", "-q", "-m", msg, "--", rel],
                           capture_output=True, text=True)
        if a.returncode == 0 and (c.returncode == 0 or "nothing" in c.stdout + c.stderr):
            return
        time.sleep(3)  # index.lock held by someone else's git
    print(f"commit failed: {c.stderr.strip()}", file=sys.stderr)


def table(db: dict, split: str, case_list: list, seeds: list | None = None) -> str:
    """The stored rows of ``split`` (or of ``seeds`` when given) and ``case_list`` as a
    markdown table."""
    rows = [r for r in db["rows"] if (r["seed"] in seeds if seeds is not None
                                      else split == "all" or r["split"] == split)
            and r["case"] in case_list]
    rows.sort(key=lambda r: (r["split"] != "heldout", case_list.index(r["case"]), r["seed"],
                             r["sorter"] != "sweepsort", r["sorter"]))
    out = ["| case | seed | sorter | GT units acc>=0.8 | units found | mean acc | precision "
           "| recall | wall s | peak MB (tree) | load | config |", "|" + "---|" * 12]
    for r in rows:
        mem = f"{r.get('peak_mb')} ({r.get('peak_tree_mb')})"
        load = r["load_start"][0]
        if "error" in r:
            out.append(f"| {r['case']} | {r['seed']} | {r['sorter']} | failed: {r['error']} "
                       f"| | | | | {r['wall_s']:.0f} | {mem} | {load:.1f} | {r['config']} |")
            continue
        out.append(f"| {r['case']} | {r['seed']} | {r['sorter']} | {r['well_detected']}/"
                   f"{r['gt_units']} | {r['units_found']} | {r['accuracy']:.2f} | "
                   f"{r['precision']:.2f} | {r['recall']:.2f} | {r['wall_s']:.1f} | {mem} | "
                   f"{load:.1f} | {r['config']} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(cases.CASES))
    ap.add_argument("--split", default="tuning", choices=("tuning", "heldout", "unseen", "all"))
    ap.add_argument("--seeds", help="comma-separated seeds (overrides --split)")
    ap.add_argument("--seed", type=int, help="one seed (legacy form of --seeds)")
    ap.add_argument("--sorters", default="sweepsort," + ",".join(PEERS))
    ap.add_argument("--root", default="/tmp/sweepsort-bench")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--timeout", type=float, default=3600.0, help="per sorter run, s")
    ap.add_argument("--commit", action="store_true",
                    help="git-commit the results file after each case and seed")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the stored table, run nothing")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        run_one(args.run, args.case, Path(args.folder), Path(args.out), args.jobs)
        return
    root, results = Path(args.root), Path(args.results)
    case_list = args.cases.split(",")
    if args.seeds or args.seed is not None:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    else:
        seeds = [s for name in ("tuning", "heldout", "unseen") if args.split in (name, "all")
                 for s in cases.SPLITS[name]]
    if args.table:
        db = json.loads(results.read_text()) if results.is_file() else {"rows": []}
        print(table(db, args.split, case_list,
                    seeds if args.seeds or args.seed is not None else None))
        return
    for case in case_list:
        for seed in seeds:
            t0 = time.perf_counter()
            folder = cases.generate(case, seed, root)
            meta = json.loads((folder / "meta.json").read_text())
            print(f"{cases.label(case, seed)}: {folder} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
            if args.generate_only:
                continue
            split = cases.split_of(case, seed)
            lib = versions()
            rows = []
            for sorter in args.sorters.split(","):
                row = {"case": case, "seed": seed, "split": split,
                       **measure(sorter, case, folder, folder / "out" / sorter, args.jobs,
                                 args.timeout),
                       "jobs": args.jobs, "date": time.strftime("%Y-%m-%d %H:%M"),
                       "versions": lib}
                print(json.dumps({k: v for k, v in row.items()
                                  if k not in ("unit_accuracy", "versions")}), flush=True)
                if row.get("error") == KS4_MISSING and stored_ok(results, row):
                    print("  (kept the stored kilosort4 row: this Python cannot run it)")
                    continue
                rows.append(row)
                merge(results, [row], {cases.label(case, seed): {
                    k: meta[k] for k in ("params", "channels", "gt_spikes", "dat_sha256")}})
            if args.commit:
                commit(results, f"benchmarks/results: {cases.label(case, seed)} "
                                f"({', '.join(r['sorter'] for r in rows)})", rows)
    if not args.generate_only:
        db = json.loads(results.read_text())
        split = "all" if args.seeds or args.seed is not None else args.split
        print()
        print(table(db, split, case_list))


if __name__ == "__main__":
    main()
