"""Finding one stream of a recording: session -> record node -> recording -> stream, through
open-ephys-python-tools, then the reader of its format (:func:`open_recording`)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from offline.recording.base import ContinuousRecording, RecordingError
from offline.recording.binary import BinaryStream, _check_oebin_files
from offline.recording.legacy import LegacyStream, _legacy_streams
from offline.recording.tools import ToolsStream, _meta


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _node_number(path: Path) -> int | None:
    m = re.search(r"(\d+)\s*$", path.name)
    return int(m.group(1)) if m else None


def _pick_node(session: Path, node) -> Path:
    nodes = sorted((p for p in session.glob("Record Node *") if p.is_dir()), key=_natural_key)
    listing = ", ".join(f"{i}: {p.name!r}" for i, p in enumerate(nodes))
    if node is None:
        return nodes[0]
    if isinstance(node, str) and not node.strip().isdigit():
        for p in nodes:
            if p.name == node or p.name == f"Record Node {node}":
                return p
        raise RecordingError(f"{session}: no record node {node!r}; nodes: {listing}")
    number = int(node)
    for p in nodes:
        if _node_number(p) == number:
            return p
    if 0 <= number < len(nodes):
        return nodes[number]
    raise RecordingError(f"{session}: no record node {node!r} (neither a node number nor an "
                         f"index); nodes: {listing}")


def _looks_like_data(folder: Path) -> bool:
    return (any(folder.glob("experiment*/recording*")) or any(folder.glob("*.continuous"))
            or any(folder.glob("recording*/structure.oebin"))
            or any(folder.glob("structure*.openephys")) or any(folder.glob("*.nwb"))
            or any(folder.glob("*.events")))


def _tools_recordings(folder: Path) -> list:
    """python-tools' recordings of one folder (a record node, or a session without nodes)."""
    try:
        from open_ephys.analysis.formats import BinaryRecording
        from open_ephys.analysis.recordnode import RecordNode
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise RecordingError("open-ephys-python-tools is not installed") from err
    _check_oebin_files(folder)
    if (folder / "structure.oebin").is_file():
        exp = re.search(r"(\d+)$", folder.parent.name)
        rec = re.search(r"(\d+)$", folder.name)
        return [BinaryRecording(str(folder), int(exp.group(1)) - 1 if exp else 0,
                                int(rec.group(1)) - 1 if rec else 0)]
    if any(folder.glob("recording*/structure.oebin")):  # an experiment folder
        dirs = sorted((p for p in folder.glob("recording*") if (p / "structure.oebin").is_file()),
                      key=_natural_key)
        return [r for d in dirs for r in _tools_recordings(d)]
    try:
        return list(RecordNode(str(folder)).recordings)
    except (OSError, ValueError, KeyError, IndexError, ElementTree.ParseError) as err:
        raise RecordingError(f"{folder}: python-tools could not read it ({err})") from err


def _describe(rec) -> str:
    d = Path(rec.directory)
    if (d / "structure.oebin").is_file():
        return f"{d.parent.name}/{d.name}"
    return f"experiment {rec.experiment_index + 1}, recording {rec.recording_index + 1}"


def _pick(items: list, key, what: str, where: Path, names: list[str] | None = None):
    listing = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names or [str(i) for i in items]))
    if key is None:
        return 0
    if isinstance(key, str) and not key.strip().lstrip("-").isdigit():
        if names and key in names:
            return names.index(key)
        raise RecordingError(f"{where}: no {what} named {key!r}; available: {listing}")
    i = int(key)
    if not 0 <= i < len(items):
        raise RecordingError(f"{where}: {what} index {i} out of range; available: {listing}")
    return i


def open_recording(path, node=None, recording=None, stream=None, *,
                   allow_truncated: bool = False) -> ContinuousRecording:
    """Open one stream of an Open Ephys recording.

    Parameters
    ----------
    path : a session folder holding ``Record Node …`` folders, a record node folder, an
        ``experiment<N>`` folder, or a Binary ``recording<N>`` folder (or its structure.oebin).
    node : index (0-based, sorted by name) or the number in "Record Node 105" (105), or the
        folder name; default the first node.
    recording : 0-based index over the node's recordings (experiments flattened, as
        python-tools numbers them); default 0.
    stream : index or stream name (or Binary folder name); default 0.
    allow_truncated : read the complete part of a file that ends mid-frame instead of failing.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise RecordingError(f"{p}: no such folder")
    if p.is_file():
        if p.name != "structure.oebin":
            raise RecordingError(f"{p}: expected a recording folder (for a raw binary file use "
                                 "open_flat_binary)")
        p = p.parent
    if any(p.glob("Record Node *")):
        p = _pick_node(p, node)
    elif node is not None:
        raise RecordingError(f"{p}: node={node!r} given but this folder holds no 'Record Node' "
                             "folders")
    if not _looks_like_data(p) and not (p / "structure.oebin").is_file():
        raise RecordingError(f"{p}: no Open Ephys recording found (expected 'Record Node …' "
                             "folders, experiment*/recording* folders, structure.oebin or "
                             "*.continuous files)")
    recordings = _tools_recordings(p)
    if not recordings:
        raise RecordingError(f"{p}: no recordings")
    rec = recordings[_pick(recordings, recording, "recording", p,
                           [_describe(r) for r in recordings])]
    fmt = str(getattr(rec, "format", "") or "")
    if (Path(rec.directory) / "structure.oebin").is_file() and hasattr(rec, "info"):
        infos = list(rec.info.get("continuous", []))
        if not infos:
            raise RecordingError(f"{rec.directory}: structure.oebin lists no continuous streams")
        names = [str(i.get("stream_name", i.get("folder_name"))) for i in infos]
        folders = [str(i.get("folder_name", "")).rstrip("/") for i in infos]
        if isinstance(stream, str) and stream.rstrip("/") in folders and stream not in names:
            k = folders.index(stream.rstrip("/"))
        else:
            k = _pick(infos, stream, "stream", Path(rec.directory), names)
        return BinaryStream(Path(rec.directory), infos[k], rec.info, allow_truncated)
    if hasattr(rec, "find_continuous_files"):
        streams = _legacy_streams(rec)
        if not streams:
            raise RecordingError(f"{rec.directory}: no continuous streams in this recording")
        names = [str(s[0].get("stream_name")) for s in streams]
        info, files, events = streams[_pick(streams, stream, "stream", Path(rec.directory), names)]
        return LegacyStream(Path(rec.directory), info, files, rec.recording_index, events,
                            allow_truncated)
    continuous = list(rec.continuous.values() if isinstance(rec.continuous, dict)
                      else rec.continuous or [])
    if not continuous:
        raise RecordingError(f"{rec.directory}: no continuous streams in this recording")
    names = [str(_meta(c, "stream_name")) for c in continuous]
    c = continuous[_pick(continuous, stream, "stream", Path(rec.directory), names)]
    return ToolsStream(Path(rec.directory), rec, c, fmt or "?")
