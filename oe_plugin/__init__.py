"""sweepsort's Open Ephys Python Processor side: shared numba kernels, online modules, the
host simulator and the sweep TTL protocol."""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("sweepsort")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0+unknown"
