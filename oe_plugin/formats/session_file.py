"""Reading a stimulus session file: what was shown, when, and how to rebuild it.

``sweepstim`` writes two files side by side (:func:`stimulus.session_file.write_session`, both
atomically, the JSON last): ``NAME.session.json`` (the script, its seed, the resolved
parameters, the sweep table, the TTL protocol, a summary of the frame log) and
``NAME.frames.npz`` (the frame log, one row per flip). The whole layout is in
:mod:`stimulus.session_file` and docs/stimulus.md; this reader needs only::

    {"sweep_table": [{"ori": 0, "sfreqCycDeg": 0.1, ...},    # row i = sweep index i
                     {"ori": 30, "sfreqCycDeg": 0.1, ...}, ...],
     "ttl_protocol": {... ProtocolSettings fields, "protocol_version": 2,   # optional
                      "session_code": 11259375},  # the code sent in the START block (v2)
     "seed": 1234,                                # optional: the random seed the order was
                                                  # shuffled with (same script + seed = same table)
     "frames": {"file": "NAME.frames.npz"}}       # optional: the frame log next to it

``sweep_table`` may also be an object holding that list as ``conditions`` (what ``sweepstim``
writes). numpy and json only: the online modules read session files without ``offline``
or ``stimulus``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oe_plugin.protocol.spec import MAX_SWEEP_INDEX, ProtocolSettings

FORMAT = "sweepstim-session"
FORMAT_VERSION = 1
JSON_SUFFIX = ".session.json"
NPZ_SUFFIX = ".frames.npz"


OLD_TOP_KEYS = {"preexp_sec": "preexp_s", "postexp_sec": "postexp_s"}
OLD_FRAMES_KEYS = {"planned_duration_sec": "planned_duration_s"}
OLD_BLANKS_KEYS = {"sec": "duration_s"}
OLD_PARAMS = {"sweep_sec": "sweep_s", "postsweep_sec": "postsweep_s"}
"""Names renamed since (seconds are ``_s`` everywhere): top-level keys, keys of ``frames`` and
``blanks``, and sweep parameters (in ``static``, ``dynamic``, the conditions and ``dims``); a
file with the old names reads as if it had the new ones."""


class SessionFileError(ValueError):
    """The stimulus session file is missing a key or has the wrong shape; the message says which."""


@dataclass(frozen=True)
class StimulusSession:
    """A stimulus session file as read.

    sweep_table : list of dict, row ``i`` = the parameter values of sweep index ``i``.
    protocol : the TTL protocol settings the stimulus used (None if the file does not say).
    seed : the stimulus's random seed (None if absent).
    frame_log : dict of arrays from the frame-log NPZ (``frame_number``, ``code``, ...), or
        None when the file names none or it is missing.
    raw : the whole parsed JSON.
    path : the JSON file.
    """

    sweep_table: list
    protocol: ProtocolSettings | None = None
    seed: int | None = None
    frame_log: dict | None = field(default=None, repr=False)
    raw: dict = field(default_factory=dict, repr=False)
    path: Path | None = None


def paths_for(path: str | Path) -> tuple[Path, Path]:
    """(json path, npz path) for a session path given with or without the suffix."""
    path = Path(path)
    name = path.name
    stem = name[: -len(JSON_SUFFIX)] if name.endswith(JSON_SUFFIX) else (
        name[: -len(".json")] if name.endswith(".json") else name)
    return path.with_name(stem + JSON_SUFFIX), path.with_name(stem + NPZ_SUFFIX)


def read_session_file(path) -> StimulusSession:
    """Read the sweep table (and, if present, the TTL protocol, the random seed and the frame
    log) of a session file; ``frames`` keys renamed since read under their new names.

    Raises FileNotFoundError, SessionFileError (bad JSON, no
    ``sweep_table``, a row that is not an object, more rows than the protocol can index, an
    unreadable frame log), or SettingsError (bad ``ttl_protocol``).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SessionFileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise SessionFileError(f"{path}: expected a JSON object at the top level")
    _upgrade_names(raw)
    table = raw.get("sweep_table")
    if isinstance(table, dict) and "conditions" in table:
        table = table["conditions"]
    if table is None:
        raise SessionFileError(f"{path}: no 'sweep_table' (a list with one object of parameter "
                               "values per sweep index)")
    if not isinstance(table, list) or not all(isinstance(r, dict) for r in table):
        raise SessionFileError(f"{path}: 'sweep_table' must be a list of objects "
                               "(row i = the parameters of sweep index i)")
    if len(table) > MAX_SWEEP_INDEX + 1:
        raise SessionFileError(f"{path}: {len(table)} sweeps; the protocol indexes at most "
                               f"{MAX_SWEEP_INDEX + 1}")
    protocol = None
    if raw.get("ttl_protocol") is not None:
        protocol = ProtocolSettings.from_dict(raw["ttl_protocol"], "ttl_protocol")
    seed = raw.get("seed")
    frame_log = None
    frames_meta = raw.get("frames")
    if isinstance(frames_meta, dict) and isinstance(frames_meta.get("file"), str):
        npz = path.with_name(Path(frames_meta["file"]).name)
        if npz.exists():
            try:
                with np.load(npz, allow_pickle=False) as z:
                    frame_log = {k: z[k] for k in z.files}
            except (ValueError, OSError, zipfile.BadZipFile) as exc:
                raise SessionFileError(f"{npz}: unreadable frame log ({exc})") from None
    return StimulusSession(table, protocol, int(seed) if isinstance(seed, int) else None,
                           frame_log, raw, path)


def _renamed(d, names: dict):
    """``d`` (a dict: keys renamed, order kept, a new key already there wins) or as it is."""
    if not isinstance(d, dict) or not any(k in d for k in names):
        return d
    out = {}
    for k, v in d.items():
        new = names.get(k, k)
        if new != k and new in d:
            continue
        out[new] = v
    return out


def _upgrade_names(raw: dict) -> None:
    """Rename, in place, what a file written before the ``_sec`` -> ``_s`` rename calls by the
    old names (:data:`OLD_PARAMS` and the others)."""
    new = _renamed(raw, OLD_TOP_KEYS)
    if new is not raw:
        raw.clear()
        raw.update(new)
    for key, names in (("frames", OLD_FRAMES_KEYS), ("blanks", OLD_BLANKS_KEYS),
                       ("static", OLD_PARAMS), ("dynamic", OLD_PARAMS)):
        if key in raw:
            raw[key] = _renamed(raw[key], names)
    table = raw.get("sweep_table")
    rows = table.get("conditions") if isinstance(table, dict) else table
    if isinstance(rows, list):
        rows[:] = [_renamed(r, OLD_PARAMS) for r in rows]
    if isinstance(table, dict) and isinstance(table.get("dims"), list):
        for dim in table["dims"]:
            if isinstance(dim, dict) and isinstance(dim.get("names"), list):
                dim["names"] = [OLD_PARAMS.get(n, n) for n in dim["names"]]
