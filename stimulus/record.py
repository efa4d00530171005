"""The session file's metadata, assembled from a prepared experiment and its run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from stimulus.runner import Prepared, RunResult
from stimulus.script import Variable
from stimulus.ttl.encoding import session_code_for


def software_versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("sweepsort", "pyglet", "numpy", "pyserial", "open-ephys-python-tools"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def session_id(p: Prepared, when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now()
    return f"{Path(p.loaded.path).stem}_{when:%Y%m%d_%H%M%S}_{p.seed}"


def default_session_path(p: Prepared, sid: str, out: str | None) -> Path:
    """``--out`` as given (a directory or a file name), else the current directory."""
    if out is None:
        return Path.cwd() / f"{sid}.session.json"
    path = Path(out)
    if path.is_dir() or out.endswith(("/", "\\")):
        return path / f"{sid}.session.json"
    return path


def build_meta(p: Prepared, sid: str, *, status: str, result: RunResult | None = None,
               display: dict | None = None, ttl_backend: dict | None = None,
               open_ephys: dict | None = None, error: str | None = None) -> dict:
    """The JSON half of the session file (see :mod:`stimulus.session_file`)."""
    exp = p.loaded.experiment
    t = p.table
    dynamic = {k: (v.to_dict() if isinstance(v, Variable) else v)
               for k, v in p.validated.dynamic.items()}
    frames: dict = {"n_plan": p.plan.n_frames, "refresh_hz": p.plan.refresh_hz,
                    "planned_duration_s": p.plan.duration_s}
    if result is not None:
        log = result.log
        dropped = np.flatnonzero(log["dropped"])
        frames.update(n_logged=int(log["flip_time_s"].size), n_dropped=result.n_dropped,
                      n_missed_refreshes=result.n_missed,
                      dropped_plan_index=log["plan_index"][dropped].tolist(),
                      dropped_flip=dropped.tolist())
    return {
        "session_id": sid,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "software": software_versions(),
        "status": status,
        "error": error,
        "script": {"path": str(Path(p.loaded.path).resolve()), "name": Path(p.loaded.path).name,
                   "sha256": p.loaded.sha256, "text": p.loaded.text},
        "seed": p.seed,
        "stimulus": exp.stimulus,
        "static": p.validated.static,
        "dynamic": dynamic,
        "runs": dataclasses.asdict(exp.runs),
        "blanks": dataclasses.asdict(exp.blanks) if exp.blanks else None,
        "preexp_s": exp.preexp_s,
        "postexp_s": exp.postexp_s,
        "sweep_table": {"n_conditions": t.n_conditions, "conditions": list(t.conditions),
                        **t.structure(), "order": t.order.tolist(), "run": t.run.tolist()},
        "rig": {"screen": dataclasses.asdict(p.rig.screen),
                "timing": dataclasses.asdict(p.rig.timing), "config_path": p.rig.path,
                "geometry": dataclasses.asdict(p.ctx.geometry)},
        "display": display or {},
        "ttl_protocol": {**p.protocol.to_dict(),
                         "session_code": session_code_for(p.protocol, sid)},
        "ttl_backend": ttl_backend or {},
        "ttl_errors": list(result.ttl_errors) if result else [],
        "frames": frames,
        "open_ephys": open_ephys,
    }
