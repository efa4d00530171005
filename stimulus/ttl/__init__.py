"""TTL output backends (virtual, file, serial microcontroller, NI-DAQ) over the sweep protocol."""

from stimulus.ttl.base import NullBackend, TTLBackend, TTLError, make_backend

__all__ = ["NullBackend", "TTLBackend", "TTLError", "make_backend"]
