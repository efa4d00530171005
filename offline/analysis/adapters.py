"""Thin adapters from the other parts' file formats to the analysis data model.

Everything that knows a foreign layout lives here, so a format change touches one file:

- offline sort folder (``sort.json`` + ``sort.npz``, docs/sorting.md) via
  :func:`offline.sort.sortfile.load_sort`;
- Phy template-gui folder (``params.py``, ``spike_times.npy``, ``spike_clusters.npy``, ...;
  Kilosort and our own export);
- the Open Ephys GUI's own Spike Detector output in the legacy format (``*.spikes``) via
  :func:`offline.legacy_spikes.read_legacy_spikes`;
- online spike files (``sweepsort/online_spikes_*.bin``) via
  :func:`offline.online_spikes.read_online_spikes`;
- stimulus session files (``*.session.json`` + ``*.frames.npz``, docs/stimulus.md) via
  :func:`offline.sweeps.read_session_file`;
- decoded refreshes: the recording's TTL events decoded offline
  (:func:`offline.sweeps.decode_recording`), or the online sweep file
  (:func:`offline.online_sweeps.read_online_sweeps`).

Spike times are always returned as absolute sample numbers (the GUI's counter since acquisition
start, the clock of the TTL events): ``first_sample_number + index`` for offline sorts.
"""

from __future__ import annotations

import ast
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# decoded-frame flags (oe_plugin.protocol.spec), repeated here to keep imports light
EXPERIMENT_START = 1 << 0
EXPERIMENT_END = 1 << 1
OUTSIDE_EXPERIMENT = 1 << 3


@dataclass
class SortData:
    """A sort as the data model needs it.

    unit_ids : list of int; spike_samples : dict unit -> int64 absolute sample numbers (sorted);
    sample_rate_hz : float; templates_uv : dict unit -> float32 (K, W) or absent;
    template_channels : dict unit -> int (K,); peak_channel : dict unit -> int;
    channel_positions_um : float64 (C, 2) or None; metrics : dict unit -> dict;
    meta : dict (the sort's own description).
    """

    kind: str
    path: Path
    sample_rate_hz: float
    unit_ids: list
    spike_samples: dict
    templates_uv: dict = field(default_factory=dict)
    template_channels: dict = field(default_factory=dict)
    peak_channel: dict = field(default_factory=dict)
    channel_positions_um: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def find_sort_folders(root) -> list[Path]:
    """Complete offline sort folders (holding ``sort.json`` and ``sort.npz``) under ``root``."""
    root = Path(root)
    found = [p.parent for p in root.rglob("sort.json") if (p.parent / "sort.npz").is_file()]
    return sorted(set(found), key=lambda p: (p.stat().st_mtime, str(p)))


def find_phy_folders(root, exclude=()) -> list[Path]:
    """Phy folders (``params.py`` + ``spike_times.npy``) under ``root``, except inside
    ``exclude`` folders (the Phy exports of offline sorts already found)."""
    ex = [Path(e).resolve() for e in exclude]
    out = []
    for p in Path(root).rglob("params.py"):
        d = p.parent
        if (d / "spike_times.npy").is_file() and not any(
                e == d.resolve() or e in d.resolve().parents for e in ex):
            out.append(d)
    return sorted(out)


def load_offline_sort(folder) -> SortData:
    """An offline sort folder -> :class:`SortData` (accepted spikes only, unit >= 0)."""
    from offline.sort.sortfile import load_sort

    res = load_sort(folder)
    a, meta = res.arrays, res.meta
    fs = float(meta["recording_sample_rate_hz"])
    first = int(meta.get("first_sample_number", 0))
    units = a["spike_unit"]
    samples = a["spike_index"].astype(np.int64) + first
    n_units = int(a["templates_uv"].shape[0])
    order = np.argsort(units, kind="stable")
    bounds = np.searchsorted(units[order], np.arange(n_units + 1))
    spikes, templates, chans, peak = {}, {}, {}, {}
    metrics = {int(m["unit"]): m for m in meta.get("metrics", [])}
    for u in range(n_units):
        spikes[u] = np.sort(samples[order[bounds[u]:bounds[u + 1]]])
        rows = a["template_channels"][u]
        keep = rows >= 0
        templates[u] = a["templates_uv"][u][keep]
        chans[u] = rows[keep]
        peak[u] = int(a["template_peak_channel"][u])
    return SortData("offline", Path(folder), fs, list(range(n_units)), spikes, templates, chans,
                    peak, np.asarray(a["channel_positions_um"], np.float64), metrics, meta)


