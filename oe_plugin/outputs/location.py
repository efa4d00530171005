"""Where the online files go: the one rule every module and ``sweepsort monitor`` use.

The Python Processor calls ``start_recording(name)`` with the recording folder's **bare name**
(plugin 0.1.0 passes ``CoreServices::getRecordingDirectoryName()``, e.g.
``2026-12-06_16-22-42``), not a path; a module that opened ``Path(name) / ...`` wrote into the
GUI's working directory. :func:`resolve_recording_folder` finds the real folder, in this order:

1. ``name`` is an absolute path of an existing folder: used as given (a future plugin may pass
   one);
2. the GUI's HTTP API (``GET http://127.0.0.1:<port>/api/recording``, ``port`` =
   ``[output] api_port``, else ``$SWEEPSORT_GUI_API_PORT``, else 37497; timeout
   ``[output] api_timeout_s`` <= 0.5 s): the folder is ``<parent_directory of the Record
   Node>/<name>`` — beside the Record Node's own ``Record Node N/`` folder. With several Record
   Nodes: ``[output] record_node`` if set, else the one downstream of the Python Processor
   (from ``GET /api/processors``: each processor's ``predecessor``), else the first. Its
   ``experiment_number`` and ``recording_number`` go into the files' headers;
3. ``[output] directory`` (relative to the settings file): ``<directory>/<name>``;
4. the fallback ``~/sweepsort-online/<name>`` (:data:`FALLBACK_PARENT`).

The answer is a :class:`RecordingTarget`; :meth:`RecordingTarget.describe` is the line a module
logs once per recording. Never call this from ``process()``: it may wait up to the timeout.

The API is asked with a plain socket (HTTP/1.0, no proxies, no imports at call time): in the GUI
``start_recording`` runs on the thread that changed the state (an HTTP worker when driven over
the API) without the GIL, where a lazily imported module or a lock wait could hang.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from oe_plugin.config import require

DEFAULT_API_PORT = 37497
API_PORT_ENV = "SWEEPSORT_GUI_API_PORT"
API_TIMEOUT_ENV = "SWEEPSORT_GUI_API_TIMEOUT_S"
"""Test hosts only: replaces ``[output] api_timeout_s`` (the host simulator sets it for its own
stand-in, whose thread can be slow to answer on a loaded machine; a real GUI never sets it)."""
"""Port of the GUI's HTTP API when ``[output] api_port`` is 0 (the host simulator sets it)."""
MAX_API_TIMEOUT_S = 0.5
FALLBACK_PARENT = Path("~") / "sweepsort-online"
"""Parent of the recording folder when neither the API nor ``[output] directory`` gives one."""
SUBDIR = "sweepsort"
"""The online files live in ``<recording folder>/sweepsort/``."""


class OutputFolderError(OSError):
    """The online files cannot be written where the rule says (reported once by a module)."""


class GuiApiError(OSError):
    """The GUI's HTTP API did not answer usefully (off, slow, not JSON, no record node)."""


@dataclass(frozen=True)
class OutputSettings:
    """TOML section ``[output]``: where the online files go (docs/plugin.md)."""

    directory: str = ""
    """Parent folder used when the GUI's HTTP API does not answer (relative to the settings
    file); the files go to ``<directory>/<recording folder name>/sweepsort/``."""
    use_gui_api: bool = True
    """Ask the GUI's HTTP API where the Record Node writes (false: skip to ``directory``)."""
    api_port: int = 0
    """The GUI's HTTP port (0: ``$SWEEPSORT_GUI_API_PORT`` or 37497)."""
    api_timeout_s: float = 0.5
    """Longest wait for the API in ``start_recording`` (at most 0.5 s)."""
    record_node: int = -1
    """Write beside this Record Node's data (its node id; -1: the one downstream of the Python
    Processor, else the first)."""

    def check(self, section: str = "output") -> None:
        require(0.0 < self.api_timeout_s <= MAX_API_TIMEOUT_S, f"{section}.api_timeout_s",
                f"must be in (0, {MAX_API_TIMEOUT_S}] s, got {self.api_timeout_s}")
        require(0 <= self.api_port <= 65535, f"{section}.api_port",
                f"must be 0 (default) or a port 1..65535, got {self.api_port}")
        require(self.record_node >= -1, f"{section}.record_node",
                f"must be -1 (automatic) or a node id, got {self.record_node}")


