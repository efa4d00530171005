"""``sweepsort info``: what a recording holds — recordings, streams, channels, duration, events.

Walks the recordings and streams :func:`offline.recording.open_recording` can select (indices
0, 1, ... until it reports there are no more) and describes each stream without reading its
samples (memory maps only). A session folder with several Record Nodes is listed node by node
unless ``node`` picks one.
"""

from __future__ import annotations

from pathlib import Path

from offline.recording import RecordingError, open_recording

MAX_ITEMS = 256


def describe_stream(rec) -> dict:
    """A JSON-able summary of one open stream."""
    try:
        ttl = rec.ttl_events()
        n_events = int(len(ttl))
        lines = sorted({int(x) for x in ttl["line"]}) if n_events else []
    except (RecordingError, OSError, ValueError, KeyError) as exc:
        n_events, lines = -1, [f"unreadable: {exc}"]
    return {
        "format": rec.format,
        "stream": rec.stream_name,
        "path": str(rec.path),
        "n_channels": int(rec.n_channels),
        "sample_rate_hz": float(rec.sample_rate_hz),
        "n_samples": int(rec.n_samples),
        "duration_s": float(rec.n_samples / rec.sample_rate_hz) if rec.sample_rate_hz else 0.0,
        "first_sample_number": int(rec.first_sample_number),
        "ttl_events": n_events,
        "ttl_lines": lines,
    }


def record_nodes(path) -> list[str]:
    """The ``Record Node …`` folders directly inside ``path`` (a session folder), by number."""
    p = Path(path)
    if not p.is_dir():
        return []
    names = [d.name for d in p.iterdir() if d.is_dir() and d.name.startswith("Record Node ")]
    return sorted(names, key=lambda n: (len(n), n))


def recording_info(path, node=None, *, allow_truncated: bool = False) -> list[dict]:
    """One entry per (record node, recording, stream): ``describe_stream`` plus the node's name
    and the two indices. Without ``node``, every Record Node of a session folder."""
    nodes = record_nodes(path) if node is None else []
    if len(nodes) > 1:
        return [entry for n in nodes
                for entry in recording_info(path, n, allow_truncated=allow_truncated)]
    label = str(node) if node is not None else (nodes[0] if nodes else "")
    out = []
    for r in range(MAX_ITEMS):
        found = False
        for s in range(MAX_ITEMS):
            try:
                rec = open_recording(path, node, r, s, allow_truncated=allow_truncated)
            except RecordingError:
                if r == 0 and s == 0:
                    raise
                break
            found = True
            out.append({"node": label, "recording": r, "stream_index": s, **describe_stream(rec)})
        if not found:
            break
    return out


def format_info(entries: list[dict]) -> str:
    lines = []
    for e in entries:
        where = f"{e['node']}: " if e.get("node") else ""
        lines.append(
            f"{where}recording {e['recording']} stream {e['stream_index']} {e['stream']!r} "
            f"[{e['format']}]: {e['n_channels']} ch @ {e['sample_rate_hz']:g} Hz, "
            f"{e['n_samples']} samples ({e['duration_s']:.2f} s) from sample number "
            f"{e['first_sample_number']}; TTL events: {e['ttl_events']} on lines "
            f"{e['ttl_lines']}\n    {e['path']}")
    return "\n".join(lines)