def _read_params(path: Path) -> dict:
    params = {}
    tree = ast.parse(path.read_text())
    for node in tree.body:  # literal assignments only: nothing in params.py is executed
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            try:
                params[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return params


def load_phy_folder(folder, first_sample_number: int = 0) -> SortData:
    """A Phy folder -> :class:`SortData`; spike_times.npy are stream sample indices, so
    ``first_sample_number`` (of the recording's stream) is added."""
    folder = Path(folder)
    params = _read_params(folder / "params.py")
    fs = float(params["sample_rate"])
    times = np.load(folder / "spike_times.npy", allow_pickle=False).reshape(-1).astype(np.int64)
    clu_path = folder / "spike_clusters.npy"
    if not clu_path.exists():
        clu_path = folder / "spike_templates.npy"
    clusters = np.load(clu_path, allow_pickle=False).reshape(-1).astype(np.int64)
    groups = {}
    tsv = folder / "cluster_group.tsv"
    if tsv.exists():
        for line in tsv.read_text().splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) == 2 and parts[0].strip().isdigit():
                groups[int(parts[0])] = parts[1].strip()
    ids = [int(c) for c in np.unique(clusters) if groups.get(int(c)) != "noise"]
    spikes = {c: np.sort(times[clusters == c]) + first_sample_number for c in ids}
    templates, chans, peak = {}, {}, {}
    tpl_path = folder / "templates.npy"
    if tpl_path.exists():
        tpl = np.load(tpl_path, allow_pickle=False)  # (n_templates, W, C)
        for c in ids:
            if c < tpl.shape[0]:
                dense = tpl[c].T  # (C, W)
                ch = np.flatnonzero(np.abs(dense).max(axis=1) > 0)
                templates[c], chans[c] = dense[ch], ch
                peak[c] = int(np.argmax(np.abs(dense).max(axis=1)))
    pos_path = folder / "channel_positions.npy"
    pos = np.load(pos_path, allow_pickle=False) if pos_path.exists() else None
    metrics = {c: {"group": groups[c]} for c in ids if c in groups}
    return SortData("phy", folder, fs, ids, spikes, templates, chans, peak, pos, metrics,
                    {"params": params})


def load_online_sort(recording_dir) -> SortData:
    """The online spike files under ``recording_dir`` -> :class:`SortData`.

    Units are the online classifier's unit ids; when no spike was classified (detection only),
    each channel's spikes form one multi-unit "neuron" with id ``1000 + channel``.
    """
    from offline.online_spikes import read_online_spikes, read_online_spikes_meta

    spikes = read_online_spikes(recording_dir)
    metas = read_online_spikes_meta(recording_dir)
    fs = float(metas[0]["sample_rate_hz"]) if metas else float("nan")
    sorted_units = spikes["unit"] >= 0
    if sorted_units.any():
        keys = spikes["unit"].astype(np.int64)
        sel = sorted_units
    else:
        keys = 1000 + spikes["channel"].astype(np.int64)
        sel = np.ones(spikes.size, bool)
    ids = [int(u) for u in np.unique(keys[sel])]
    out, peak = {}, {}
    for u in ids:
        m = sel & (keys == u)
        out[u] = np.sort(spikes["sample_number"][m].astype(np.int64))
        ch = spikes["channel"][m]
        peak[u] = int(np.bincount(ch.astype(np.int64)).argmax()) if ch.size else -1
    return SortData("online", Path(recording_dir), fs, ids, out, peak_channel=peak,
                    meta={"files": [m["path"] for m in metas]})


