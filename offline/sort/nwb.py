"""NWB Units export of a sort (the ``nwb`` extra: ``pip install sweepsort[nwb]``).

:func:`export_nwb` writes a sort (a :class:`~offline.sort.sortfile.SortResult` or a sort folder)
as an NWB 2 file with pynwb:

* an ``ElectrodeGroup`` and one electrodes-table row per recorded channel (``rel_x``/``rel_y``
  = the probe positions in µm, ``location`` as given);
* the ``Units`` table: per unit its ``spike_times`` (seconds from the first sample of the
  sorted stream: ``spike_index / recording_sample_rate_hz`` plus ``time_offset_s``),
  ``electrodes`` (the template's channels), ``waveform_mean`` (the template in µV,
  samples x channels over *all* channels, zeros off the template), ``obs_intervals`` (the whole
  recording) and the sweepsort metrics as extra columns (firing_rate_hz, snr,
  isi_violation_ratio, isi_violation_fraction, amplitude_cutoff, presence_ratio,
  peak_channel, n_spikes, match threshold);
* the sort's JSON metadata (settings, versions, recording identity) in ``notes``.

Unsorted events (unit -1) are not exported.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from offline.sort.sortfile import SortResult, load_sort

_METRIC_COLUMNS = (
    ("firing_rate_hz", "mean firing rate over the recording (Hz)"),
    ("snr", "template peak / noise on the peak channel"),
    ("isi_violation_ratio", "ISI violation ratio (Hill et al. 2011)"),
    ("isi_violation_fraction", "fraction of ISIs < 1.5 ms"),
    ("amplitude_cutoff", "estimated fraction of spikes below the detection threshold"),
    ("presence_ratio", "fraction of time bins with spikes"),
)


def export_nwb(sort, path, session_description: str = "sweepsort offline sort",
               session_start_time: _dt.datetime | None = None, identifier: str | None = None,
               location: str = "unknown", time_offset_s: float = 0.0) -> Path:
    """Write ``sort`` (SortResult or sort folder) to the NWB file ``path``; returns the path.

    ``session_start_time`` defaults to the sort's creation time (UTC); pass the recording's
    real start time when known. ``time_offset_s`` is added to every spike time (e.g. the
    stream's first timestamp, to share a time base with other NWB data).
    """
    try:
        from pynwb import NWBHDF5IO, NWBFile
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("NWB export needs pynwb: pip install 'sweepsort[nwb]'") from exc
    res = sort if isinstance(sort, SortResult) else load_sort(sort)
    a, meta = res.arrays, res.meta
    fs = float(meta["recording_sample_rate_hz"])
    n_ch = int(meta["n_channels"])
    start = session_start_time or _dt.datetime.now(_dt.timezone.utc)
    nwb = NWBFile(session_description=session_description,
                  identifier=identifier or f"sweepsort-{start.strftime('%Y%m%dT%H%M%S')}",
                  session_start_time=start,
                  notes=json.dumps({k: v for k, v in meta.items() if k != "metrics"},
                                   default=str))
    device = nwb.create_device(name="probe", description=str(meta.get("probe", "")))
    group = nwb.create_electrode_group(name="probe", description="sorted channels",
                                       location=location, device=device)
    nwb.add_electrode_column(name="rel_x", description="x position on the probe (µm)")
    nwb.add_electrode_column(name="rel_y", description="y position on the probe (µm)")
    nwb.add_electrode_column(name="noise_uv", description="noise used by the sorter (µV)")
    pos = np.asarray(a["channel_positions_um"], np.float64).reshape(n_ch, -1)
    for c in range(n_ch):
        nwb.add_electrode(group=group, location=location, rel_x=float(pos[c, 0]),
                          rel_y=float(pos[c, 1]) if pos.shape[1] > 1 else 0.0,
                          noise_uv=float(a["noise_uv"][c]))
    for name, desc in _METRIC_COLUMNS:
        nwb.add_unit_column(name=name, description=desc)
    nwb.add_unit_column(name="peak_channel", description="channel of the template's peak")
    nwb.add_unit_column(name="n_spikes", description="spikes in the unit")
    nwb.add_unit_column(name="match_threshold",
                        description="acceptance threshold on the match error (noise variances)")
    unit = a["spike_unit"]
    t = a["spike_index"] / fs + time_offset_s
    duration = float(meta["n_samples"]) / fs
    metrics = meta.get("metrics") or [{} for _ in range(int(meta["n_units"]))]
    tpl, chans = a["templates_uv"], a["template_channels"]
    for u in range(int(meta["n_units"])):
        rows = chans[u] >= 0
        dense = np.zeros((tpl.shape[2], n_ch), np.float32)
        dense[:, chans[u][rows]] = tpl[u][rows].T
        m = metrics[u] if u < len(metrics) else {}
        nwb.add_unit(spike_times=np.sort(t[unit == u]),
                     electrodes=sorted(int(c) for c in chans[u][rows]),
                     waveform_mean=dense, obs_intervals=[[time_offset_s,
                                                          time_offset_s + duration]],
                     peak_channel=int(a["template_peak_channel"][u]),
                     n_spikes=int((unit == u).sum()),
                     match_threshold=float(a["template_threshold"][u]),
                     **{k: float(m.get(k, np.nan)) for k, _ in _METRIC_COLUMNS})
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
