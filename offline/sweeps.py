"""Offline sweep decoding: a recording's TTL events -> one record per refresh -> parameters.

The same decoder classes as the online module (:func:`oe_plugin.protocol.make_decoder`), fed the
recorded TTL events in sample order; so on the same recording the online file
(``offline.read_online_sweeps``) and :func:`decode_recording` agree frame for frame.

::

    frames = decode_recording("2024-05-01_12-00-00", session="drift.session.json")
    table = read_session_file("drift.session.json").sweep_table
    params = frame_parameters(frames, table)      # per refresh: sweep index and its values

The protocol settings come from, in order: the ``settings`` argument, the session file's
``ttl_protocol``, the header of an online sweep file in the recording folder, the defaults.

The stimulus session file (JSON) — only what this module relies on (docs/ttl-protocol.md)::

    {"format": "sweepsort stimulus session",   # optional
     "sweep_table": [{"ori": 0, "sfreqCycDeg": 0.1, ...},    # row i = sweep index i
                     {"ori": 30, "sfreqCycDeg": 0.1, ...}, ...],
     "ttl_protocol": {... ProtocolSettings fields, "protocol_version": 1},   # optional
     "seed": 1234}                               # optional, informative
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oe_plugin.protocol import DECODED_DTYPE, ProtocolSettings, decode_events
from oe_plugin.protocol.spec import MAX_SWEEP_INDEX


class SessionFileError(ValueError):
    """The stimulus session file is missing a key or has the wrong shape; the message says which."""


@dataclass(frozen=True)
class StimulusSession:
    """What the sweep decoder needs from a stimulus session file.

    sweep_table : list of dict, row ``i`` = the parameter values of sweep index ``i``.
    protocol : the TTL protocol settings the stimulus used (None if the file does not say).
    seed : the stimulus's random seed (None if absent).
    raw : the whole parsed JSON.
    """

    sweep_table: list
    protocol: ProtocolSettings | None = None
    seed: int | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def parameter_names(self) -> list[str]:
        names: list[str] = []
        for row in self.sweep_table:
            for k in row:
                if k not in names:
                    names.append(k)
        return names


def read_session_file(path) -> StimulusSession:
    """Read the sweep table (and, if present, the TTL protocol and seed) of a session file.

    Raises FileNotFoundError, SessionFileError (bad JSON, no ``sweep_table``, a row that is not
    an object, more rows than the protocol can index), or SettingsError (bad ``ttl_protocol``).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SessionFileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise SessionFileError(f"{path}: expected a JSON object at the top level")
    table = raw.get("sweep_table")
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
    return StimulusSession(table, protocol, int(seed) if isinstance(seed, int) else None, raw)


def protocol_from_online_file(recording_dir) -> ProtocolSettings | None:
    """The protocol stored in the first online sweep file under ``recording_dir``, if any."""
    from offline.online_sweeps import read_online_sweeps_meta

    try:
        metas = read_online_sweeps_meta(recording_dir)
    except FileNotFoundError:
        return None
    for meta in metas:
        if meta.get("protocol"):
            return ProtocolSettings.from_dict(meta["protocol"])
    return None


def decode_recording(path, settings: ProtocolSettings | None = None, *, session=None,
                     node=None, recording=None, stream=None) -> np.ndarray:
    """Decode the sweep TTLs of one stream of an Open Ephys recording.

    Parameters
    ----------
    path : a session, record node, experiment or recording folder
        (:func:`offline.recording.open_recording`).
    settings : ProtocolSettings, optional — else from ``session``, an online sweep file, or
        the defaults (see the module docstring).
    session : path of the stimulus session file, or a :class:`StimulusSession`, optional.
    node, recording, stream : which stream (as in ``open_recording``).

    Returns
    -------
    np.ndarray, DECODED_DTYPE, shape (n_frames,) — sample numbers on that stream.
    """
    from offline.recording import open_recording

    rec = open_recording(path, node=node, recording=recording, stream=stream)
    if settings is None and session is not None:
        sess = session if isinstance(session, StimulusSession) else read_session_file(session)
        settings = sess.protocol
    if settings is None:
        settings = protocol_from_online_file(path) or ProtocolSettings()
    return decode_ttl_events(rec.ttl_events(), settings, rec.sample_rate_hz)


def decode_ttl_events(events: np.ndarray, settings: ProtocolSettings,
                      sample_rate_hz: float) -> np.ndarray:
    """Decode TTL events (fields ``sample_number``, ``line`` 0-based, ``state``; sorted by
    sample number). Returns DECODED_DTYPE records; see :func:`decode_recording`."""
    if events.size == 0:
        return np.zeros(0, DECODED_DTYPE)
    frames, _dec = decode_events(settings, sample_rate_hz, events["sample_number"],
                                 events["line"], events["state"])
    return frames


def frame_parameters(frames: np.ndarray, sweep_table: list) -> dict[str, np.ndarray]:
    """Join decoded frames with the sweep table.

    Parameters
    ----------
    frames : DECODED_DTYPE (n,) — from :func:`decode_recording` or ``read_online_sweeps``.
    sweep_table : list of dict — row i = the parameters of sweep index i.

    Returns
    -------
    dict of arrays, each shape (n,): ``sample_number``, ``frame_number``, ``sweep_index``,
    ``flags`` (copied from ``frames``), ``in_table`` (bool: the frame shows a sweep of the
    table), and one array per parameter: float64 (NaN where no sweep is shown, the sweep is
    unknown, or the value is missing) when every value of that parameter is a number, else
    object (None there).
    """
    n_rows = len(sweep_table)
    sweep = frames["sweep_index"].astype(np.int64)
    in_table = (sweep >= 0) & (sweep < n_rows)
    out: dict[str, np.ndarray] = {name: frames[name].copy() for name in frames.dtype.names}
    out["in_table"] = in_table
    names: list[str] = []
    for row in sweep_table:
        for k in row:
            if k not in names:
                names.append(k)
    rows_idx = sweep[in_table]
    for name in names:
        column = [row.get(name) for row in sweep_table]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None
                      for v in column)
        if numeric:
            values = np.array([math.nan if v is None else float(v) for v in column], np.float64)
            arr = np.full(sweep.size, np.nan)
        else:
            values = np.empty(len(column), object)
            values[:] = column
            arr = np.full(sweep.size, None, dtype=object)
        if rows_idx.size:
            arr[in_table] = values[rows_idx]
        out[name] = arr
    return out
