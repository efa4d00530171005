"""Open Ephys GUI remote control over its HTTP API (port 37497), via open-ephys-python-tools.

``sweepstim run --oe-host 127.0.0.1``:

1. before the window opens: the GUI must answer (``GET /api/status``) or the run stops;
2. before the first sweep: ``PUT /api/status {"mode": "RECORD"}`` (starts acquisition too),
   checked to have taken effect, then ``PUT /api/message`` with the session's identity
   (``sweepstim session=<id> script=<name> sha256=<12 hex> seed=<n> ...``), and the script
   text if asked (``--oe-post-script``); the Record Nodes save these messages with the data;
3. at the end (also after Esc or an error): the session's end message, and the GUI goes back to
   the mode it was in before (ACQUIRE or IDLE).

Messages are paced: GUI 0.6's Message Center keeps only the latest message posted over HTTP (a
broadcast) and emits it at most once per processing block, so posts are spaced by
``message_gap_s`` (0.1 s, more than two blocks at the usual buffer sizes) and the GUI stays in
RECORD that long after the last one. GUI 0.6.7 still did not save them in a test (issue 17): the
TTL session code is the link between a recording and its session file, the messages a bonus.

:meth:`OEControl.start_recording` also notes the GUI's ``GET /api/recording``
``parent_directory`` and the folder that appears there once recording has started
(:attr:`OEControl.recording_dir`), so that sweepstim can put the session file next to the
recording (:func:`stimulus.oe_recording.place_session_file`).

open-ephys-python-tools' ``OpenEphysHTTPServer`` hard-codes the port and sets no timeout, so
this module checks that the port accepts a connection (with a timeout) before each use and
points the client at ``http://HOST:PORT``.
"""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.request
from pathlib import Path

DEFAULT_PORT = 37497
MESSAGE_GAP_S = 0.1
"""Seconds between two message posts, and after the last one before leaving RECORD."""
FOLDER_WAIT_S = 3.0
"""How long to wait for the new recording folder to appear after RECORD started."""


class OEControlError(RuntimeError):
    """The GUI cannot be reached or did not do what was asked."""