@dataclass(frozen=True)
class RecordingTarget:
    """The recording folder a module writes its ``sweepsort/`` files into, and how it was found.

    ``how``: ``"path"`` (given as an absolute path), ``"gui-api"``, ``"configured"``
    (``[output] directory``) or ``"fallback"``. ``record_node``, ``experiment_number``,
    ``recording_number``: from the API (None otherwise). ``notes``: why earlier branches were
    not taken, which Record Node was chosen and why.
    """

    path: Path
    name: str
    how: str
    record_node: int | None = None
    experiment_number: int | None = None
    recording_number: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def output_dir(self) -> Path:
        return self.path / SUBDIR

    def header(self) -> dict:
        """What the output files record about their recording (JSON-able)."""
        return {"recording_folder": str(self.path), "start_recording_arg": self.name,
                "resolved_by": self.how, "record_node": self.record_node,
                "experiment_number": self.experiment_number,
                "recording_number": self.recording_number}

    def describe(self) -> str:
        where = {"path": "the path start_recording gave",
                 "gui-api": "the GUI's HTTP API",
                 "configured": "[output] directory",
                 "fallback": "the fallback (no API answer, no [output] directory)"}[self.how]
        extra = ""
        if self.record_node is not None:
            extra = (f", Record Node {self.record_node} experiment {self.experiment_number} "
                     f"recording {self.recording_number}")
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"online files go to {self.output_dir} (from {where}{extra}){notes}"


def api_port(settings: OutputSettings | None = None) -> int:
    """The port to ask: ``[output] api_port``, else ``$SWEEPSORT_GUI_API_PORT``, else 37497."""
    if settings is not None and settings.api_port:
        return int(settings.api_port)
    env = os.environ.get(API_PORT_ENV, "").strip()
    if env.isdigit() and 0 < int(env) <= 65535:
        return int(env)
    return DEFAULT_API_PORT


