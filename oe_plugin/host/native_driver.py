"""The Python side of the native runner (``native/runner.c``); not for direct use.

The runner's main thread (holding the GIL, like the GUI's message thread) calls :func:`setup`
with the job file, then its GIL-less "audio thread" calls :func:`step` until it returns a
negative number, then the main thread calls :func:`finish`. The session logic is the
simulator's own (:class:`~.session.SessionRunner` over a :class:`~.simulator.Host`), with two
differences: every module call is announced to the runner's watchdog
(``_sweepsort_runner.mark``), and module exceptions are **not** caught (``raw_exceptions``) —
one escaping ``step()`` is the crash the runner reports.

Job file (JSON, written by :func:`oe_plugin.host.native.run_native`)::

    {"module": PATH, "source": SOURCE_SPEC, "blocks": POLICY_SPEC, "config_path": PATH|null,
     "recording_dir": PATH|null, "record": [START, STOP]|null, "keep_downstream": false,
     "report_path": PATH, "site_dirs": [PATH, ...], "gui_api": PORT|"off",
     "folder_arg": "name"|"path", "record_data": false}

The GUI's HTTP API stand-in cannot be served from the runner (its main thread never gives the
GIL to another Python thread): the parent serves it and passes its port.
"""

from __future__ import annotations

import json
import os
import site
import sys
import traceback
from pathlib import Path

EXIT_JOB_ERROR = 2
EXIT_IMPORT_FAILED = 3
EXIT_INIT_FAILED = 4

_runner = None
_job: dict = {}


def setup(job_path: str) -> int:
    """Main thread: read the job, build the source and ``PyProcessor``. Returns an exit code."""
    global _runner, _job
    try:
        _job = json.loads(Path(job_path).read_text())
        for d in _job.get("site_dirs", []):
            site.addsitedir(d)          # process .pth files (editable installs) like a venv
        from .blocks import policy_from_spec
        from .errors import ModuleImportError, ModuleInitError
        from .session import CONFIG_ENV_VAR, SessionRunner
        from .simulator import Host
        from .sources import source_from_spec

        source = source_from_spec(_job["source"])
        policy = policy_from_spec(_job["blocks"])
        if _job.get("config_path"):
            os.environ[CONFIG_ENV_VAR] = str(_job["config_path"])
    except Exception:  # noqa: BLE001 - reported, and the runner exits with EXIT_JOB_ERROR
        traceback.print_exc()
        print("sweepsort-runner: the job could not be set up", file=sys.stderr)
        return EXIT_JOB_ERROR
    try:
        import _sweepsort_runner

        mark = _sweepsort_runner.mark
    except ImportError:     # run outside the runner (debugging): no watchdog
        mark = None
    try:
        host = Host(_job["module"], source.n_channels, source.sample_rate_hz, on_call=mark,
                    raw_exceptions=True, gui_api=_job.get("gui_api", "off"),
                    folder_arg=_job.get("folder_arg", "name"),
                    record_data=bool(_job.get("record_data", False)))
    except ModuleImportError:
        traceback.print_exc()
        return EXIT_IMPORT_FAILED
    except ModuleInitError:
        traceback.print_exc()
        return EXIT_INIT_FAILED
    try:
        record = _job.get("record")
        _runner = SessionRunner(host, source, policy, recording_dir=_job.get("recording_dir"),
                                record=None if record is None else tuple(record),
                                keep_downstream=bool(_job.get("keep_downstream")),
                                on_call=mark, runner="native")
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return EXIT_JOB_ERROR
    return 0


def step() -> float:
    """Audio thread, no GIL: the next call of the session (no exception handling here)."""
    return _runner.step()


def finish() -> None:
    """Main thread, after the audio thread ended: write the report."""
    _runner.report().save_npz(_job["report_path"])
    sys.stdout.flush()
    sys.stderr.flush()
