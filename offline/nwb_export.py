"""``sweepsort export-nwb``: a recording's sort and stimulus as one NWB 2 file (pynwb).

What the file holds (docs/analysis.md, "NWB export"):

- ``session_start_time``: the recording's start, from the Open Ephys ``sync_messages.txt``
  ("Software Time (milliseconds since midnight Jan 1st 1970 UTC)", legacy format:
  ``messages.events``), else the ``<DATE>`` of ``settings.xml`` (local time of the acquisition
  computer, taken in this computer's time zone), else ``--session-start``; never "now".
- time base: 0 s = the first sample of the sorted stream (``first_sample_number``, the sample
  the Software Time refers to); a sample number ``s`` is at ``(s - first_sample_number) / fs``.
- electrodes (probe positions), Units (spike times, mean waveforms, electrodes, metrics):
  :mod:`offline.sort.nwb`.
- ``trials``: one row per presented sweep of every stimulus experiment (the analysis model's
  :meth:`~offline.analysis.model.Experiment.presentations`: on-screen start/stop, display lag
  included), with ``experiment``, ``stimulus``, ``sweep_index``, ``is_blank``, ``n_refreshes``,
  ``dropped_frames`` (frame log) and one column per sweep-table parameter (NaN / "" where a row
  does not have it, e.g. blanks).
- ``epochs``: one per experiment (first presentation's start to last one's stop).
- ``stimulus``: per experiment a TimeSeries ``refreshes_<name>`` — the sweep index shown at each
  decoded refresh (timestamps = on-screen time), and, with a frame log, ``flip_interval_<name>``
  (the stimulus computer's flip-to-flip interval, s, of the same refreshes).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

_SOFTWARE_TIME = re.compile(
    r"Software Time[^:\n]*:\s*(\d{9,})|(\d{9,})\s*,\s*Software Time", re.IGNORECASE)
_START_SAMPLE = re.compile(r"Start Time for [^\n]*:\s*(\d+)\s*$|^\s*(\d+)\s*,\s*Start Time")
_RESERVED_TRIAL_COLUMNS = {"id", "start_time", "stop_time", "tags", "timeseries",
                           "experiment", "stimulus", "sweep_index", "is_blank", "n_refreshes",
                           "dropped_frames"}


class ExportError(ValueError):
    """The inputs cannot make a consistent NWB file; the message says why."""


# -- session start time ----------------------------------------------------------------------

def _ancestors(start: Path, stop_at: Path | None, levels: int = 6) -> list[Path]:
    """``start`` and its parents, up to and including a ``Record Node …`` folder or
    ``stop_at`` (at most ``levels``): a Binary stream folder is continuous/STREAM inside
    recordingN inside experimentN inside the node."""
    out, p = [], start if start.is_dir() else start.parent
    for _ in range(levels):
        out.append(p)
        if (stop_at is not None and p == stop_at) or p.name.startswith("Record Node ") \
                or p.parent == p:
            break
        p = p.parent
    return out


def _sync_blocks(text: str) -> list[tuple[int, set[int]]]:
    """(Software Time ms, {Start Time sample numbers}) per recording start in a
    sync_messages.txt (``Software Time (...): MS`` / ``Start Time for ... Hz: N``) or a legacy
    messages.events (``MS, Software Time (...)`` / ``N, Start Time for ...``) text."""
    blocks: list[tuple[int, set[int]]] = []
    for line in text.splitlines():
        m = _SOFTWARE_TIME.search(line)
        if m is not None:
            blocks.append((int(m.group(1) or m.group(2)), set()))
            continue
        m = _START_SAMPLE.search(line)
        if m is not None and blocks:
            blocks[-1][1].add(int(m.group(1) or m.group(2)))
    return blocks


def software_start_time(text: str, first_sample_number: int | None = None
                        ) -> dt.datetime | None:
    """The "Software Time" (ms since the Unix epoch, UTC) of a sync_messages.txt or legacy
    messages.events text, as an aware UTC datetime: of the recording start whose "Start Time"
    sample number is ``first_sample_number`` when one is (a legacy file holds every recording
    of the node), else the first; None if the text has none."""
    blocks = _sync_blocks(text)
    if not blocks:
        return None
    ms = next((b[0] for b in blocks if first_sample_number in b[1]), blocks[0][0])
    return dt.datetime.fromtimestamp(ms / 1000.0, tz=dt.timezone.utc)


def settings_xml_date(path: Path) -> dt.datetime | None:
    """``<INFO><DATE>3 Apr 2025 13:38:45</DATE>`` of a settings.xml, as an aware datetime in
    this computer's time zone (the file gives no zone); None if absent or unparsable."""
    try:
        text = ElementTree.parse(path).getroot().findtext("INFO/DATE")
    except (OSError, ElementTree.ParseError):
        return None
    if not text:
        return None
    for fmt in ("%d %b %Y %H:%M:%S", "%d %B %Y %H:%M:%S"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).astimezone()
        except ValueError:
            continue
    return None


