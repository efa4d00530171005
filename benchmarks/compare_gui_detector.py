"""How our detector compares with the Open Ephys GUI's own Spike Detector on real data.

The bundled recording (../shared/data/openephys-example-0.6.7) holds, in Record Node 105, the
spikes the GUI's Spike Detector found (8 stereotrodes, -50 µV, after its 300-6000 Hz Bandpass
Filter). We run our detector over Record Node 101 (raw) with matching settings
(examples/gui_spike_detector.toml) and report which fraction of the GUI's spikes we also find
within ±0.5 ms on the same stereotrode, and what we add.

    python benchmarks/compare_gui_detector.py [--tolerance-ms 0.5] [--config TOML]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "openephys-example-0.6.7"


def gui_spikes(data_dir: Path, first: int, n_samples: int):
    """The GUI's detections inside the continuous data: (sample_index, electrode) arrays."""
    from offline.legacy_spikes import read_legacy_spikes

    times, electrodes = [], []
    for k in range(1, 9):
        s = read_legacy_spikes(data_dir / "Record Node 105" / f"Stereotrode{k}_example-data.spikes")
        idx = s["sample_numbers"] - first
        keep = (idx >= 0) & (idx < n_samples)
        times.append(idx[keep])
        electrodes.append(np.full(keep.sum(), k - 1))
    t = np.concatenate(times)
    e = np.concatenate(electrodes)
    order = np.argsort(t, kind="stable")
    return t[order], e[order]


def compare(config: Path, tolerance_ms: float = 0.5, data_dir: Path = DATA) -> dict:
    from offline.cli import _load_detection_settings
    from offline.detect import detect_recording
    from offline.recording import open_recording

    rec = open_recording(data_dir, node=101)
    filt, det = _load_detection_settings(str(config))
    peaks, _ = detect_recording(rec, filt, det)
    # the detector cannot decide the last ~0.5 ms; the GUI's first 0.1 s of filter state differs
    skip = int(0.1 * rec.sample_rate_hz)
    end = rec.n_samples - 40
    g_t, g_e = gui_spikes(data_dir, rec.first_sample_number, rec.n_samples)
    gk = (g_t >= skip) & (g_t < end)
    g_t, g_e = g_t[gk], g_e[gk]
    ok = (peaks["sample_index"] >= skip) & (peaks["sample_index"] < end)
    o_t = peaks["sample_index"][ok]
    o_e = peaks["channel_index"][ok] // 2  # stereotrode k holds channels 2k, 2k+1
    tol = int(round(tolerance_ms * 1e-3 * rec.sample_rate_hz))
    counts = match_counts(g_t, g_e, o_t, o_e, tol)
    return {**counts, "tolerance_ms": tolerance_ms,
            "window_s": (end - skip) / rec.sample_rate_hz}


def match_counts(g_t, g_e, o_t, o_e, tol: int) -> dict:
    """Match the GUI's spikes (sample ``g_t``, stereotrode ``g_e``) with ours (``o_t`` sorted,
    ``o_e``): one of ours is *near* a GUI spike when on the same stereotrode within ``tol``
    samples. The counts add up: ``ours == ours_near_gui + ours_not_in_gui`` and
    ``gui_spikes == gui_found_by_ours + gui_missed``. Near-ness is not one-to-one: the other
    channel of the stereotrode, or a second trough, can put two of ours near one GUI spike, so
    ``ours_near_gui`` may exceed ``gui_found_by_ours`` (``gui_with_several_ours`` of them)."""
    found_gui = np.zeros(len(g_t), bool)
    several = np.zeros(len(g_t), bool)
    used_ours = np.zeros(len(o_t), bool)
    for i, (t, e) in enumerate(zip(g_t, g_e, strict=True)):
        lo, hi = np.searchsorted(o_t, t - tol), np.searchsorted(o_t, t + tol, side="right")
        cand = [j for j in range(lo, hi) if o_e[j] == e]
        if cand:
            found_gui[i] = True
            several[i] = len(cand) > 1
            used_ours[cand] = True
    return {
        "gui_spikes": int(len(g_t)),
        "ours": int(len(o_t)),
        "gui_found_by_ours": int(found_gui.sum()),
        "gui_missed": int((~found_gui).sum()),
        "fraction_of_gui_found": float(found_gui.mean()) if len(g_t) else float("nan"),
        "gui_with_several_ours": int(several.sum()),
        "ours_near_gui": int(used_ours.sum()),
        "ours_not_in_gui": int((~used_ours).sum()),
    }


def format_comparison(r: dict) -> str:
    """The printed summary: every count says what it counts, and the sums hold."""
    return (
        f"GUI Spike Detector: {r['gui_spikes']} spikes, ours: {r['ours']}, both counted in the "
        f"compared {r['window_s']:.2f} s (from 0.1 s, where the GUI's filter has settled, to "
        f"1 ms before the end; a replay counts the whole recording).\n"
        f"GUI spikes with one of ours within ±{r['tolerance_ms']} ms on the same stereotrode: "
        f"{r['gui_found_by_ours']} of {r['gui_spikes']} "
        f"({100 * r['fraction_of_gui_found']:.1f} %; {r['gui_missed']} missed).\n"
        f"Ours: {r['ours']} = {r['ours_near_gui']} near a GUI spike + {r['ours_not_in_gui']} "
        f"the GUI does not report; the {r['ours_near_gui']} near ones cover "
        f"{r['gui_found_by_ours']} GUI spikes ({r['gui_with_several_ours']} of them have more "
        f"than one of ours nearby: the stereotrode's other channel or a second trough)."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "gui_spike_detector.toml"))
    ap.add_argument("--tolerance-ms", type=float, default=0.5)
    args = ap.parse_args()
    r = compare(Path(args.config), args.tolerance_ms)
    print(format_comparison(r))


if __name__ == "__main__":
    main()
