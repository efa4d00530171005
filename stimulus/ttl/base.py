"""TTL output backends: where each refresh's protocol word changes go.

A backend is opened before the experiment (and must fail then, never mid-way: an error in
:meth:`TTLBackend.open` stops the run before the first refresh), gets :meth:`send` right after
every flip, is asked for asynchronous errors (:meth:`poll_errors`) every refresh, and is
closed at the end with every line low.

``--ttl`` specs: ``virtual``, ``file:PATH``, ``serial:PORT[@BAUD]``,
``nidaq:DEVICE/portN[@RATE_HZ]``, ``none``.
"""

from __future__ import annotations

from stimulus.ttl.encoding import Changes, ProtocolSettings


class TTLError(RuntimeError):
    """The TTL backend cannot be used (raised by open) or failed (raised by send)."""


class TTLBackend:
    """Base class: subclasses implement the hooks."""

    name = "base"

    def __init__(self, settings: ProtocolSettings):
        self.settings = settings
        self.n_frames = 0
        self.errors: list[str] = []

    def open(self) -> None:
        """Check and open the device; raise :class:`TTLError` if it cannot be used."""

    def send(self, changes: Changes, flip_time_s: float) -> None:
        """Output one refresh's changes (offsets in µs from the flip at ``flip_time_s``)."""
        self.n_frames += 1

    def poll_errors(self) -> list[str]:
        """Errors the device reported since the last call (non-blocking)."""
        return []

    def close(self) -> None:
        """All lines low, release the device."""

    def describe(self) -> dict:
        return {"backend": self.name}


class NullBackend(TTLBackend):
    """No TTL output (``--ttl none``): the frame log is the only record."""

    name = "none"


def make_backend(spec: str, settings: ProtocolSettings) -> TTLBackend:
    """Backend from a ``--ttl`` spec (not yet opened)."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "none":
        return NullBackend(settings)
    if kind == "virtual":
        from stimulus.ttl.virtual import VirtualBackend

        return VirtualBackend(settings)
    if kind == "file":
        if not arg:
            raise TTLError("--ttl file:PATH needs a path")
        from stimulus.ttl.file import FileBackend

        return FileBackend(settings, arg)
    if kind == "serial":
        if not arg:
            raise TTLError("--ttl serial:PORT[@BAUD] needs a port, e.g. serial:/dev/ttyACM0")
        from stimulus.ttl.serial import SerialBackend

        port, _, baud = arg.partition("@")
        return SerialBackend(settings, port, int(baud) if baud else 115200)
    if kind in ("nidaq", "nidaqmx"):
        if not arg:
            raise TTLError("--ttl nidaq:DEVICE/portN[@RATE_HZ] needs a port, e.g. "
                           "nidaq:Dev1/port0")
        from stimulus.ttl.nidaq import NidaqBackend

        port, _, rate = arg.partition("@")
        return NidaqBackend(settings, port, float(rate) if rate else 100_000.0)
    raise TTLError(f"unknown TTL backend {spec!r}: use virtual, file:PATH, serial:PORT, "
                   f"nidaq:DEVICE/portN or none")