def find_gui_spike_folders(root) -> list[Path]:
    """Folders holding the GUI Spike Detector's legacy ``*.spikes`` files under ``root``."""
    return sorted({p.parent for p in Path(root).rglob("*.spikes")})


def load_gui_spikes(folder) -> SortData:
    """The GUI Spike Detector's ``*.spikes`` files of one folder -> :class:`SortData`.

    One neuron per electrode and sorted id: id ``1000 * k + sorted_id`` for the k-th electrode
    file in name order (sorted id 0 = unsorted, i.e. the electrode's multi-unit activity); its
    template is the mean waveform (µV) on the electrode's channels.
    """
    from offline.legacy_spikes import read_legacy_spikes

    ids, spikes, templates, chans, peak, metrics = [], {}, {}, {}, {}, {}
    fs = float("nan")
    for k, path in enumerate(sorted(Path(folder).glob("*.spikes"))):
        d = read_legacy_spikes(path)
        fs = d["sample_rate_hz"] if np.isfinite(d["sample_rate_hz"]) else fs
        n_ch = d["waveforms_uv"].shape[1]
        channels = d["channels"] if d["channels"] is not None else np.arange(n_ch)
        for sid in np.unique(d["sorted_id"]):
            sel = d["sorted_id"] == sid
            u = 1000 * k + int(sid)
            ids.append(u)
            spikes[u] = np.sort(d["sample_numbers"][sel])
            templates[u] = d["waveforms_uv"][sel].mean(axis=0)
            chans[u] = np.asarray(channels, np.int64)
            peak[u] = int(channels[int(np.argmax(np.abs(templates[u]).max(axis=1)))])
            metrics[u] = {"electrode": d["electrode"], "sorted_id": int(sid)}
    return SortData("gui", Path(folder), fs, ids, spikes, templates, chans, peak, None, metrics)


def has_online_spikes(recording_dir) -> bool:
    from offline.online_spikes import find_online_spike_files

    try:
        return bool(find_online_spike_files(recording_dir))
    except FileNotFoundError:
        return False


# -- stimulus sessions and decoded refreshes ------------------------------------------------

def find_session_files(root) -> list[Path]:
    """Stimulus session files (``*.session.json``) under ``root``, oldest first."""
    files = list(Path(root).rglob("*.session.json"))

    def created(p):
        try:
            return (json.loads(p.read_text()).get("created_utc") or "", str(p))
        except (OSError, json.JSONDecodeError):
            return ("", str(p))

    return sorted(files, key=created)


def load_session(path) -> dict:
    """A session file -> dict: ``raw`` (the JSON), ``conditions``, ``order`` (or None),
    ``frame_log`` (dict of arrays or None), ``seed``, ``stimulus``, ``static``,
    ``refresh_hz``, ``blank_s``, ``protocol`` (ProtocolSettings or None), ``session_code``
    (the 24-bit code it sent on the TTL lines, or None: an older session file)."""
    from offline.sweeps import read_session_file, session_code_of

    s = read_session_file(path)
    raw = s.raw
    table = raw.get("sweep_table")
    order = table.get("order") if isinstance(table, dict) else None
    frames = raw.get("frames") or {}
    blanks = raw.get("blanks") or None
    refresh = frames.get("refresh_hz") or (raw.get("display") or {}).get("refresh_hz")
    if refresh is None and s.protocol is not None:
        refresh = getattr(s.protocol, "refresh_hz", None)
    return {"path": Path(path), "raw": raw, "conditions": s.sweep_table,
            "order": None if order is None else np.asarray(order, np.int64),
            "frame_log": s.frame_log, "seed": s.seed, "stimulus": raw.get("stimulus"),
            "static": raw.get("static") or {}, "refresh_hz": float(refresh or 200.0),
            "blank_s": float(blanks["duration_s"]) if isinstance(blanks, dict) else None,
            "protocol": s.protocol, "dims": (table or {}).get("dims") if isinstance(
                table, dict) else None, "session_code": session_code_of(raw)}


