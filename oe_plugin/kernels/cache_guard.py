"""Drop numba's on-disk cache when any kernel source changed.

numba caches a compiled function next to its source (``__pycache__/*.nbi`` / ``*.nbc``) and
reuses it as long as *that function's own file* is unchanged: the machine code of the functions
it calls from other files is baked in and never re-checked (numba/numba#8396, not merged).
After ``git pull`` in a checkout, a changed ``bandpass.py`` would leave ``detect_kernel.py``'s
cached ``detect_block`` running the old filter code, fix or no fix. Installing with pip rewrites
every file, which invalidates everything; a checkout does not.

:func:`check` hashes the sources of the packages whose cached functions call across files
(``oe_plugin/kernels``, ``oe_plugin/online``) and, when the digest differs from the one stamped
in ``oe_plugin/kernels/__pycache__``, deletes their numba cache files first. It runs once, when
``oe_plugin.kernels`` is imported (every cached kernel imports it first), costs ~1 ms, and never
raises: a read-only install simply keeps numba's own behaviour.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
GUARDED = ("kernels", "online")
STAMP_NAME = "sweepsort-numba-sources.sha256"


def sources_digest(dirs) -> str:
    """SHA-256 over the names and contents of the ``*.py`` files in ``dirs`` (sorted)."""
    h = hashlib.sha256()
    for d in dirs:
        for path in sorted(Path(d).glob("*.py")):
            h.update(path.name.encode())
            h.update(b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def clear_if_changed(dirs, stamp: Path) -> bool:
    """Delete ``dirs``' numba cache files when their sources' digest differs from ``stamp``'s
    content, then write the new digest (atomically). Returns True when the cache was cleared."""
    digest = sources_digest(dirs)
    try:
        if stamp.read_text(encoding="ascii").strip() == digest:
            return False
    except OSError:
        pass
    for d in dirs:
        cache = Path(d) / "__pycache__"
        for pattern in ("*.nbi", "*.nbc"):
            for f in cache.glob(pattern):
                try:
                    f.unlink()
                except OSError:
                    pass
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(digest + "\n", encoding="ascii")
    os.replace(tmp, stamp)
    return True


def check() -> None:
    """:func:`clear_if_changed` for this package; never raises."""
    try:
        clear_if_changed([PACKAGE / d for d in GUARDED],
                         PACKAGE / "kernels" / "__pycache__" / STAMP_NAME)
    except Exception:  # noqa: BLE001 - a read-only or odd install keeps numba's own checks
        pass