def parse_start_time(value: str) -> dt.datetime:
    """``--session-start``: an ISO-8601 time with its zone (``2024-05-01T14:00:00+02:00``)."""
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ExportError(f"--session-start: not an ISO-8601 time: {value!r}") from None
    if t.tzinfo is None:
        raise ExportError(f"--session-start: give the time zone too (e.g. {value}+00:00)")
    return t


def recording_start_time(stream_path, root=None, first_sample_number: int | None = None
                         ) -> tuple[dt.datetime, str] | None:
    """(start time, where it came from) for the stream at ``stream_path`` (its folder or a
    file; ``first_sample_number`` picks the recording in a legacy messages.events), searching
    it and its parents up to the Record Node folder (or ``root``): first sync_messages.txt /
    messages.events, then settings.xml. None when neither says."""
    folders = _ancestors(Path(stream_path).resolve(), Path(root).resolve() if root else None)
    for folder in folders:
        for name in ("sync_messages.txt", "messages.events"):
            f = folder / name
            if f.is_file():
                start = software_start_time(f.read_bytes().decode("utf-8", "replace"),
                                            first_sample_number)
                if start is not None:
                    return start, f"{f} (Software Time)"
    for folder in folders:
        f = folder / "settings.xml"
        if f.is_file():
            start = settings_xml_date(f)
            if start is not None:
                return start, f"{f} (DATE, local time of this computer's zone)"
    return None


# -- stimulus ----------------------------------------------------------------------------------