def http_get_json(port: int, path: str, timeout_s: float, host: str = "127.0.0.1"):
    """``GET http://host:port/path`` -> parsed JSON, within ``timeout_s`` in all (connect, send,
    read). Raises :class:`GuiApiError` on any failure."""
    deadline = time.monotonic() + float(timeout_s)
    try:
        with socket.create_connection((host, int(port)), timeout=float(timeout_s)) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n"
                         "Accept: application/json\r\nConnection: close\r\n\r\n".encode("ascii"))
            chunks = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise GuiApiError(f"no complete answer within {timeout_s:g} s")
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except GuiApiError:
        raise
    except TimeoutError:
        raise GuiApiError(f"no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise GuiApiError(f"cannot connect ({exc.strerror or exc})") from None
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise GuiApiError("not an HTTP answer")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise GuiApiError(f"HTTP status {b' '.join(status[1:]).decode('latin-1')}")
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise GuiApiError(f"answer is not JSON: {exc}") from None


def _python_processors(processors) -> set[int]:
    out = set()
    for p in processors or []:
        if isinstance(p, dict) and "python" in str(p.get("name", "")).lower():
            try:
                out.add(int(p["id"]))
            except (KeyError, TypeError, ValueError):
                pass
    return out


def _downstream_of(node_id: int, python_ids: set[int], processors) -> bool:
    """Is a Python Processor among the predecessors of ``node_id``?"""
    pred = {}
    for p in processors or []:
        try:
            pred[int(p["id"])] = None if p.get("predecessor") is None else int(p["predecessor"])
        except (KeyError, TypeError, ValueError):
            continue
    seen, cur = set(), pred.get(node_id)
    while cur is not None and cur not in seen:
        if cur in python_ids:
            return True
        seen.add(cur)
        cur = pred.get(cur)
    return False


def choose_record_node(nodes: list, wanted: int = -1, processors=None) -> tuple[dict, str]:
    """Pick the Record Node (``record_nodes`` entries of ``/api/recording``): ``wanted`` if >= 0,
    else the first downstream of a Python Processor (``processors``: ``/api/processors``'s
    list), else the first. Returns ``(node, why)``; GuiApiError if there is none."""
    nodes = [n for n in nodes or [] if isinstance(n, dict) and "node_id" in n]
    if not nodes:
        raise GuiApiError("the signal chain has no Record Node")
    ids = [int(n["node_id"]) for n in nodes]
    if wanted >= 0:
        if wanted not in ids:
            raise GuiApiError(f"[output] record_node = {wanted}: the Record Nodes are {ids}")
        return nodes[ids.index(wanted)], f"Record Node {wanted} as configured"
    if len(nodes) == 1:
        return nodes[0], f"the only Record Node ({ids[0]})"
    python_ids = _python_processors(processors)
    for n, i in zip(nodes, ids, strict=True):
        if python_ids and _downstream_of(i, python_ids, processors):
            return n, f"Record Node {i}, downstream of the Python Processor, of {ids}"
    return nodes[0], f"the first Record Node ({ids[0]}) of {ids}: none found downstream"


def ask_gui(name: str, settings: OutputSettings) -> RecordingTarget:
    """Branch 2: the folder from the GUI's HTTP API (GuiApiError if it does not answer)."""
    port = api_port(settings)
    timeout_s = settings.api_timeout_s
    try:
        timeout_s = float(os.environ.get(API_TIMEOUT_ENV, "")) or timeout_s
    except ValueError:
        pass
    t_end = time.monotonic() + timeout_s
    info = http_get_json(port, "/api/recording", timeout_s)
    if not isinstance(info, dict):
        raise GuiApiError("/api/recording: not a JSON object")
    nodes = info.get("record_nodes") or []
    processors = None
    if settings.record_node < 0 and len(nodes) > 1:
        left = t_end - time.monotonic()
        if left > 0.01:
            try:
                answer = http_get_json(port, "/api/processors", left)
                processors = answer.get("processors") if isinstance(answer, dict) else None
            except GuiApiError:
                processors = None
    node, why = choose_record_node(nodes, settings.record_node, processors)
    parent = node.get("parent_directory") or info.get("parent_directory")
    if not parent:
        raise GuiApiError("/api/recording gives no parent_directory")

    def num(key):
        try:
            return int(node.get(key))
        except (TypeError, ValueError):
            return None

    return RecordingTarget(Path(str(parent)).expanduser() / name, name, "gui-api",
                           int(node["node_id"]), num("experiment_number"),
                           num("recording_number"), (why,))


def resolve_recording_folder(arg, settings: OutputSettings | None = None,
                             config_path=None) -> RecordingTarget:
    """The recording folder for ``start_recording(arg)`` by the rule of this module's docstring.

    ``settings``: the module's ``[output]`` (None: defaults); ``config_path``: its settings file
    (a relative ``directory`` is taken from there). Creates nothing; never raises for a missing
    API (the reason is kept in ``notes``).
    """
    settings = settings or OutputSettings()
    text = os.fspath(arg) if isinstance(arg, (str, os.PathLike)) else str(arg)
    given = Path(text).expanduser()
    notes: list[str] = []
    if given.is_absolute():
        if given.is_dir():
            return RecordingTarget(given, text, "path")
        notes.append(f"{given} does not exist")
    name = given.name or text
    if settings.use_gui_api:
        try:
            found = ask_gui(name, settings)
            return RecordingTarget(found.path, text, found.how, found.record_node,
                                   found.experiment_number, found.recording_number,
                                   tuple(notes) + found.notes)
        except GuiApiError as exc:
            notes.append(f"GUI HTTP API on port {api_port(settings)}: {exc}")
    else:
        notes.append("[output] use_gui_api = false")
    if settings.directory:
        base = Path(settings.directory).expanduser()
        if not base.is_absolute() and config_path is not None:
            base = Path(config_path).expanduser().resolve().parent / base
        return RecordingTarget(base / name, text, "configured", notes=tuple(notes))
    return RecordingTarget(FALLBACK_PARENT.expanduser() / name, text, "fallback",
                           notes=tuple(notes))


def find_output_folder(path) -> Path | None:
    """The recording folder holding ``sweepsort/`` for ``path``: the folder itself, an ancestor
    (``path`` may be a Record Node's ``experimentE/recordingR`` folder or the ``sweepsort``
    folder), or None."""
    p = Path(path).expanduser()
    for cand in [p, *p.parents][:5]:
        if cand.name == SUBDIR and cand.is_dir():
            return cand.parent
        if (cand / SUBDIR).is_dir():
            return cand
    return None
