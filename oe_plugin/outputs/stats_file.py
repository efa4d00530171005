"""The online statistics file: ``<recording_dir>/sweepsort/online_stats.npz``, rewritten atomically.

Written by the pipeline module every ``[stats] write_every_s`` seconds of data (and at the end
of a recording), read by ``sweepsort monitor``. Each write goes to a temporary file in the same
folder, then ``os.replace`` swaps it in: a reader sees the old or the new file, never half of
one. No ``fsync`` — the file is derived data, rewritten seconds later, and an fsync can block the
audio thread for tens of milliseconds.

Arrays (U units; row U / unit -1 = unsorted): ``time_counts`` (U+1, B) int64 spikes per time
bin, ``bin_s`` float64, ``sweep_counts`` (U+1, NS) int64 spikes per sweep index,
``sweep_seconds`` (NS,) float64 time each sweep index was on screen, ``no_sweep_counts``
(U+1,) int64, ``units`` (U+1,) int32, and ``meta``: a JSON string (format, sample rate,
samples processed, sort folder, stimulus session file, time written).
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

FORMAT = "sweepsort-online-stats"
FORMAT_VERSION = 1
FILE_NAME = "online_stats.npz"


def stats_path(recording_dir) -> Path:
    return Path(recording_dir) / "sweepsort" / FILE_NAME


def write_stats(path, arrays: dict, meta: dict) -> float:
    """Atomically replace ``path`` by an NPZ of ``arrays`` + ``meta``; returns seconds taken."""
    t0 = time.perf_counter()
    path = Path(path)
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION, written_unix_s=time.time())
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(buf.getbuffer())
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return time.perf_counter() - t0


def read_stats(path_or_recording_dir, retries: int = 5) -> tuple[dict, dict]:
    """(arrays, meta) of a stats file (or of the one under a recording directory)."""
    p = Path(path_or_recording_dir)
    if p.is_dir():
        hits = sorted(p.rglob(FILE_NAME), key=lambda q: q.stat().st_mtime)
        if not hits:
            raise FileNotFoundError(f"{p}: no {FILE_NAME} (is the pipeline module's [stats] "
                                    "stage on, and recording?)")
        p = hits[-1]
    elif not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (no online_stats.npz)")
    last = None
    for _ in range(max(1, retries)):
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != "meta"}
                meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{p}: not a {FORMAT} file")
            return arrays, meta
        except (OSError, ValueError, KeyError) as exc:  # replaced while we opened it: retry
            last = exc
            time.sleep(0.05)
    raise ValueError(f"{p}: unreadable ({last})")
