"""The probe-motion figure of a sort: the detected peaks by depth over time, and the estimate.

Used by ``sweepsort report`` (population page) and ``sweepsort info SORT_DIR --motion-png``.
Reads only the motion arrays of ``sort.npz`` (``motion_time_s``, ``motion_depth_um``,
``motion_um``, ``peak_time_s``, ``peak_depth_um``, ``peak_amplitude``; see
:mod:`offline.sort.pipeline`), so it works without loading the spikes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MOTION_ARRAYS = ("motion_time_s", "motion_depth_um", "motion_um", "peak_time_s",
                 "peak_depth_um", "peak_amplitude")


def load_motion_arrays(sort_dir) -> dict | None:
    """The motion arrays of a sort folder, or None when its sort has no motion estimate."""
    path = Path(sort_dir) / "sort.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if "motion_um" not in z.files:
            return None
        return {k: z[k] for k in MOTION_ARRAYS if k in z.files}


def motion_summary(arrays: dict) -> str:
    """One line: windows, time bins, peak-to-peak displacement."""
    m = arrays["motion_um"]
    ptp = float((m.max(axis=0) - m.min(axis=0)).max()) if m.size else 0.0
    kind = "rigid" if m.shape[1] == 1 else f"non-rigid, {m.shape[1]} depth windows"
    return (f"motion: {kind}, {m.shape[0]} time bins of "
            f"{np.diff(arrays['motion_time_s'][:2])[0] if m.shape[0] > 1 else 0:.1f} s, "
            f"{ptp:.1f} µm peak to peak")


def plot_motion(arrays: dict, ax=None, max_peaks: int = 100_000):
    """Peaks (time, depth; darker = larger) with the estimate drawn at each window's depth
    (depth + displacement: where that window's units appear over time)."""
    from offline.analysis._plot import new_axes

    ax = new_axes(ax, figsize=(7, 4))
    t, y, a = arrays["peak_time_s"], arrays["peak_depth_um"], arrays["peak_amplitude"]
    if len(t) > max_peaks:
        pick = np.random.default_rng(0).choice(len(t), max_peaks, replace=False)
        t, y, a = t[pick], y[pick], a[pick]
    if len(t):
        shade = np.clip(np.log(np.maximum(a, 1e-3)) / np.log(max(np.percentile(a, 99), 2)),
                        0, 1)
        ax.scatter(t, y, s=0.5, c=shade, cmap="Greys", vmin=0, vmax=1.2, linewidths=0,
                   rasterized=True)
    mt, md, mu = arrays["motion_time_s"], arrays["motion_depth_um"], arrays["motion_um"]
    for k, depth in enumerate(md):
        ax.plot(mt, depth + mu[:, k], color="C3", lw=1.2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("depth (µm)")
    ax.set_title(motion_summary(arrays), fontsize=8)
    return ax
