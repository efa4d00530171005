"""NWB Units export of a sort (the ``nwb`` extra: ``pip install sweepsort[nwb]``).

:func:`export_nwb` writes a sort (a :class:`~offline.sort.sortfile.SortResult` or a sort folder)
as an NWB 2 file with pynwb; ``sweepsort export-nwb`` (:mod:`offline.nwb_export`) builds on the
same pieces and adds the recording's start time and the stimulus:

* :func:`add_electrodes`: a ``Device`` and an ``ElectrodeGroup`` named after the probe and one
  electrodes-table row per recorded channel (``rel_x``/``rel_y`` = the probe positions in µm,
  ``location`` as given, ``noise_uv``);
* :func:`add_units`: the ``Units`` table: per unit (a ``templates_uv`` row; a unit's extra
  templates, ``extra_templates_*``, are not exported) its ``spike_times`` (seconds from the
  first sample of the sorted stream: ``spike_index / recording_sample_rate_hz`` plus
  ``time_offset_s``), ``electrodes`` (the template's channels), ``waveform_mean`` (the template
  in volts, samples x channels over *all* channels, zeros off the template, sampled at
  ``sorting_sample_rate_hz``), ``obs_intervals`` (the whole recording), ``peak_channel``,
  ``match_threshold`` and every per-unit metric of sort.json as a column (firing_rate_hz, snr,
  isi_violation_ratio, isi_violation_fraction, amplitude_cutoff, presence_ratio, n_spikes, ...);
* the sort's JSON metadata (settings, versions, recording identity) in ``notes``.

Unsorted events (unit -1) are not exported.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import uuid
from pathlib import Path

import numpy as np

from offline.sort.sortfile import SortResult, load_sort, umask_mode

METRIC_DESCRIPTIONS = {
    "firing_rate_hz": "mean firing rate over the recording (Hz)",
    "snr": "template peak / noise on the peak channel",
    "isi_violation_ratio": "ISI violation ratio (Hill et al. 2011)",
    "isi_violation_fraction": "fraction of ISIs < 1.5 ms",
    "amplitude_cutoff": "estimated fraction of spikes below the detection threshold",
    "presence_ratio": "fraction of time bins with spikes",
    "n_spikes": "spikes in the unit",
    "peak_channel": "channel of the template's peak (0-based electrode row)",
}


def _pynwb():
    try:
        import pynwb
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("NWB export needs pynwb: pip install 'sweepsort[nwb]'") from exc
    return pynwb


def new_nwbfile(meta: dict, session_start_time: _dt.datetime, session_description: str,
                identifier: str | None = None):
    """An empty ``NWBFile`` carrying the sort's metadata (without its metrics) in ``notes``."""
    pynwb = _pynwb()
    return pynwb.NWBFile(session_description=session_description,
                         identifier=identifier or str(uuid.uuid4()),
                         session_start_time=session_start_time,
                         notes=json.dumps({k: v for k, v in meta.items() if k != "metrics"},
                                          default=str))


def add_electrodes(nwb, res: SortResult, location: str = "unknown") -> None:
    """One electrodes row per channel of the sort: ``rel_x``/``rel_y`` (µm on the probe) from
    ``channel_positions_um`` (C, 2), ``noise_uv`` (C,), one group named after the probe."""
    a, meta = res.arrays, res.meta
    n_ch = int(meta["n_channels"])
    probe = str(meta.get("probe") or "probe")
    device = nwb.create_device(name=probe, description=f"probe layout {probe!r} "
                               f"({meta.get('probe_origin') or 'origin not recorded'})")
    group = nwb.create_electrode_group(name=probe, description=f"the {n_ch} sorted channels",
                                       location=location, device=device)
    nwb.add_electrode_column(name="noise_uv", description="noise used by the sorter (µV)")
    pos_um = np.asarray(a["channel_positions_um"], np.float64).reshape(n_ch, -1)
    for c in range(n_ch):
        nwb.add_electrode(group=group, location=location, rel_x=float(pos_um[c, 0]),
                          rel_y=float(pos_um[c, 1]) if pos_um.shape[1] > 1 else 0.0,
                          noise_uv=float(a["noise_uv"][c]))


def _metric_columns(metrics: list[dict]) -> list[str]:
    """Metric names present in any unit's dict (except ``unit``), first-seen order."""
    names: list[str] = []
    for m in metrics:
        for k in m:
            if k != "unit" and k not in names:
                names.append(k)
    return names


