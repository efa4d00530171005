"""The session file next to the recording: ``<recording folder>/sweepsort/stimulus/``.

With ``--oe-host``, :class:`~stimulus.oe_control.OEControl` learns the GUI's recording parent
(``GET /api/recording``) and the folder that appeared there after RECORD started. When this
computer can write there (the same machine, or a shared drive mounted at the same path), the
session file is also written into that folder's ``sweepsort/stimulus/``, where ``sweepsort``
finds it (``Recording.experiments`` looks for ``*.session.json`` anywhere below the recording
folder). Otherwise the user is told where to copy it.
"""

from __future__ import annotations

import os
from pathlib import Path

SUBDIR = Path("sweepsort") / "stimulus"


def place_session_file(oe, json_path: Path, meta: dict, frames: dict) -> str:
    """Write the session again next to the recording if possible; returns a line for the user
    (where it went, or where to copy it). Never raises for a folder problem."""
    from stimulus.session_file import JSON_SUFFIX, NPZ_SUFFIX, write_session

    stem = json_path.name[: -len(JSON_SUFFIX)]
    names = f"{json_path.name} and {stem}{NPZ_SUFFIX}"
    rec = getattr(oe, "recording_dir", None)
    if rec is not None and os.access(rec, os.W_OK):
        target = Path(rec) / SUBDIR / json_path.name
        try:
            write_session(target, meta, frames)
            return f"session file also written next to the recording: {target}"
        except OSError as exc:
            why = f"writing {target} failed ({exc.strerror or exc})"
    elif rec is not None:
        why = f"{rec} is not writable from this computer"
    else:
        why = getattr(oe, "recording_note", "") or "the recording folder is unknown"
    parent = getattr(oe, "parent_directory", None)
    where = (f"{rec / SUBDIR}" if rec is not None else
             f"{parent}/<this recording's folder>/{SUBDIR.as_posix()}" if parent is not None
             else f"<the recording's folder>/{SUBDIR.as_posix()}")
    return (f"{why}: copy {names} to {where} on the recording computer (the TTL session code "
            f"links them to the recording wherever they are)")
