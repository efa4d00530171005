"""sweepsort's Open Ephys Python Processor side: shared numba kernels, online modules, the
host simulator and the sweep TTL protocol."""


def __getattr__(name: str):
    # __version__ on first use (PEP 562): importlib.metadata costs ~25 ms, paid by every
    # `sweepsort --help` / `sweepstim --help` otherwise.
    if name != "__version__":
        raise AttributeError(f"module 'oe_plugin' has no attribute {name!r}")
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("sweepsort")
        except PackageNotFoundError:  # running from a checkout that is not installed
            value = "0+unknown"
    except ImportError:  # pragma: no cover
        value = "0+unknown"
    globals()["__version__"] = value
    return value