def _metric_value(value, numeric: bool):
    if numeric:
        return float("nan") if value is None else float(value)
    return "" if value is None else str(value)


def add_units(nwb, res: SortResult, time_offset_s: float = 0.0) -> None:
    """The Units table (see the module docstring); spike times in s, ``spike_index / fs +
    time_offset_s``; ``waveform_mean`` (U, W, C) in volts. A sort without units adds no
    table (HDF5 cannot type its empty columns)."""
    from pynwb.misc import Units

    if res.n_units == 0:
        return
    a, meta = res.arrays, res.meta
    fs = float(meta["recording_sample_rate_hz"])
    n_ch = int(meta["n_channels"])
    n_units = res.n_units
    by_unit = {int(m["unit"]): m for m in meta.get("metrics") or [] if "unit" in m}
    names = _metric_columns(list(by_unit.values()))
    numeric = {k: all(isinstance(m.get(k), (int, float, type(None))) and
                      not isinstance(m.get(k), bool) for m in by_unit.values()) for k in names}
    nwb.units = Units(name="units", description="units of the sweepsort offline sort",
                      waveform_rate=float(meta.get("sorting_sample_rate_hz", fs)),
                      waveform_unit="volts", resolution=1.0 / fs)
    for k in names:
        nwb.add_unit_column(name=k, description=METRIC_DESCRIPTIONS.get(k, f"sweepsort metric {k}"))
    if "peak_channel" not in names:
        nwb.add_unit_column(name="peak_channel", description=METRIC_DESCRIPTIONS["peak_channel"])
    nwb.add_unit_column(name="match_threshold",
                        description="acceptance threshold on the match error (noise variances)")
    unit = a["spike_unit"]
    t_s = a["spike_index"] / fs + time_offset_s
    duration_s = float(meta["n_samples"]) / fs
    tpl_uv, chans = a["templates_uv"], a["template_channels"]
    for u in range(n_units):
        rows = chans[u] >= 0
        dense_v = np.zeros((tpl_uv.shape[2], n_ch), np.float64)
        dense_v[:, chans[u][rows]] = tpl_uv[u][rows].T * 1e-6
        m = by_unit.get(u, {})
        cols = {k: _metric_value(m.get(k), numeric[k]) for k in names}
        if "peak_channel" not in names:
            cols["peak_channel"] = int(a["template_peak_channel"][u])
        nwb.add_unit(spike_times=np.sort(t_s[unit == u]),
                     electrodes=sorted(int(c) for c in chans[u][rows]),
                     waveform_mean=dense_v,
                     obs_intervals=[[time_offset_s, time_offset_s + duration_s]],
                     match_threshold=float(a["template_threshold"][u]), **cols)


def write_nwb_atomic(nwb, path, overwrite: bool = False) -> Path:
    """Write ``nwb`` to ``path`` through a temporary file in the same folder and a rename; an
    existing ``path`` is kept (FileExistsError) unless ``overwrite``."""
    pynwb = _pynwb()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.nwb", dir=path.parent)
    os.close(fd)
    try:
        with pynwb.NWBHDF5IO(tmp, "w") as io:
            io.write(nwb)
        os.chmod(tmp, umask_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} appeared while writing (pass --overwrite)")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def export_nwb(sort, path, session_description: str = "sweepsort offline sort",
               session_start_time: _dt.datetime | None = None, identifier: str | None = None,
               location: str = "unknown", time_offset_s: float = 0.0,
               overwrite: bool = True) -> Path:
    """Write ``sort`` (SortResult or sort folder) to the NWB file ``path``; returns the path.

    ``session_start_time`` defaults to the sort's creation time (UTC); pass the recording's
    real start time when known (``sweepsort export-nwb`` does). ``time_offset_s`` is added to
    every spike time (e.g. the stream's first timestamp, to share a time base with other NWB
    data).
    """
    res = sort if isinstance(sort, SortResult) else load_sort(sort)
    start = session_start_time or _dt.datetime.now(_dt.timezone.utc)
    nwb = new_nwbfile(res.meta, start, session_description, identifier)
    add_electrodes(nwb, res, location)
    add_units(nwb, res, time_offset_s)
    return write_nwb_atomic(nwb, path, overwrite=overwrite)
