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

The stimulus session file is read by :func:`oe_plugin.formats.session_file.read_session_file`
(re-exported here with :class:`StimulusSession` and :class:`SessionFileError`); the frame log
NPZ, if named and present, gives ``frame_number`` and ``code`` per flip
(:func:`compare_with_frame_log`).
"""

from __future__ import annotations

import math

import numpy as np

from oe_plugin.formats.session_file import (  # noqa: F401 - offline's names for the reader
    SessionFileError,
    StimulusSession,
    read_session_file,
)
from oe_plugin.protocol import DECODED_DTYPE, ProtocolSettings, decode_events


def compare_with_frame_log(frames: np.ndarray, frame_log: dict) -> dict:
    """Check decoded frames against the stimulus's frame log, by frame number.

    Parameters
    ----------
    frames : DECODED_DTYPE (n,) — decoded (online or offline).
    frame_log : dict with ``frame_number`` (int, per flip) and ``code`` (int32: sweep index,
        65535, 65534 START, 65533 END).

    Returns
    -------
    dict: ``matched`` (decoded frames whose frame number is in the log), ``agree`` (of those,
    with the logged sweep index; markers count as 65535), ``disagree_clean`` (indices into
    ``frames`` of frames that disagree without an error flag — should be empty), ``missing``
    (logged frame numbers never decoded; refreshes lost in transmission or outside the
    recording).
    """
    from oe_plugin.protocol.spec import ERROR_MASK
    from oe_plugin.protocol.verify import sent_sweeps

    log_fn = np.asarray(frame_log["frame_number"], np.int64)
    log_sweep = sent_sweeps(frame_log["code"])
    order = np.argsort(log_fn, kind="stable")
    log_fn, log_sweep = log_fn[order], log_sweep[order]
    fn = frames["frame_number"].astype(np.int64)
    pos = np.clip(np.searchsorted(log_fn, fn), 0, max(log_fn.size - 1, 0))
    matched = (log_fn.size > 0) & (log_fn[pos] == fn) if log_fn.size else np.zeros(fn.size, bool)
    agree = matched & (log_sweep[pos] == frames["sweep_index"])
    clean = (frames["flags"] & ERROR_MASK) == 0
    return {"matched": int(matched.sum()), "agree": int(agree.sum()),
            "disagree_clean": np.flatnonzero(matched & ~agree & clean),
            "missing": np.setdiff1d(log_fn, fn)}


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


def decode_ttl_experiments(events: np.ndarray, settings: ProtocolSettings,
                           sample_rate_hz: float) -> tuple[np.ndarray, list]:
    """As :func:`decode_ttl_events`, plus the experiments the decoder found: a list of
    ``(start_sample, session_code, status)``, one per START block (the first START refresh's
    sample; the code or None; ``"ok"``, ``"absent"`` (a version 1 stimulus) or ``"corrupt"``;
    see :mod:`oe_plugin.protocol.session_code`)."""
    if events.size == 0:
        return np.zeros(0, DECODED_DTYPE), []
    frames, dec = decode_events(settings, sample_rate_hz, events["sample_number"],
                                events["line"], events["state"])
    return frames, list(dec.experiments)


def session_code_of(raw: dict) -> int | None:
    """The session code a session file records (``ttl_protocol.session_code``), or None."""
    proto = raw.get("ttl_protocol") if isinstance(raw, dict) else None
    code = proto.get("session_code") if isinstance(proto, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


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
