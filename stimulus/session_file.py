"""The stimulus session file: what was shown, when, and how to rebuild it.

Two files side by side, both written atomically (temporary file + rename; the JSON last, so
a JSON that exists always points at a complete NPZ); no pickle anywhere:

``NAME.session.json`` (UTF-8)::

    format "sweepstim-session", format_version 1, software {sweepsort, python, pyglet},
    session_id, created_utc, status ("completed" | "cancelled" | "failed" | "dry-run"), error,
    script {path, sha256, text}, seed,
    stimulus, static {...}, dynamic {name: value | {"values", "dim", "shuffle"}},
    runs {n, reshuffle}, blanks {every, duration_s, shuffle} | null, preexp_s, postexp_s,
    sweep_table {n_conditions, conditions [ {param: value} per sweep index ],
                 dims [ {index, script_dim, names, n, shuffle} ], dim_index [[...]],
                 order [sweep index or 65535 per presented sweep], run [...]},
    rig {screen {...}, timing {...}, config_path}, display {...},
    ttl_protocol {ProtocolSettings.to_dict(), incl. protocol_version, session_code},
    ttl_backend {...},
    ttl_errors [...],
    frames {file, n_logged, n_plan, n_dropped, n_missed_refreshes, dropped_plan_index [...],
            refresh_hz},
    open_ephys {...} | null

``NAME.frames.npz`` (numpy arrays, ``allow_pickle=False`` readable):

- frame log, one row per flip: ``flip_time_s`` float64, ``interval_s`` float64 (NaN first),
  ``frame_number`` int64 (TTL protocol frame number), ``code`` int32 (sent code: sweep index,
  65535 none, 65534 START, 65533 END), ``plan_index`` int64 (-1: marker/pause), ``dropped``;
- the plan, one row per planned refresh: ``plan_code`` int32, ``plan_presentation`` int32,
  ``plan_frame_in_sweep`` int32, ``plan_phase`` uint8 (0 pre, 1 stimulus, 2 post-sweep,
  3 blank, 4 post).

Joining with the recording: the decoder yields (sample_number, frame_number, sweep_index) per
refresh; ``frame_number`` matches the log's, and ``sweep_table.conditions[sweep_index]`` gives
the parameter values.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oe_plugin.formats.atomic import atomic_write
from oe_plugin.formats.session_file import (  # noqa: F401 - the format's names, for the writer
    FORMAT,
    FORMAT_VERSION,
    JSON_SUFFIX,
    NPZ_SUFFIX,
    paths_for,
)


@dataclass
class Session:
    """A loaded session: the JSON metadata and the frame arrays."""

    meta: dict
    frames: dict[str, np.ndarray]
    path: Path

    def condition(self, sweep_index: int) -> dict:
        return self.meta["sweep_table"]["conditions"][sweep_index]


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_session(path: str | Path, meta: dict, frames: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-ready, numpy scalars allowed) and ``frames`` atomically.

    Returns the JSON path. The NPZ's file name is stored in ``meta["frames"]["file"]``.
    """
    json_path, npz_path = paths_for(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in frames.items()})
    atomic_write(npz_path, buf.getvalue())
    meta = dict(meta)
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    meta.setdefault("frames", {})
    meta["frames"] = {**meta["frames"], "file": npz_path.name}
    text = json.dumps(meta, indent=1, default=_jsonable, allow_nan=False)
    atomic_write(json_path, text.encode("utf-8"))
    return json_path


def load_session(path: str | Path) -> Session:
    """Read a session written by :func:`write_session` (no code is executed)."""
    json_path, _ = paths_for(path)
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a sweepstim session file")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{json_path}: format version {meta['format_version']} is newer than "
                         f"this sweepsort reads ({FORMAT_VERSION})")
    npz_path = json_path.with_name(meta["frames"]["file"])
    with np.load(npz_path, allow_pickle=False) as z:
        frames = {k: z[k] for k in z.files}
    return Session(meta, frames, json_path)
