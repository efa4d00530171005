"""How well two nearby ground-truth cells can be told apart by a template fit, in three metrics.

A question for the matcher, asked on the sorting grid's generated recordings (their folders from
``bench_sorting.py --generate-only``): given both cells' true spike times, their templates (the
median of their windows, 0.6 ms before to 1.2 ms after, on the channels within ``--radius-um``
of the pair's midpoint) and a fit with a scale clipped to [0.75, 1.33] as the sorter's defaults,
what fraction of each cell's spikes does the *other* template fit better?

* ``scaled``: least squares on traces divided by each channel's noise (what sweepsort does);
* ``spatial``: least squares after spatial whitening with the generator's noise model
  (``exp(-d / noise_decay)`` between channels, each channel's own noise level);
* ``spatio-temporal``: the same, also whitened in time with the band-pass filter's
  autocorrelation (regularised by 1e-3).

It reads the first ``--seconds`` of the recording, filtered 300-6000 Hz forwards and backwards
(scipy). Usage::

    .venv/bin/python benchmarks/pair_separability.py dense64-s6 70,73 [--root /tmp/sweepsort-bench]
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
import scipy.signal as ss
from whitened_copy import contact_positions, inverse_sqrt, model_covariance

FS = 30000.0
UV_PER_BIT = 0.195
PRE, POST = 18, 36
AMP_MIN, AMP_MAX = 0.75, 1.33


def _cross_fraction(w_own, t_own, t_other, space, time) -> float:
    """Fraction of windows ``w_own`` (n, L, C) that ``t_other`` fits better than ``t_own``."""
    def fit(t):
        a = t @ space.T
        w = w_own @ space.T
        if time is not None:
            a = time @ a
            w = np.einsum("ij,njc->nic", time, w)
        scale = np.clip((w * a).sum((1, 2)) / (a * a).sum(), AMP_MIN, AMP_MAX)
        return ((w - scale[:, None, None] * a) ** 2).sum((1, 2))
    return float((fit(t_other) < fit(t_own)).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", help="a grid folder name, e.g. dense64-s6")
    ap.add_argument("pairs", nargs="+", help="ground-truth unit ids, e.g. 70,73")
    ap.add_argument("--root", default="/tmp/sweepsort-bench")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--radius-um", type=float, default=60.0)
    args = ap.parse_args(argv)
    import spikeinterface.core as si

    folder = f"{args.root}/{args.case}"
    meta = json.load(open(f"{folder}/meta.json"))
    n_ch = meta["channels"]
    dat = glob.glob(f"{folder}/session/**/continuous.dat", recursive=True)[0]
    raw = np.memmap(dat, np.int16, "r").reshape(-1, n_ch)
    n = min(int(args.seconds * FS), raw.shape[0])
    sos = ss.butter(3, [300, 6000], "bandpass", fs=FS, output="sos")
    y = ss.sosfiltfilt(sos, raw[:n].astype(np.float32) * UV_PER_BIT, axis=0).astype(np.float32)
    noise = np.median(np.abs(y), axis=0) / 0.6745
    pos = contact_positions(Path(folder), n_ch)
    cov = model_covariance(Path(folder), noise)
    gt = si.load(f"{folder}/gt_sorting")
    loc = np.load(f"{folder}/gt_sorting/properties/gt_unit_locations.npy")[:, :2]
    ids = list(gt.unit_ids)
    width = PRE + POST
    impulse = np.zeros(4001)
    impulse[2000] = 1.0
    h = ss.sosfiltfilt(sos, impulse)
    r = np.array([np.dot(h[:len(h) - k], h[k:]) for k in range(width)])
    r /= r[0]
    time = inverse_sqrt(r[np.abs(np.subtract.outer(np.arange(width), np.arange(width)))]
                         + 1e-3 * np.eye(width))
    for pair in args.pairs:
        a, b = (int(v) for v in pair.split(","))
        ia, ib = ids.index(a), ids.index(b)
        chans = np.flatnonzero(np.linalg.norm(pos - (loc[ia] + loc[ib]) / 2, axis=1)
                               <= args.radius_um)

        def windows(unit, chans):
            t = gt.get_unit_spike_train(unit)
            t = t[(t > PRE) & (t < n - POST)]
            return np.stack([y[s - PRE:s + POST][:, chans] for s in t])

        wa, wb = windows(a, chans), windows(b, chans)
        ta, tb = np.median(wa, 0), np.median(wb, 0)
        spatial = inverse_sqrt(cov[np.ix_(chans, chans)])
        metrics = (("scaled", np.diag(1.0 / noise[chans]), None), ("spatial", spatial, None),
                   ("spatio-temporal", spatial, time))
        parts = [f"{name} {_cross_fraction(wa, ta, tb, m, t) * 100:.1f} % / "
                 f"{_cross_fraction(wb, tb, ta, m, t) * 100:.1f} %" for name, m, t in metrics]
        print(f"{args.case} gt{a} ({len(wa)} spikes) vs gt{b} ({len(wb)}), {len(chans)} channels, "
              f"{np.linalg.norm(loc[ia] - loc[ib]):.1f} µm apart; spikes the other template "
              f"fits better: " + "; ".join(parts))


if __name__ == "__main__":
    main()
