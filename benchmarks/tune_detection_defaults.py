"""The measurements behind the detection defaults (docs/detection.md).

Synthetic 30 kHz data (tests/synth.py: band-limited noise of 10 µV RMS after the band-pass,
biphasic spikes on a 50 µm-pitch line of 8 channels with 40 µm spatial decay, ~8 Hz per unit)
at several SNRs; recall and precision (±0.5 ms, on the unit's channel or a neighbour within
50 µm) for each threshold multiplier, detector and lockout.

    python benchmarks/tune_detection_defaults.py [--duration 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synth import make_recording, match  # noqa: E402

from oe_plugin.kernels.detector import SpikeDetector  # noqa: E402
from oe_plugin.probe import Probe, neighbour_lists  # noqa: E402
from oe_plugin.settings import DetectSettings  # noqa: E402

FS = 30000.0


def run(data, truth, probe, **kw):
    det = SpikeDetector(
        data.shape[0], FS, None, DetectSettings(**kw), neighbour_lists(probe, 175.0), 30000
    )
    ev = np.concatenate(
        [
            det.process(np.ascontiguousarray(data[:, a : a + 30000]))
            for a in range(0, data.shape[1], 30000)
        ]
    )
    pos = probe.positions_um

    def near(c_event, c_true):
        return np.linalg.norm(pos[c_event] - pos[c_true]) <= 50.0

    return match(ev["sample_index"], ev["channel_index"], truth, int(0.5e-3 * FS), near)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0)
    args = ap.parse_args()
    n = 8
    probe = Probe("line8", np.c_[np.zeros(n), np.arange(n) * 50.0], np.zeros(n, int))
    print("snr  method       thr_mad lockout_us  recall precision")
    for snr in (4.0, 6.0, 8.0):
        data, truth = make_recording(
            n_channels=n, duration_s=args.duration, snr=snr, positions_um=probe.positions_um, seed=1
        )
        for method in ("bipolar", "multiphasic"):
            for thr in (3.5, 4.0, 4.5, 5.0, 5.5, 6.0):
                r, p = run(data, truth, probe, method=method, threshold_mad=thr)
                print(f"{snr:3.0f}  {method:12s} {thr:7.1f} {300:10.0f}  {r:6.3f} {p:9.3f}")
        for lock in (150.0, 300.0, 600.0, 1000.0):
            r, p = run(data, truth, probe, threshold_mad=4.5, lockout_us=lock)
            print(f"{snr:3.0f}  {'bipolar':12s} {4.5:7.1f} {lock:10.0f}  {r:6.3f} {p:9.3f}")


if __name__ == "__main__":
    main()
