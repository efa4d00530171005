#!/usr/bin/env python
"""Peer benchmark: sweepsort sort vs MountainSort5 / SpykingCircus2 / Tridesclous2.

For each case a SpikeInterface-generated ground-truth recording is written as an **Open Ephys
Binary recording** (int16, bit_volts 0.195, structure.oebin), so sweepsort's reader is part of
what is measured; the peers read the same int16 data through SpikeInterface's Open Ephys reader.
Every sorter runs in its own subprocess (wall time and peak RSS of that process tree measured
with /usr/bin/time), and each result is compared to the ground truth with SpikeInterface's
``compare_sorter_to_ground_truth`` (match score 0.5, 0.4 ms tolerance).

    .venv/bin/python benchmarks/bench_sorting.py --cases 32x60 --sorters sweepsort,mountainsort5
    .venv/bin/python benchmarks/bench_sorting.py               # all cases, all sorters
    .venv/bin/python benchmarks/bench_sorting.py --cases 32x60 --sorters sweepsort  # re-measure
                          # sweepsort alone; the table keeps the peers' rows from results.json

Not part of the test run (needs the ``bench`` extra and minutes to hours).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CASES = {"32x60": (32, 60.0, 20), "64x300": (64, 300.0, 40)}  # channels, seconds, units
BIT_VOLTS = 0.195
FS = 30000.0
PEERS = ("mountainsort5", "spykingcircus2", "tridesclous2")


def label(case: str, seed: int) -> str:
    """A case's name in the table and its folder: ``32x60``, or ``32x60-seed1`` for another
    ground-truth draw (units, positions, spike trains, noise)."""
    return case if seed == 0 else f"{case}-seed{seed}"


def generate(case: str, root: Path, seed: int = 0):
    import probeinterface
    import spikeinterface.core as sc

    n_ch, dur, n_units = CASES[case]
    folder = root / label(case, seed)
    gt_path = folder / "gt_sorting"
    rec_dir = folder / "session" / "Record Node 101" / "experiment1" / "recording1"
    if (folder / "probe.json").is_file() and gt_path.exists():
        return folder
    rec, gt = sc.generate_ground_truth_recording(
        durations=[dur], sampling_frequency=FS, num_channels=n_ch, num_units=n_units,
        generate_probe_kwargs={"num_columns": 2, "xpitch": 20, "ypitch": 20,
                               "contact_shapes": "circle", "contact_shape_params": {"radius": 6}},
        generate_sorting_kwargs={"firing_rates": (2.0, 12.0), "refractory_period_ms": 4.0},
        noise_kwargs={"noise_levels": 10.0, "strategy": "on_the_fly"}, seed=seed)
    write_open_ephys_binary(rec, rec_dir)
    gt.save(folder=gt_path)
    probe = rec.get_probe()
    probe.set_device_channel_indices(np.arange(n_ch))
    probeinterface.write_probeinterface(folder / "probe.json", probe)
    return folder


def write_open_ephys_binary(rec, rec_dir: Path) -> None:
    proc = "Acquisition_Board-100.Rhythm Data"
    d = rec_dir / "continuous" / proc
    d.mkdir(parents=True, exist_ok=True)
    n = rec.get_num_samples()
    with open(d / "continuous.dat", "wb") as f:
        for a in range(0, n, 300000):
            x = rec.get_traces(start_frame=a, end_frame=min(n, a + 300000))
            np.round(x / BIT_VOLTS).clip(-32768, 32767).astype("<i2").tofile(f)
    sn = np.arange(n, dtype=np.int64)
    np.save(d / "sample_numbers.npy", sn)
    np.save(d / "timestamps.npy", sn / FS)
    c = rec.get_num_channels()
    oebin = {"GUI version": "0.6.7", "events": [], "spikes": [], "continuous": [{
        "folder_name": proc + "/", "sample_rate": FS, "source_processor_name": "Acquisition Board",
        "source_processor_id": 100, "stream_name": "Rhythm Data", "recorded_processor":
        "Record Node", "recorded_processor_id": 101, "num_channels": c,
        "channels": [{"channel_name": f"CH{i + 1}", "description": "", "identifier": "",
                      "history": "", "bit_volts": BIT_VOLTS, "units": "uV"} for i in range(c)]}]}
    (rec_dir / "structure.oebin").write_text(json.dumps(oebin, indent=2))


# -- one sorter, in a subprocess ---------------------------------------------------------------
def run_one(sorter: str, folder: Path, out: Path, jobs: int) -> None:
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
    import probeinterface
    import spikeinterface.extractors as se
    import spikeinterface.preprocessing as spre
    import spikeinterface.sorters as ss

    rec = se.read_openephys(folder / "session", stream_id="0")
    rec = rec.set_probe(probeinterface.read_probeinterface(folder / "probe.json").probes[0],
                        in_place=False)
    if sorter == "mountainsort5":
        rec = spre.whiten(spre.bandpass_filter(rec, 300, 6000), dtype="float32")
    extra = {} if sorter == "mountainsort5" else {"job_kwargs": {"n_jobs": jobs}}
    if sorter == "spykingcircus2":
        # its default motion correction (DREDGE) needs torch, which the bench extra does not
        # install; the ground truth has no drift, so nothing is lost by switching it off
        extra["apply_motion_correction"] = False
    sorting = ss.run_sorter(sorter, rec, folder=out / "si", remove_existing_folder=True,
                            verbose=False, **extra)
    times, units = [], []
    for k, u in enumerate(sorting.unit_ids):
        st = sorting.get_unit_spike_train(u)
        times.append(st)
        units.append(np.full(len(st), k))
    np.savez(out / "spikes.npz", times=np.concatenate(times) if times else np.zeros(0, int),
             units=np.concatenate(units) if units else np.zeros(0, int))


def measure(sorter: str, folder: Path, out: Path, jobs: int) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--run", sorter, "--folder",
           str(folder), "--out", str(out), "--jobs", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    row = {"sorter": sorter, "wall_s": wall, "peak_mb": int(rss.group(1)) / 1024 if rss else -1}
    if proc.returncode != 0 or not (out / "spikes.npz").is_file():
        row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        (out / "error.txt").write_text(proc.stdout + "\n" + tail)
        return row
    row.update(score(folder, out / "spikes.npz"))
    return row


def score(folder: Path, spikes: Path) -> dict:
    import spikeinterface.comparison as sc
    import spikeinterface.core as si

    gt = si.load(folder / "gt_sorting")
    z = np.load(spikes)
    tested = si.NumpySorting.from_samples_and_labels([z["times"]], [z["units"]], FS)
    cmp = sc.compare_sorter_to_ground_truth(gt, tested, exhaustive_gt=True)
    perf = cmp.get_performance()
    return {"units_found": int(len(np.unique(z["units"]))),
            "well_detected": int((perf["accuracy"] >= 0.8).sum()),
            "gt_units": int(len(perf)),
            "accuracy": float(perf["accuracy"].mean()),
            "precision": float(perf["precision"].mean()),
            "recall": float(perf["recall"].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--sorters", default="sweepsort," + ",".join(PEERS))
    ap.add_argument("--root", default="/tmp/sweepsort-bench")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0,
                    help="ground-truth seed (0: the cases in docs/sorting.md; others: held out)")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        run_one(args.run, Path(args.folder), Path(args.out), args.jobs)
        return
    root = Path(args.root)
    rows = []
    # earlier rows of other (case, sorter) pairs are kept, so peers run once and sweepsort
    # can be re-measured alone (--sorters sweepsort) with the table still side by side
    old = json.loads((root / "results.json").read_text()) if (root / "results.json").is_file() \
        else []
    for case in args.cases.split(","):
        folder = generate(case, root, args.seed)
        name = label(case, args.seed)
        for sorter in args.sorters.split(","):
            row = {"case": name, **measure(sorter, folder, folder / "out" / sorter,
                                            args.jobs)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    ran = {(r["case"], r["sorter"]) for r in rows}
    rows = [r for r in old if (r["case"], r["sorter"]) not in ran] + rows
    rows.sort(key=lambda r: (r["case"].split("-")[0] not in CASES, r["case"],
                             r["sorter"] != "sweepsort", r["sorter"]))
    print()
    print("| case | sorter | GT units acc>=0.8 | units found | mean acc | precision | recall "
          "| wall s | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['sorter']} | failed: {r['error']} | | | | | "
                  f"{r['wall_s']:.0f} | {r['peak_mb']:.0f} |")
            continue
        print(f"| {r['case']} | {r['sorter']} | {r['well_detected']}/{r['gt_units']} | "
              f"{r['units_found']} | {r['accuracy']:.2f} | {r['precision']:.2f} | "
              f"{r['recall']:.2f} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} |")
    (root / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
