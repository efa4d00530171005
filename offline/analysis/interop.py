"""pynapple interop (the ``pynapple`` extra: ``pip install sweepsort[pynapple]``).

- :func:`to_tsgroup`: a sort's spike trains -> ``pynapple.TsGroup`` (times in s on the
  recording clock, ``sample_number / sample_rate_hz``, the clock of every analysis here), with
  per-unit metadata: ``peak_channel``, ``n_spikes``, ``x_um`` / ``y_um`` (the peak channel's
  position, when known) and the sort's quality metrics (``firing_rate_hz``, ``snr``, Phy's
  ``group``, ...); pynapple adds ``rate`` (spikes / time support). The group's index is the unit
  id.
- :func:`to_intervalset`: sweep presentations -> ``pynapple.IntervalSet`` (one interval per
  presentation, in time order) with metadata ``sweep_index`` (65535: blank), ``blank`` and every
  sweep-table parameter (``ori_deg``, ``contrast``, ...; NaN / None on blanks).

Interval edges. Our windows are half-open, ``[onset, offset)`` (a spike at ``offset`` belongs to
the next presentation); pynapple's intervals are closed (``restrict`` and ``count`` keep a spike
at ``end``) and must not overlap or touch. Spike times are sample numbers / fs, so when the sample
rate is given both edges are moved half a sample earlier: every edge then lies between two
samples, the closed pynapple interval holds exactly the spikes of our half-open window, and each
duration is unchanged. Presentations that touch (the next onset at this offset) or overlap (a
TTL edge one sample early puts the next onset before this offset) have their end clipped to just
before the next start (``min(1 us, a quarter sample)`` earlier, inside the gap between samples): the
clipped presentation loses the overlapping samples, which our own windows count in both.

pynapple is imported when a function is called, never at module import.
"""

from __future__ import annotations

import numpy as np

from offline.analysis.presentations import Presentations

_HINT = "pip install 'sweepsort[pynapple]'"


def import_pynapple():
    """``import pynapple`` with an error that names the extra."""
    try:
        import pynapple
    except ImportError as exc:
        raise ImportError(f"pynapple export needs pynapple: {_HINT}") from exc
    return pynapple


def to_tsgroup(sort, units=None, time_support=None):
    """A sort as a ``pynapple.TsGroup`` of spike times (s, recording clock).

    Parameters
    ----------
    sort : a :class:`~offline.analysis.model.Sort` or its
        :class:`~offline.analysis.adapters.SortData`.
    units : unit ids to keep (default: all, in the sort's order).
    time_support : (start_s, end_s) or a ``pynapple.IntervalSet``; default: the recording when the
        sort knows it (offline sorts: ``first_sample_number`` .. ``+ n_samples``), else the first
        to one sample after the last spike.
    """
    nap = import_pynapple()
    import pandas as pd

    data = getattr(sort, "data", sort)
    fs = float(data.sample_rate_hz)
    ids = list(data.unit_ids) if units is None else list(units)
    missing = [u for u in ids if u not in data.spike_samples]
    if missing:
        raise KeyError(f"no units {missing} in the sort; units: {list(data.unit_ids)}")
    times = {int(u): np.asarray(data.spike_samples[u], np.int64) / fs for u in ids}
    if time_support is None:
        meta = data.meta or {}
        if "n_samples" in meta:
            first = int(meta.get("first_sample_number", 0))
            time_support = (first / fs, (first + int(meta["n_samples"])) / fs)
        else:
            nonempty = [t for t in times.values() if t.size]
            if nonempty:
                time_support = (min(t[0] for t in nonempty),
                                max(t[-1] for t in nonempty) + 1.0 / fs)
    if time_support is None:
        raise ValueError("the sort has no spikes and no recording span: pass time_support="
                         "(start_s, end_s)")
    if not isinstance(time_support, nap.IntervalSet):
        time_support = nap.IntervalSet(float(time_support[0]), float(time_support[1]))
    rows = []
    pos = data.channel_positions_um
    for u in ids:
        ch = int(data.peak_channel.get(u, -1))
        row = {"peak_channel": ch, "n_spikes": int(times[int(u)].size)}
        if pos is not None:
            ok = 0 <= ch < len(pos)
            row["x_um"] = float(pos[ch][0]) if ok else float("nan")
            row["y_um"] = float(pos[ch][1]) if ok else float("nan")
        for k, v in (data.metrics.get(u) or {}).items():
            if k not in ("unit", "rate") and k not in row:
                row[k] = v
        rows.append(row)
    metadata = pd.DataFrame(rows, index=[int(u) for u in ids])
    ts = {u: nap.Ts(t) for u, t in times.items()}
    return nap.TsGroup(ts, time_support=time_support, metadata=metadata)


def to_intervalset(presentations: Presentations, sample_rate_hz: float | None = None):
    """Sweep presentations as a ``pynapple.IntervalSet`` (s, recording clock) with the sweep
    parameters as metadata.

    ``sample_rate_hz`` (the recording's): move both edges half a sample earlier so pynapple's
    closed intervals hold the same spikes as our half-open windows (see the module docstring);
    None keeps the edges (a spike exactly at an offset is then counted by pynapple).
    """
    nap = import_pynapple()

    pres = presentations
    start = np.asarray(pres.onset_s, np.float64).copy()
    end = np.asarray(pres.offset_s, np.float64).copy()
    if start.size > 1 and np.any(np.diff(start) <= 0):
        raise ValueError("presentations are not in strictly increasing onset order")
    eps = 1e-6
    if sample_rate_hz is not None and np.isfinite(sample_rate_hz):
        half = 0.5 / float(sample_rate_hz)
        start -= half
        end -= half
        eps = min(eps, half / 2)
    if start.size > 1:
        end[:-1] = np.minimum(end[:-1], start[1:] - eps)
    metadata = {"sweep_index": np.asarray(pres.sweep_index, np.int64),
                "blank": np.asarray(pres.is_blank, bool)}
    for name, col in pres.params.items():
        if name in metadata or name in ("start", "end"):
            continue
        metadata[name] = col
    return nap.IntervalSet(start, end, metadata=metadata)
