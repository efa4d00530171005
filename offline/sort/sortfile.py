"""Writing the sort file: ``sort.npz`` (arrays, no pickle) + ``sort.json`` (everything else).

The format and its reader live in the core, :mod:`oe_plugin.formats.sort_folder` (the online
sorter reads sort folders without importing ``offline``); this module writes it — both files
atomically (temporary file + rename), the JSON last, so that a sort folder whose ``sort.json``
exists is complete — and re-exports the reader's names for the offline package.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from oe_plugin.formats.atomic import atomic_write, umask_mode  # noqa: F401 - re-exported
from oe_plugin.formats.sort_folder import (  # noqa: F401 - the offline package's names for them
    ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    SortFileError,
    SortResult,
    load_sort,
)


def dense_templates(waveforms: np.ndarray, channels: np.ndarray, n_channels: int,
                    dtype=np.float64) -> np.ndarray:
    """(U, C, W) templates on every channel (zero elsewhere) from (U, K, W) rows on
    ``channels`` (U, K) (-1 = unused row)."""
    n_u, n_k, width = waveforms.shape
    out = np.zeros((n_u, n_channels, width), dtype)
    for u in range(n_u):
        for k in range(n_k):
            ch = channels[u, k]
            if 0 <= ch < n_channels:
                out[u, ch] = waveforms[u, k]
    return out


def npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_sort(folder, result: SortResult) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    missing = [k for k in ARRAYS if k not in result.arrays]
    if missing:
        raise SortFileError(f"sort result lacks arrays: {', '.join(missing)}")
    for k, v in result.arrays.items():
        if np.asarray(v).dtype == object:
            raise SortFileError(f"array {k!r} has dtype object (not storable without pickle)")
    meta = dict(result.meta, format=FORMAT, format_version=FORMAT_VERSION)
    if "metrics" in meta:
        meta["metrics"] = [{k: None if isinstance(v, float) and v != v else v
                            for k, v in m.items()} for m in meta["metrics"]]
    json_path = folder / "sort.json"
    if json_path.exists():
        json_path.unlink()  # incomplete until the new JSON lands
    atomic_write(folder / "sort.npz", npz_bytes(result.arrays))
    atomic_write(json_path, json.dumps(meta, indent=2, default=_plain).encode())
    return json_path


def _plain(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
