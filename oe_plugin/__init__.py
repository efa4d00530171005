"""sweepsort's core and its Open Ephys Python Processor side.

The core is what the online modules, the offline package and the stimulus driver all import:
the numba kernels (:mod:`oe_plugin.kernels`), the sweep TTL protocol
(:mod:`oe_plugin.protocol`), settings (:mod:`oe_plugin.config`, :mod:`oe_plugin.settings`),
probe layouts (:mod:`oe_plugin.probe`) and the file formats the online and stimulus sides read
(:mod:`oe_plugin.formats`: sort folders, stimulus session files). On it stand the online modules
the GUI loads (:mod:`oe_plugin.modules`, :mod:`oe_plugin.online`, :mod:`oe_plugin.outputs`).

The dependency runs one way: ``offline`` and ``stimulus`` import the core; nothing the GUI loads
imports ``offline`` or ``stimulus``, so the GUI's embedded Python needs only numpy, scipy and
numba (the ``gui`` extra; tests/test_gui_imports.py). The host simulator and replay
(:mod:`oe_plugin.host`) are developer tools outside that rule: they may read recordings through
``offline``.
"""


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
