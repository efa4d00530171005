"""A spatially whitened copy of a sorting-grid case, to measure what whitening would give.

Writes ``<root>/<case>-white`` (ground truth, probe and meta copied; ``continuous.dat``
replaced by ``W x`` in the same int16 units, ``W = median(noise) * cov^(-1/2)``), which
``bench_sorting.py``'s scoring or a plain ``sweepsort sort`` then treats like any case. The
noise covariance is either the generator's model (``--covariance model``: ``exp(-d /
noise_decay)`` between contacts, each channel's noise from the median of its band-passed first
20 s) or estimated from the data (``--covariance data``: the band-passed samples further than 1 ms
from any sample above 4 noise units on any channel). A probe, not a pipeline stage: the whole
recording is mixed before motion correction, so drifting cases come out worse (the kriging then
mixes whitened traces); a stage would whiten after the correction.

    .venv/bin/python benchmarks/whitened_copy.py dense64-s6 [--covariance data]
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
from pathlib import Path

import numpy as np
import scipy.signal as ss

FS = 30000.0
CHUNK = 1 << 20


def inverse_sqrt(m: np.ndarray) -> np.ndarray:
    """``m^(-1/2)`` of a symmetric positive-definite matrix."""
    ev, v = np.linalg.eigh(m)
    return v @ np.diag(ev ** -0.5) @ v.T


def contact_positions(folder: Path, n_channels: int) -> np.ndarray:
    """(C, 2) µm, in device channel order, from a grid case's probeinterface file."""
    import probeinterface

    probe = probeinterface.read_probeinterface(folder / "probe.json").probes[0]
    pos = np.zeros((n_channels, 2))
    pos[probe.device_channel_indices] = probe.contact_positions
    return pos


def model_covariance(folder: Path, noise: np.ndarray) -> np.ndarray:
    """(C, C) the generator's spatial noise covariance of a grid case: ``exp(-d / noise_decay)``
    between contacts, scaled by each channel's ``noise``."""
    meta = json.loads((folder / "meta.json").read_text())
    pos = contact_positions(folder, len(noise))
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    return np.exp(-dist / float(meta["params"]["noise_decay"])) * np.outer(noise, noise)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", help="a grid folder name, e.g. dense64-s6")
    ap.add_argument("--root", default="/tmp/sweepsort-bench")
    ap.add_argument("--covariance", choices=("model", "data"), default="model")
    args = ap.parse_args(argv)
    src = Path(args.root) / args.case
    out = Path(args.root) / f"{args.case}-white"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("out"))
    meta = json.loads((src / "meta.json").read_text())
    n_ch = meta["channels"]
    dat = glob.glob(f"{out}/session/**/continuous.dat", recursive=True)[0]
    x = np.fromfile(dat, np.int16).reshape(-1, n_ch)
    sos = ss.butter(3, [300, 6000], "bandpass", fs=FS, output="sos")
    y = ss.sosfilt(sos, x[:int(20 * FS)].astype(np.float32), axis=0)[int(FS):]
    noise = np.median(np.abs(y), axis=0) / 0.6745
    if args.covariance == "model":
        cov = model_covariance(src, noise)
    else:
        near = np.convolve((np.abs(y) > 4 * noise).any(axis=1), np.ones(61), "same") > 0
        cov = np.cov(y[~near].T)
    w = inverse_sqrt(cov) * np.median(noise)
    white = np.empty_like(x)
    for s in range(0, len(x), CHUNK):
        white[s:s + CHUNK] = np.clip(np.rint(x[s:s + CHUNK].astype(np.float64) @ w.T),
                                     -32768, 32767)
    white.tofile(dat)
    print(f"{out}: {x.shape[0]} samples x {n_ch} channels whitened ({args.covariance} "
          f"covariance); sort it with: sweepsort sort {out}/session --probe {out}/probe.json")


if __name__ == "__main__":
    main()
