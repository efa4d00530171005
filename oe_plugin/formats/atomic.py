"""Atomic file writes: the whole new file or the old one, never half of either.

Every file the project writes in one piece (sort file, Phy folder, session file, Open Ephys
``structure.oebin``, rig config) goes through :func:`atomic_write`: a temporary file in the same
folder, flushed and fsynced, then renamed over the target (``os.replace`` is atomic on POSIX and
Windows). The new file gets the mode a plain ``open()`` would give it (``0o666 & ~umask``), not
``mkstemp``'s 0o600, so another lab member can read it. Files that grow while the GUI runs (the
online outputs) are append-only instead, and the online statistics file rewrites a fixed-size
view in place; see :mod:`oe_plugin.outputs`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` filtered by this process's umask: what ``open()`` would give a new file."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mode & ~mask


def atomic_write(path, data) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: bytes, text (written as
    UTF-8), or a callable ``data(f)`` that writes into the open binary file (e.g. ``np.save``:
    a large array is streamed, not copied into memory first). On any error the temporary file
    is removed and ``path`` is left as it was."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fchmod(f.fileno(), umask_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