def _nwb_value(value, numeric: bool):
    if numeric:
        return math.nan if value is None else float(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _param_kinds(presentations: list) -> dict:
    """Sweep-table parameter name -> True when numeric (float column) in every experiment."""
    kinds: dict = {}
    for p in presentations:
        for name, col in p.params.items():
            num = np.asarray(col).dtype.kind in "fiu"
            kinds[name] = kinds.get(name, True) and num
    return kinds


def _dropped_per_presentation(exp, pres) -> np.ndarray:
    """Frames the frame log marks ``dropped`` within each presentation's refreshes, int (n,);
    -1 when the session has no frame log with ``dropped``."""
    log = exp.session.get("frame_log")
    n = len(pres)
    if log is None or "dropped" not in log or "frame_number" not in log or pres.first_refresh \
            is None:
        return np.full(n, -1, np.int64)
    dropped_fn = np.asarray(log["frame_number"], np.int64)[np.asarray(log["dropped"], bool)]
    fn = exp.refreshes["frame_number"].astype(np.int64)
    n_ref = _refresh_counts(exp, pres)
    out = np.zeros(n, np.int64)
    for i, (k, m) in enumerate(zip(pres.first_refresh, n_ref, strict=True)):
        frames = fn[int(k):int(k) + int(m)]
        if frames.size:
            out[i] = int(np.count_nonzero((dropped_fn >= frames[0]) & (dropped_fn <= frames[-1])))
    return out


def _refresh_counts(exp, pres) -> np.ndarray:
    """Refreshes per presentation, int (n,): its duration times the refresh rate."""
    return np.maximum(1, np.round(pres.duration_s * exp.refresh_hz)).astype(np.int64)


def add_stimulus(nwb, experiments: list, t0_s: float) -> int:
    """Trials (one per presented sweep), epochs (one per experiment) and per-refresh stimulus
    TimeSeries; ``t0_s`` (s on the analysis clock, ``first_sample_number / fs``) is subtracted
    from every time. Returns the number of trials written (0: nothing added)."""
    shown = [(e, e.presentations()) for e in experiments if e.refreshes.size]
    shown = [(e, p) for e, p in shown if len(p)]
    if not shown:
        return 0
    kinds = _param_kinds([p for _, p in shown])
    columns = {name: (f"param_{name}" if name in _RESERVED_TRIAL_COLUMNS else name)
               for name in kinds}
    for name, desc in (("experiment", "stimulus session (file name without .session.json)"),
                       ("stimulus", "stimulus kind of the session"),
                       ("sweep_index", "sweep-table row shown (65535: blank sweep)"),
                       ("is_blank", "a blank sweep (no stimulus)"),
                       ("n_refreshes", "display refreshes of the sweep"),
                       ("dropped_frames", "frames the stimulus computer's frame log marks "
                                          "dropped during the sweep (-1: no frame log)")):
        nwb.add_trial_column(name=name, description=desc)
    for name, col in columns.items():
        nwb.add_trial_column(name=col, description=f"sweep-table parameter {name!r}")
    rows = []
    for e, p in shown:
        dropped = _dropped_per_presentation(e, p)
        n_ref = _refresh_counts(e, p)
        for i in range(len(p)):
            rows.append(dict(
                start_time=float(p.onset_s[i] - t0_s), stop_time=float(p.offset_s[i] - t0_s),
                experiment=e.name, stimulus=str(e.stimulus or ""),
                sweep_index=int(p.sweep_index[i]), is_blank=bool(p.is_blank[i]),
                n_refreshes=int(n_ref[i]), dropped_frames=int(dropped[i]),
                **{col: _nwb_value(p.params[name][i] if name in p.params else None,
                                   kinds[name]) for name, col in columns.items()}))
        nwb.add_epoch(start_time=float(p.onset_s[0] - t0_s),
                      stop_time=float(p.offset_s[-1] - t0_s), tags=[e.name])
        _add_refresh_series(nwb, e, t0_s)
    for row in sorted(rows, key=lambda r: r["start_time"]):
        nwb.add_trial(**row)
    return len(rows)


def _add_refresh_series(nwb, exp, t0_s: float) -> None:
    """``refreshes_<name>``: sweep index per decoded refresh at its on-screen time (s);
    ``flip_interval_<name>``: the frame log's flip-to-flip interval of those refreshes."""
    from pynwb import TimeSeries

    onscreen_s = exp.refresh_onset_s() - t0_s
    nwb.add_stimulus(TimeSeries(
        name=f"refreshes_{exp.name}", data=exp.refreshes["sweep_index"].astype(np.int64),
        unit="n.a.", timestamps=onscreen_s,
        description=f"sweep index shown at each decoded display refresh of {exp.name} "
                    "(65535: none), at its on-screen time (TTL edge + one refresh)"))
    log = exp.session.get("frame_log")
    if log is None or "interval_s" not in log or "frame_number" not in log:
        return
    fn_log = np.asarray(log["frame_number"], np.int64)
    interval_s = np.asarray(log["interval_s"], np.float64)
    order = np.argsort(fn_log, kind="stable")
    fn_log, interval_s = fn_log[order], interval_s[order]
    fn = exp.refreshes["frame_number"].astype(np.int64)
    pos = np.clip(np.searchsorted(fn_log, fn), 0, max(fn_log.size - 1, 0))
    ok = (fn_log.size > 0) & (fn_log[pos] == fn)
    if not ok.any():
        return
    nwb.add_stimulus(TimeSeries(
        name=f"flip_interval_{exp.name}", data=interval_s[pos[ok]], unit="s",
        timestamps=onscreen_s[ok],
        description=f"stimulus computer's flip-to-flip interval (frame log) of the decoded "
                    f"refreshes of {exp.name}, joined on frame number"))


# -- the whole export --------------------------------------------------------------------------

def check_sort_matches(meta: dict, rec) -> None:
    """ExportError unless the sort was made from ``rec``'s stream (rate, start, length)."""
    want = (float(meta["recording_sample_rate_hz"]), int(meta.get("first_sample_number", 0)),
            int(meta["n_samples"]))
    have = (float(rec.sample_rate_hz), int(rec.first_sample_number), int(rec.n_samples))
    if want != have:
        raise ExportError(f"the sort is not of this stream: sort (rate Hz, first sample, "
                          f"samples) = {want}, stream {rec.stream_name!r} = {have}; pick the "
                          "stream with --node/--recording/--stream")


def export_recording(recording, sort_dir, out, *, node=None, recording_index=None, stream=None,
                     session_files=(), refresh_source: str = "auto",
                     session_start: dt.datetime | None = None, overwrite: bool = False,
                     allow_truncated: bool = False, subject: dict | None = None,
                     location: str = "unknown",
                     log=print) -> dict:
    """Write the NWB file ``out`` for ``recording`` sorted by ``sort_dir``; returns a summary
    (``path``, ``n_units``, ``n_electrodes``, ``n_trials``, ``n_experiments``, ``start``).

    ``subject``: pynwb ``Subject`` fields (``subject_id``, ``species``, ``sex``, ``age``), or
    None: the file then has no subject (nwbinspector reports that, and says so on ``log``).
    ``location``: the electrodes' brain area (an Allen CCF name or acronym for mice, e.g.
    ``VISp``), "unknown" by default.
    """
    from offline.analysis.model import Recording
    from offline.recording import open_recording
    from offline.sort.nwb import add_electrodes, add_units, new_nwbfile, write_nwb_atomic
    from offline.sort.sortfile import SortFileError, load_sort

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass --overwrite to replace it)")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: no such folder for the output")
    sort_dir = Path(sort_dir)
    if not ((sort_dir / "sort.json").is_file() and (sort_dir / "sort.npz").is_file()):
        raise SortFileError(f"--sort {sort_dir}: not a complete sort folder (sort.json + "
                            "sort.npz; the folder 'sweepsort sort --out' wrote)")
    res = load_sort(sort_dir)
    rec = open_recording(recording, node, recording_index, stream,
                         allow_truncated=allow_truncated)
    check_sort_matches(res.meta, rec)
    if session_start is not None:
        start, origin = session_start, "--session-start"
    else:
        found = recording_start_time(rec.path, None, rec.first_sample_number)
        if found is None:
            raise ExportError(f"{rec.path}: no start time (no sync_messages.txt, "
                              "messages.events or settings.xml DATE); pass --session-start "
                              "ISO-8601 time with its zone")
        start, origin = found
    log(f"session start {start.isoformat()} from {origin}")
    nwb = new_nwbfile(res.meta, start, f"sweepsort sort {sort_dir.name} of {Path(recording)}")
    if subject:
        from pynwb.file import Subject

        nwb.subject = Subject(**{k: v for k, v in subject.items() if v is not None})
    else:
        log("no subject given (--subject-id, --species, ...): the file has no Subject, which "
            "DANDI and nwbinspector require")
    add_electrodes(nwb, res, location)
    add_units(nwb, res)
    model = Recording(recording, session_files=session_files, refresh_source=refresh_source)
    experiments = model.experiments
    for e in experiments:
        log(f"experiment {e.name} ({e.stimulus}): " + (
            f"{len(e.presentations())} presented sweeps" if e.refreshes.size else
            "no decoded refreshes matched it: not in the trials"))
    t0_s = rec.first_sample_number / rec.sample_rate_hz
    n_trials = add_stimulus(nwb, experiments, t0_s)
    if not n_trials:
        log("no stimulus presentations in this recording (no session file, or no decoded "
            "sweeps): the file has no trials")
    path = write_nwb_atomic(nwb, out, overwrite=overwrite)
    return {"path": path, "n_units": res.n_units, "n_electrodes": int(res.meta["n_channels"]),
            "n_trials": n_trials, "n_experiments": len(experiments), "start": start}
