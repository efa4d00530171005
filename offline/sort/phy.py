"""Export a sort to a Phy template-gui folder (phylib's ``TemplateModel`` contract).

Files: ``params.py`` (dat_path, n_channels_dat, dtype, offset, sample_rate, hp_filtered),
``spike_times.npy`` (n,) uint64 recording samples, ``spike_templates.npy`` and
``spike_clusters.npy`` (n,) int32, ``amplitudes.npy`` (n,) float32 (template scale),
``templates.npy`` (U, W, C) float32 µV, ``channel_map.npy`` (C,) int32,
``channel_positions.npy`` (C, 2) float64 µm, ``similar_templates.npy`` (U, U) float32 (cosine
similarity), ``whitening_mat.npy`` / ``whitening_mat_inv.npy`` (C, C): identity (templates in
µV), or for a sort with ``[preprocess] whiten`` its mix (templates in the whitened traces' µV,
Phy unwhitens them with the inverse), ``cluster_group.tsv`` (good / mua from the metrics,
bounded by the sort's ``[quality]`` settings: ``sort.json`` -> ``settings`` -> ``quality``,
the defaults when it has none) and ``cluster_sweepsort.tsv`` (the metrics). Only accepted
spikes (unit >= 0) are exported; cluster id = template index. When upsampled, templates are
decimated back to the recording rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oe_plugin.config import from_table
from offline.sort.metrics import label
from offline.sort.settings import QualitySettings
from offline.sort.sortfile import SortResult, atomic_write, dense_templates


def _save(path: Path, array) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write(path, buf.getvalue())


def dat_description(recording) -> dict:
    """What params.py says about the raw data (Phy reads traces from it if it exists)."""
    fmt = getattr(recording, "format", "")
    path = Path(getattr(recording, "path", ""))
    if fmt == "binary":
        return {"dat_path": str(path / "continuous.dat"), "dtype": "int16", "offset": 0,
                "n_channels_dat": int(recording.n_channels)}
    if fmt == "flat-binary":
        return {"dat_path": str(path), "dtype": str(recording._samples.dtype),
                "offset": int(getattr(recording._samples, "offset", 0)),
                "n_channels_dat": int(recording.n_channels)}
    return {"dat_path": "", "dtype": "int16", "offset": 0,
            "n_channels_dat": int(recording.n_channels)}


def whitening_matrix(arrays: dict, n_channels: int) -> np.ndarray:
    """(C, C) float64 Phy's ``whitening_mat``: ``whitened (n, C) = raw (n, C) @ it``, i.e. the
    transposed mix of a sort that whitened (``whiten_index`` / ``whiten_weight``), else the
    identity."""
    if "whiten_index" not in arrays:
        return np.eye(n_channels, dtype=np.float64)
    from offline.sort.whitening import Whitening

    return Whitening(arrays["whiten_index"], arrays["whiten_weight"]).dense().T


def export_phy(result: SortResult, folder, dat: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a, meta = result.arrays, result.meta
    n_channels = len(a["noise_uv"])
    factor = int(meta.get("upsample_factor", 1))
    pre = int(meta["template_pre_samples"])
    dense = dense_templates(a["templates_uv"], a["template_channels"], n_channels, np.float32)
    dense = dense[:, :, (pre % factor) :: factor]
    templates = np.ascontiguousarray(dense.transpose(0, 2, 1))  # (U, W, C)
    sel = a["spike_unit"] >= 0
    order = np.argsort(a["spike_index"][sel], kind="stable")
    times = a["spike_index"][sel][order].astype(np.uint64)
    units = a["spike_unit"][sel][order].astype(np.int32)
    amps = a["spike_amplitude"][sel][order].astype(np.float32)
    flat = templates.reshape(len(templates), templates.shape[1] * templates.shape[2])
    flat = flat.astype(np.float64)
    norm = np.linalg.norm(flat, axis=1)
    similar = (flat @ flat.T) / np.maximum(np.outer(norm, norm), 1e-12)
    _save(folder / "spike_times.npy", times)
    _save(folder / "spike_templates.npy", units)
    _save(folder / "spike_clusters.npy", units)
    _save(folder / "amplitudes.npy", amps)
    _save(folder / "templates.npy", templates)
    _save(folder / "channel_map.npy", np.arange(n_channels, dtype=np.int32))
    _save(folder / "channel_positions.npy", a["channel_positions_um"].astype(np.float64))
    _save(folder / "similar_templates.npy", similar.astype(np.float32))
    wmat = whitening_matrix(a, n_channels)
    _save(folder / "whitening_mat.npy", wmat)
    _save(folder / "whitening_mat_inv.npy", np.linalg.inv(wmat))
    metrics = meta.get("metrics", [])
    quality = from_table(QualitySettings, (meta.get("settings") or {}).get("quality"),
                         "sort.json settings.quality")
    lines = ["cluster_id\tgroup"] + [f"{m['unit']}\t{label(m, quality)}" for m in metrics]
    atomic_write(folder / "cluster_group.tsv", ("\n".join(lines) + "\n").encode())
    cols = ["n_spikes", "firing_rate_hz", "snr", "isi_violation_ratio", "amplitude_cutoff",
            "presence_ratio", "peak_channel"]
    lines = ["cluster_id\t" + "\t".join(cols)]
    lines += [f"{m['unit']}\t" + "\t".join(f"{m[c]:.6g}" for c in cols) for m in metrics]
    atomic_write(folder / "cluster_sweepsort.tsv", ("\n".join(lines) + "\n").encode())
    dat = dict(dat or {"dat_path": "", "dtype": "int16", "offset": 0,
                       "n_channels_dat": n_channels})
    params = (
        f"dat_path = {dat['dat_path']!r}\n"
        f"n_channels_dat = {int(dat['n_channels_dat'])}\n"
        f"dtype = {dat['dtype']!r}\n"
        f"offset = {int(dat['offset'])}\n"
        f"sample_rate = {float(meta['recording_sample_rate_hz'])!r}\n"
        "hp_filtered = False\n"
    )
    atomic_write(folder / "params.py", params.encode())
    return folder / "params.py"


def read_phy_folder(folder) -> dict:
    """Our own reader of the contract (used when phylib is not installed): params + arrays."""
    folder = Path(folder)
    params: dict = {}
    exec((folder / "params.py").read_text(), {}, params)
    out = {"params": params}
    for name in ("spike_times", "spike_templates", "spike_clusters", "amplitudes", "templates",
                 "channel_map", "channel_positions", "similar_templates"):
        out[name] = np.load(folder / f"{name}.npy", allow_pickle=False)
    groups = (folder / "cluster_group.tsv").read_text().split("\n")[1:]
    out["cluster_group"] = dict(line.split("\t") for line in groups if line)
    return out