class OEControl:
    """Start/stop recording and post messages on one Open Ephys GUI."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 timeout_s: float = 2.0, message_gap_s: float = MESSAGE_GAP_S):
        from open_ephys.control import OpenEphysHTTPServer

        self.message_gap_s = float(message_gap_s)
        self._last_post = -math.inf
        self.parent_directory: Path | None = None
        """The GUI's recording parent folder (``GET /api/recording``), if it answered."""
        self.recording_dir: Path | None = None
        """The folder that appeared under it after RECORD started, if one did."""
        self.recording_note = ""
        """Why :attr:`recording_dir` is None (for the user)."""
        self._folders_before: set[str] | None = None

        self.host = host
        self.port = int(port)
        self.timeout_s = timeout_s
        self.gui = OpenEphysHTTPServer(host)
        self.gui.address = f"http://{host}:{self.port}"
        self.previous_mode: str | None = None
        self.log: list[str] = []

    def _reachable(self) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                pass
        except OSError as exc:
            raise OEControlError(f"Open Ephys GUI not reachable at {self.host}:{self.port} "
                                 f"({exc}); is its HTTP server on (File menu)?") from None

    def _call(self, what: str, fn, *args):
        self._reachable()
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the client raises anything on failure
            raise OEControlError(f"Open Ephys GUI: {what} failed: {exc}") from None

    def status(self) -> str:
        """IDLE, ACQUIRE or RECORD."""
        mode = self._call("status", self.gui.status)
        if mode not in ("IDLE", "ACQUIRE", "RECORD"):
            raise OEControlError(f"Open Ephys GUI: unexpected status {mode!r}")
        return mode

    def start_recording(self) -> None:
        """Record (starting acquisition if needed); remember the mode to return to, and the
        recording's new folder if this computer can see it (:attr:`recording_dir`)."""
        self.previous_mode = self.status()
        self._note_parent()
        self._call("record", self.gui.record)
        deadline = time.monotonic() + self.timeout_s
        while True:
            mode = self.status()
            if mode == "RECORD":
                break
            if time.monotonic() > deadline:
                raise OEControlError(f"Open Ephys GUI did not start recording (mode {mode}); "
                                     f"is there a Record Node in the signal chain?")
            time.sleep(0.05)
        self.log.append("record")
        self._find_new_folder()

    def _note_parent(self) -> None:
        """``GET /api/recording`` -> parent_directory, and the folders it holds now."""
        self.parent_directory = self.recording_dir = None
        self._folders_before = None
        try:
            url = f"http://{self.host}:{self.port}/api/recording"
            with urllib.request.urlopen(url, timeout=self.timeout_s) as r:  # noqa: S310
                info = json.loads(r.read().decode("utf-8"))
            parent = info.get("parent_directory") if isinstance(info, dict) else None
        except (OSError, ValueError) as exc:
            self.recording_note = f"the GUI did not say where it records (/api/recording: {exc})"
            return
        if not isinstance(parent, str) or not parent:
            self.recording_note = "the GUI's /api/recording names no parent_directory"
            return
        self.parent_directory = Path(parent)
        try:
            self._folders_before = {p.name for p in self.parent_directory.iterdir()
                                    if p.is_dir()}
        except OSError as exc:
            self.recording_note = (f"the GUI records under {parent}, which this computer cannot "
                                   f"read ({exc.strerror or exc})")

    def _find_new_folder(self) -> None:
        """The folder that appeared under the parent after RECORD started (waits a little)."""
        if self._folders_before is None:
            return
        deadline = time.monotonic() + FOLDER_WAIT_S
        while True:
            try:
                new = sorted(p for p in self.parent_directory.iterdir()
                             if p.is_dir() and p.name not in self._folders_before)
            except OSError:
                new = []
            if len(new) == 1:
                self.recording_dir = new[0]
                return
            if len(new) > 1:
                self.recording_note = (f"{len(new)} new folders appeared under "
                                       f"{self.parent_directory}: cannot tell which is the "
                                       f"recording")
                return
            if time.monotonic() > deadline:
                self.recording_note = (f"no new folder appeared under {self.parent_directory} "
                                       f"within {FOLDER_WAIT_S:g} s (the GUI records elsewhere, "
                                       f"e.g. on another computer)")
                return
            time.sleep(0.05)

    def _pace(self) -> None:
        """Wait until ``message_gap_s`` has passed since the last post."""
        wait = self._last_post + self.message_gap_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def message(self, text: str) -> None:
        """Broadcast a text message (paced: see the module docstring)."""
        self._pace()
        self._call("message", self.gui.message, text)
        self._last_post = time.monotonic()
        self.log.append(f"message: {text[:80]}")

    def stop_recording(self) -> None:
        """Back to the mode before :meth:`start_recording` (ACQUIRE or IDLE), once the last
        message had its chance to be emitted while recording."""
        self._pace()
        target = self.previous_mode if self.previous_mode in ("IDLE", "ACQUIRE") else "IDLE"
        if target == "ACQUIRE":
            self._call("acquire", self.gui.acquire)
        else:
            self._call("idle", self.gui.idle)
        self.log.append(target.lower())

    def describe(self) -> dict:
        return {"host": self.host, "port": self.port, "previous_mode": self.previous_mode,
                "actions": list(self.log),
                "parent_directory": None if self.parent_directory is None
                else str(self.parent_directory),
                "recording_dir": None if self.recording_dir is None
                else str(self.recording_dir)}


def identity_message(meta: dict) -> str:
    """One-line session identity for the GUI's message log."""
    return (f"sweepstim session={meta['session_id']} script={meta['script']['name']} "
            f"sha256={meta['script']['sha256'][:12]} seed={meta['seed']} "
            f"stimulus={meta['stimulus']} conditions={meta['sweep_table']['n_conditions']} "
            f"sweeps={len(meta['sweep_table']['order'])}")
