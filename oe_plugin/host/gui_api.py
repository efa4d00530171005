"""A loopback stand-in for the GUI's HTTP API, as much of it as a module asks.

The GUI serves ``http://127.0.0.1:37497/api/...`` (File menu: on by default). A module asks
``GET /api/recording`` in ``start_recording`` to find the folder the recording goes to
(:mod:`oe_plugin.outputs.location`); the answer (GUI 0.6, ``OpenEphysHttpServer``) is::

    {"parent_directory": "/data", "base_text": "", "prepend_text": "", "append_text": "",
     "record_nodes": [{"node_id": 101, "parent_directory": "/data", "record_engine": "BINARY",
                       "experiment_number": 1, "recording_number": 1,
                       "is_synchronized": true}]}

and ``GET /api/processors`` lists the signal chain (``{"processors": [{"id", "name",
"predecessor"}, ...]}``), from which a module tells which Record Node is downstream of it.

It also answers what ``sweepstim --oe-host`` uses: ``GET/PUT /api/status`` (``{"mode": IDLE |
ACQUIRE | RECORD}``) and ``PUT /api/message`` (``{"text": ...}``), with the GUI's Message
Center behaviour **by default** (GUI 0.6 source; seen with a real GUI 0.6.7, issue 17): a
message posted over HTTP is a *broadcast* message; the Message Center keeps only the latest
outgoing one and emits it at most once per processing block (``block_s``), and the Record Nodes
save it only if that block is recorded. So a message posted less than a block after another
replaces it, and one posted right before leaving RECORD is lost. :attr:`saved_messages` is what
the recording's ``MessageCenter`` events would hold; ``message_center=False`` saves every post
at once (a GUI that never loses one -- not the real one).

:class:`GuiApiStandIn` serves both from a thread on ``127.0.0.1`` and an ephemeral port (never
another interface), with a settable ``delay_s`` (a slow GUI) and ``status`` (an error answer).
The host simulator starts one per :class:`~oe_plugin.host.simulator.Host` and points modules at
it through ``$SWEEPSORT_GUI_API_PORT``; :func:`closed_port` gives a port nobody listens on (the
API switched off).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PYTHON_PROCESSOR_ID = 102


def closed_port() -> int:
    """A loopback port with nothing listening on it (a connection is refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GuiApiStandIn:
    """``GET /api/recording`` and ``GET /api/processors`` on ``127.0.0.1:<port>``.

    ``record_nodes``: the Record Nodes as ``[{node_id, parent_directory, ...}]`` (defaults are
    filled in); ``parent_directory``: the GUI's default parent; ``processors``: the signal chain
    (None: source 100 -> Python Processor 102 -> each Record Node, in a line). ``requests``
    counts the answered requests per path.
    """

    def __init__(self, parent_directory=".", record_nodes=None, processors=None,
                 delay_s: float = 0.0, status: int = 200, mode: str = "ACQUIRE",
                 block_s: float = 696 / 30000.0, message_center: bool = True):
        self.mode = mode
        self.block_s = float(block_s)
        self.message_center = bool(message_center)
        self.saved_messages: list[tuple[float, str]] = []
        """(emission time s, text) of the messages a Record Node saved."""
        self._pending: tuple[float, str] | None = None
        self._t0 = time.monotonic()
        self.on_record = None
        """Called (without arguments, under no lock) when the mode becomes RECORD: the host
        makes the new recording folder there."""
        self.parent_directory = str(parent_directory)
        self.record_nodes = [dict(n) for n in (record_nodes or [{"node_id": 101}])]
        self.processors = processors
        self.delay_s = float(delay_s)
        self.status = int(status)
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- state the host keeps up to date ----------------------------------------------------------
    def set_recording(self, parent_directory, experiment_number: int, recording_number: int):
        """The GUI's state for the recording about to start (every Record Node writes under
        ``parent_directory`` unless its own entry says otherwise)."""
        with self._lock:
            self.parent_directory = str(Path(parent_directory))
            for n in self.record_nodes:
                n["experiment_number"] = int(experiment_number)
                n["recording_number"] = int(recording_number)

    def recording_json(self) -> dict:
        with self._lock:
            nodes = []
            for n in self.record_nodes:
                nodes.append({"node_id": int(n["node_id"]),
                              "parent_directory": str(n.get("parent_directory",
                                                            self.parent_directory)),
                              "record_engine": n.get("record_engine", "BINARY"),
                              "experiment_number": int(n.get("experiment_number", 1)),
                              "recording_number": int(n.get("recording_number", 1)),
                              "is_synchronized": bool(n.get("is_synchronized", True))})
            return {"parent_directory": self.parent_directory, "base_text": "",
                    "prepend_text": "", "append_text": "", "record_nodes": nodes}

    def processors_json(self) -> dict:
        with self._lock:
            if self.processors is not None:
                return {"processors": list(self.processors)}
            chain = [{"id": 100, "name": "File Reader", "predecessor": None},
                     {"id": PYTHON_PROCESSOR_ID, "name": "Python Processor", "predecessor": 100}]
            prev = PYTHON_PROCESSOR_ID
            for n in self.record_nodes:
                chain.append({"id": int(n["node_id"]), "name": "Record Node",
                              "predecessor": prev})
                prev = int(n["node_id"])
            return {"processors": chain}

    # -- the Message Center ------------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        """Emit the pending message if a block boundary passed since it was posted (lock held).
        Blocks tick every ``block_s`` from the stand-in's start while acquiring."""
        if self._pending is None:
            return
        t_post, text = self._pending
        boundary = (int(t_post / self.block_s) + 1) * self.block_s
        if now >= boundary:
            self._pending = None
            if self.mode == "RECORD":
                self.saved_messages.append((boundary, text))

    def post_message(self, text: str) -> None:
        """``PUT /api/message``: the Message Center's latest outgoing message."""
        with self._lock:
            now = time.monotonic() - self._t0
            if not self.message_center:
                if self.mode == "RECORD":
                    self.saved_messages.append((now, text))
                return
            self._advance(now)
            if self.mode != "IDLE":
                self._pending = (now, text)  # replaces one not yet emitted

    def set_mode(self, mode: str) -> str:
        """``PUT /api/status``: leaving RECORD (or stopping) drops a message not yet emitted."""
        with self._lock:
            self._advance(time.monotonic() - self._t0)
            if mode != self.mode and self.mode == "RECORD":
                self._pending = None
            became_record = mode == "RECORD" and self.mode != "RECORD"
            self.mode = mode
        if became_record and self.on_record is not None:
            self.on_record()
        return mode

    def messages(self) -> list[str]:
        """Texts saved so far (emitting a pending one whose block has come)."""
        with self._lock:
            self._advance(time.monotonic() - self._t0)
            return [t for _s, t in self.saved_messages]

    # -- serving -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return self._server.server_address[1]

    def start(self) -> GuiApiStandIn:
        if self._server is not None:
            return self
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0].rstrip("/")
                with api._lock:
                    api.requests[path] = api.requests.get(path, 0) + 1
                    delay, status = api.delay_s, api.status
                if delay > 0:
                    time.sleep(delay)
                if path == "/api/recording":
                    body = api.recording_json()
                elif path == "/api/processors":
                    body = api.processors_json()
                elif path == "/api/status":
                    body = {"mode": api.mode}
                else:
                    status, body = 404, {"error": f"no endpoint {path}"}
                self._send(status, body)

            def do_PUT(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0].rstrip("/")
                n = int(self.headers.get("Content-Length", 0) or 0)
                try:
                    payload = json.loads(self.rfile.read(n) or b"{}")
                except ValueError:
                    payload = {}
                with api._lock:
                    api.requests["PUT " + path] = api.requests.get("PUT " + path, 0) + 1
                    status = api.status
                if path == "/api/status" and payload.get("mode") in ("IDLE", "ACQUIRE",
                                                                      "RECORD"):
                    body = {"mode": api.set_mode(payload["mode"])}
                elif path == "/api/message" and isinstance(payload.get("text"), str):
                    api.post_message(payload["text"])
                    body = {"message": payload["text"]}
                else:
                    status, body = 400, {"error": f"bad request {path} {payload!r}"}
                self._send(status, body)

            def _send(self, status, body):
                raw = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the module gave up waiting
                    pass

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="sweepsort-gui-api", daemon=True)
        self._thread.start()
        self._warm_up()
        return self

    def _warm_up(self) -> None:
        """One request to ourselves: http.server imports its header parser (email.*) on the
        first request, which can take longer than a module waits."""
        from oe_plugin.outputs.location import GuiApiError, http_get_json

        delay, self.delay_s = self.delay_s, 0.0
        try:
            http_get_json(self.port, "/api/warm-up", 5.0)
        except GuiApiError:
            pass
        finally:
            self.delay_s = delay
            self.requests.pop("/api/warm-up", None)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> GuiApiStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