def load_refreshes(recording_dir, source: str = "auto", protocol=None, *,
                   with_experiments: bool = False):
    """Decoded refreshes of a recording: (DECODED_DTYPE records, sample_rate_hz, source), plus
    with ``with_experiments`` the decoder's experiment list ``[(start_sample, session_code,
    status), ...]`` (:func:`offline.sweeps.decode_ttl_experiments`; from the online file's
    sidecar when decoded online, empty if it has none).

    source : 'ttl' (decode the recorded TTL events), 'online' (the sweep decoder's file), or
        'auto' (TTL events when an Open Ephys recording with events is there, else the online
        file). Raises FileNotFoundError when neither exists.
    """
    errors = []
    if source in ("auto", "ttl"):
        try:
            from offline.recording import open_recording
            from offline.sweeps import decode_ttl_experiments, protocol_from_online_file

            rec = open_recording(recording_dir)
            events = rec.ttl_events()
            if events.size:
                from oe_plugin.protocol import ProtocolSettings

                settings = (protocol or protocol_from_online_file(recording_dir)
                            or ProtocolSettings())
                frames, exps = decode_ttl_experiments(events, settings, rec.sample_rate_hz)
                out = (frames, float(rec.sample_rate_hz), "ttl")
                return (*out, exps) if with_experiments else out
            errors.append("the recording has no TTL events")
        except Exception as exc:  # noqa: BLE001 - fall back to the online file, report both
            errors.append(f"TTL decoding: {exc}")
    if source in ("auto", "online"):
        try:
            from offline.online_sweeps import read_online_sweeps, read_online_sweeps_meta

            frames = read_online_sweeps(recording_dir)
            metas = read_online_sweeps_meta(recording_dir)
            out = (frames, float(metas[0]["sample_rate_hz"]), "online")
            if not with_experiments:
                return out
            exps = [(int(e["sample_number"]), e.get("session_code"), e.get("status"))
                    for m in metas for e in (m.get("stats") or {}).get("experiment_starts", [])]
            return (*out, exps)
        except FileNotFoundError as exc:
            errors.append(str(exc))
    raise FileNotFoundError(f"{recording_dir}: no decoded sweeps: " + "; ".join(errors))


def split_experiments(frames: np.ndarray) -> list[np.ndarray]:
    """Cut decoded refreshes into experiments at START markers; each part keeps only the
    refreshes between its START and END markers (marker refreshes removed)."""
    flags = frames["flags"].astype(np.int64)
    start = (flags & EXPERIMENT_START) != 0
    first = np.flatnonzero(start & ~np.r_[False, start[:-1]])
    parts = []
    for k, s in enumerate(first):
        e = first[k + 1] if k + 1 < first.size else frames.size
        seg = frames[s:e]
        f = seg["flags"].astype(np.int64)
        keep = (f & (EXPERIMENT_START | EXPERIMENT_END | OUTSIDE_EXPERIMENT)) == 0
        parts.append(seg[keep])
    return parts


def experiment_start_samples(frames: np.ndarray) -> np.ndarray:
    """Sample number of the first START refresh of each part of :func:`split_experiments`."""
    start = (frames["flags"].astype(np.int64) & EXPERIMENT_START) != 0
    first = np.flatnonzero(start & ~np.r_[False, start[:-1]])
    return frames["sample_number"][first].astype(np.int64)


def part_codes(frames: np.ndarray, experiments) -> list:
    """Per part of :func:`split_experiments`: ``(session_code, status)`` from the decoder's
    experiment list (matched by the START sample), ``(None, None)`` when it has no record."""
    by_start = {int(e[0]): (e[1], e[2]) for e in experiments or ()}
    return [by_start.get(int(s), (None, None)) for s in experiment_start_samples(frames)]


