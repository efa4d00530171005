"""Open Ephys GUI remote control over its HTTP API (port 37497), via open-ephys-python-tools.

``sweepstim run --oe-host 127.0.0.1``:

1. before the window opens: the GUI must answer (``GET /api/status``) or the run stops;
2. before the first sweep: ``PUT /api/status {"mode": "RECORD"}`` (starts acquisition too),
   checked to have taken effect, then ``PUT /api/message`` with the session's identity
   (``sweepstim session=<id> script=<name> sha256=<12 hex> seed=<n> ...``), and the script
   text if asked (``--oe-post-script``); the Record Nodes save these messages with the data;
3. at the end (also after Esc or an error): the session's end message, and the GUI goes back to
   the mode it was in before (ACQUIRE or IDLE).

open-ephys-python-tools' ``OpenEphysHTTPServer`` hard-codes the port and sets no timeout, so
this module checks that the port accepts a connection (with a timeout) before each use and
points the client at ``http://HOST:PORT``.
"""

from __future__ import annotations

import socket
import time

DEFAULT_PORT = 37497


class OEControlError(RuntimeError):
    """The GUI cannot be reached or did not do what was asked."""


class OEControl:
    """Start/stop recording and post messages on one Open Ephys GUI."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 timeout_s: float = 2.0):
        from open_ephys.control import OpenEphysHTTPServer

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
        """Record (starting acquisition if needed); remember the mode to return to."""
        self.previous_mode = self.status()
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

    def message(self, text: str) -> None:
        """Broadcast a text message (saved by the Record Nodes while recording)."""
        self._call("message", self.gui.message, text)
        self.log.append(f"message: {text[:80]}")

    def stop_recording(self) -> None:
        """Back to the mode before :meth:`start_recording` (ACQUIRE or IDLE)."""
        target = self.previous_mode if self.previous_mode in ("IDLE", "ACQUIRE") else "IDLE"
        if target == "ACQUIRE":
            self._call("acquire", self.gui.acquire)
        else:
            self._call("idle", self.gui.idle)
        self.log.append(target.lower())

    def describe(self) -> dict:
        return {"host": self.host, "port": self.port, "previous_mode": self.previous_mode,
                "actions": list(self.log)}


def identity_message(meta: dict) -> str:
    """One-line session identity for the GUI's message log."""
    return (f"sweepstim session={meta['session_id']} script={meta['script']['name']} "
            f"sha256={meta['script']['sha256'][:12]} seed={meta['seed']} "
            f"stimulus={meta['stimulus']} conditions={meta['sweep_table']['n_conditions']} "
            f"sweeps={len(meta['sweep_table']['order'])}")
