"""Reading a sort folder: ``sort.npz`` (arrays, no pickle) + ``sort.json`` (everything else).

Self-describing and safe: numeric arrays only (read back with ``allow_pickle=False``), and a
JSON document with the format name and version, the software version, the input recording's
identity, the rates, all settings, the per-unit metrics and the run's timings. Both files are
written atomically by :func:`offline.sort.sortfile.save_sort` (temporary file + rename), the
JSON last: a sort folder whose ``sort.json`` exists is complete. ``sort.json`` is strict JSON: a
metric that is undefined for a unit (NaN, e.g. ``amplitude_cutoff`` below 500 spikes) is stored
as ``null`` and read back as NaN. This module reads it with numpy and json alone, so that the
online modules need nothing from ``offline``.

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

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "sweepsort-sort"
FORMAT_VERSION = 1
ARRAYS = ("spike_index", "spike_index_sorting", "spike_unit", "spike_amplitude",
          "spike_amplitude_uv", "spike_error", "spike_channel", "templates_uv",
          "template_channels", "template_peak_channel", "template_threshold", "noise_uv",
          "channel_positions_um")
EXTRA_ARRAYS = ("extra_templates_uv", "extra_template_channels", "extra_template_threshold",
                "extra_template_unit")


class SortFileError(ValueError):
    """A sort folder is missing, incomplete or not a sweepsort sort."""


@dataclass
class SortResult:
    """A sort: ``arrays`` (the table above, by name) and ``meta`` (``sort.json``)."""

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


@dataclass(frozen=True)
class MatchingTemplates:
    """Every template the matcher uses: the units' own, then their extra ones.

    templates_uv : (T, K, W) float32 µV; channels : (T, K) int32 (-1 unused);
    threshold : (T,) float32; unit : (T,) int32 the unit each template labels (0..U-1).
    """

    templates_uv: np.ndarray
    channels: np.ndarray
    threshold: np.ndarray
    unit: np.ndarray


def load_sort(folder) -> SortResult:
    """Read ``folder``'s ``sort.json`` and ``sort.npz``; a :class:`SortFileError` names the file
    and what is wrong (missing, not JSON, another format, a newer version, missing arrays)."""
    folder = Path(folder)
    json_path, npz_path = folder / "sort.json", folder / "sort.npz"
    if not json_path.is_file() or not npz_path.is_file():
        raise SortFileError(f"{folder}: not a complete sort folder (sort.json + sort.npz)")
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise SortFileError(f"{json_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SortFileError(f"{json_path}: not a {FORMAT} file")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise SortFileError(f"{json_path}: format version {meta['format_version']} is newer "
                            f"than this sweepsort reads ({FORMAT_VERSION})")
    if isinstance(meta.get("metrics"), list):  # null = a metric undefined for the unit (NaN)
        meta["metrics"] = [{k: float("nan") if v is None else v for k, v in m.items()}
                           if isinstance(m, dict) else m for m in meta["metrics"]]
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise SortFileError(f"{npz_path}: unreadable ({exc})") from None
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise SortFileError(f"{npz_path}: missing arrays {', '.join(missing)}")
    return SortResult(arrays, meta)


def matching_templates(arrays: dict, where: str = "sort folder") -> MatchingTemplates:
    """The units' templates followed by their extra ones (``extra_templates_uv`` ...), checked
    against each other; a :class:`SortFileError` starting with ``where`` says what disagrees."""
    tpl_uv = np.asarray(arrays["templates_uv"], np.float32)
    chans = np.asarray(arrays["template_channels"], np.int32)
    thr = np.asarray(arrays["template_threshold"], np.float32)
    n_units = int(tpl_uv.shape[0]) if tpl_uv.ndim == 3 else 0
    unit = np.arange(n_units, dtype=np.int32)
    if "extra_templates_uv" in arrays and len(arrays["extra_templates_uv"]):
        e_uv, e_chans, e_thr, e_unit = (
            np.asarray(arrays[k], d) for k, d in zip(
                EXTRA_ARRAYS, (np.float32, np.int32, np.float32, np.int32),
                strict=True))
        if (tpl_uv.ndim != 3 or e_uv.shape[1:] != tpl_uv.shape[1:]
                or e_chans.shape != e_uv.shape[:2] or e_thr.shape != e_uv.shape[:1]
                or e_unit.shape != e_uv.shape[:1] or e_unit.min() < 0
                or e_unit.max() >= n_units):
            raise SortFileError(f"{where}: extra templates disagree with the units "
                                f"(extra_templates_uv {e_uv.shape}, extra_template_channels "
                                f"{e_chans.shape}, extra_template_unit {e_unit.shape}, "
                                f"{n_units} units)")
        tpl_uv = np.concatenate([tpl_uv, e_uv])
        chans = np.concatenate([chans, e_chans])
        thr = np.concatenate([thr, e_thr])
        unit = np.concatenate([unit, e_unit])
    if tpl_uv.ndim != 3 or chans.shape != tpl_uv.shape[:2] or thr.shape != tpl_uv.shape[:1]:
        raise SortFileError(f"{where}: template arrays disagree (templates_uv {tpl_uv.shape}, "
                            f"template_channels {chans.shape}, template_threshold {thr.shape})")
    return MatchingTemplates(tpl_uv, chans, thr, unit)