def match_sessions(parts: list[np.ndarray], sessions: list[dict], codes=None
                   ) -> list[int | None]:
    """For each session, the index of its part of the refreshes (None if not found).

    First by session code: a session file's ``session_code`` (sent in the TTL START block)
    equal to the code decoded for a part (``codes[k] = (code, status)``, :func:`part_codes`).
    Then, for the sessions left (older files, or a code that arrived corrupted), with a frame
    log: the part whose (frame number, sweep index) pairs agree most with the log; otherwise
    the sessions and the parts are paired in time order. A part with a decoded code is never
    given to a session with another code, nor to an old file (no code) when another file has
    that code.
    """
    codes = list(codes) if codes is not None else [(None, None)] * len(parts)
    out: list[int | None] = [None] * len(sessions)
    used: set[int] = set()
    for i, sess in enumerate(sessions):  # 1. the code
        want = sess.get("session_code")
        if want is None:
            continue
        k = next((k for k, (c, _st) in enumerate(codes) if c == want and k not in used), None)
        if k is not None:
            out[i] = k
            used.add(k)
    file_codes = {s.get("session_code") for s in sessions} - {None}
    for i, sess in enumerate(sessions):
        if out[i] is not None:
            continue

        def free(k, sess=sess):
            """Part k may be this session's: no decoded code, or (for a file without a code)
            a code that no given file has."""
            c = codes[k][0] if k < len(codes) else None
            if k in used:
                return False
            if c is None:
                return True
            return sess.get("session_code") is None and c not in file_codes

        log = sess.get("frame_log")
        if log is not None and "frame_number" in log and "code" in log:
            fn = np.asarray(log["frame_number"], np.int64)
            code = np.asarray(log["code"], np.int64)
            best, best_score = None, 0.0
            for k, part in enumerate(parts):
                if not free(k) or not part.size:
                    continue
                pos = np.clip(np.searchsorted(fn, part["frame_number"]), 0, max(fn.size - 1, 0))
                agree = (fn[pos] == part["frame_number"]) & (code[pos] == part["sweep_index"])
                score = agree.mean()
                if score > best_score:
                    best, best_score = k, score
            if best is not None and best_score > 0.5:
                used.add(best)
                out[i] = best
                continue
        k = i if i < len(parts) and free(i) else None
        if k is None:
            warnings.warn(f"{sess['path']}: no decoded experiment matches this session",
                          stacklevel=2)
        else:
            used.add(k)
        out[i] = k
    return out


def plan_columns(part: np.ndarray, frame_log: dict | None):
    """Per refresh, from the frame log's plan: (presentation, frame_in_sweep, phase) int64
    arrays, or None when the log lacks the plan. Joined on frame number."""
    need = ("frame_number", "plan_index", "plan_presentation", "plan_frame_in_sweep",
            "plan_phase")
    if frame_log is None or any(k not in frame_log for k in need):
        return None
    fn = np.asarray(frame_log["frame_number"], np.int64)
    order = np.argsort(fn, kind="stable")
    fn = fn[order]
    plan_i = np.asarray(frame_log["plan_index"], np.int64)[order]
    pos = np.clip(np.searchsorted(fn, part["frame_number"]), 0, max(fn.size - 1, 0))
    ok = (fn.size > 0) & (fn[pos] == part["frame_number"])
    pi = np.where(ok, plan_i[pos], -1)
    ok &= pi >= 0
    pres = np.full(part.size, -1, np.int64)
    fis = np.zeros(part.size, np.int64)
    phase = np.full(part.size, -1, np.int64)
    p_pres = np.asarray(frame_log["plan_presentation"], np.int64)
    p_fis = np.asarray(frame_log["plan_frame_in_sweep"], np.int64)
    p_phase = np.asarray(frame_log["plan_phase"], np.int64)
    pres[ok], fis[ok], phase[ok] = p_pres[pi[ok]], p_fis[pi[ok]], p_phase[pi[ok]]
    return pres, fis, phase
