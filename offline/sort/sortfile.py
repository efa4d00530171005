"""The sort file: ``sort.npz`` (arrays, no pickle) + ``sort.json`` (everything else).

Self-describing and safe: numeric arrays only (read back with ``allow_pickle=False``), and a
JSON document with the format name and version, the software version, the input recording's
identity, the rates, all settings, the per-unit metrics and the run's timings. Both files are
written atomically (temporary file + rename), the JSON last: a sort folder whose ``sort.json``
exists is complete. ``sort.json`` is strict JSON: a metric that is undefined for a unit (NaN, e.g.
``amplitude_cutoff`` below 500 spikes) is stored as ``null`` and read back as NaN.

Arrays (n = spikes, U = units, K = template rows, W = template samples):

================================  =====================================================
spike_index                       (n,) int64 recording sample index (0-based in the stream)
spike_index_sorting               (n,) int64 sample index at the sorting rate (upsampled)
spike_unit                        (n,) int32 unit, -1 = unsorted (no template accepted it)
spike_amplitude                   (n,) float32 fitted template scale (1 = template size)
spike_amplitude_uv                (n,) float32 peak µV (scale x template peak)
spike_error                       (n,) float32 match error (noise variances per sample)
spike_channel                     (n,) int32 detection peak channel
templates_uv                      (U, K, W) float32 µV waveforms, rows = template_channels
template_channels                 (U, K) int32, -1 unused
template_peak_channel             (U,) int32
template_threshold                (U,) float32 acceptance threshold on the error
extra_templates_uv                (E, K, W) float32 µV, a unit's further matching templates
extra_template_channels           (E, K) int32 (optional; absent or E = 0: one per unit)
extra_template_threshold          (E,) float32
extra_template_unit               (E,) int32 the unit each belongs to (a bursting cell's
                                  scaled copies, :mod:`offline.sort.burst_merge`)
noise_uv                          (C,) float32 per-channel noise used for scaling
channel_positions_um              (C, 2) float64
================================  =====================================================
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "sweepsort-sort"
FORMAT_VERSION = 1
ARRAYS = ("spike_index", "spike_index_sorting", "spike_unit", "spike_amplitude",
          "spike_amplitude_uv", "spike_error", "spike_channel", "templates_uv",
          "template_channels", "template_peak_channel", "template_threshold", "noise_uv",
          "channel_positions_um")


class SortFileError(ValueError):
    """A sort folder is missing, incomplete or not a sweepsort sort."""


@dataclass
class SortResult:
    arrays: dict
    meta: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def n_units(self) -> int:
        return int(self.arrays["templates_uv"].shape[0])

    def spike_times_s(self) -> np.ndarray:
        return self.arrays["spike_index"] / float(self.meta["recording_sample_rate_hz"])


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


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` filtered by this process's umask: what ``open()`` would give a new file."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mode & ~mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename. The file gets the mode
    a plain ``open()`` would give it (0o666 & ~umask), not mkstemp's 0o600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), umask_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def load_sort(folder) -> SortResult:
    folder = Path(folder)
    json_path, npz_path = folder / "sort.json", folder / "sort.npz"
    if not json_path.is_file() or not npz_path.is_file():
        raise SortFileError(f"{folder}: not a complete sort folder (sort.json + sort.npz)")
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise SortFileError(f"{json_path}: not valid JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise SortFileError(f"{json_path}: not a {FORMAT} file")
    if isinstance(meta.get("metrics"), list):  # null = a metric undefined for the unit (NaN)
        meta["metrics"] = [{k: float("nan") if v is None else v for k, v in m.items()}
                           if isinstance(m, dict) else m for m in meta["metrics"]]
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise SortFileError(f"{json_path}: format version {meta['format_version']} is newer "
                            f"than this sweepsort reads ({FORMAT_VERSION})")
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise SortFileError(f"{npz_path}: unreadable ({exc})") from None
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise SortFileError(f"{npz_path}: missing arrays {', '.join(missing)}")
    return SortResult(arrays, meta)


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
