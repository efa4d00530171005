"""Load a module the way the Python Processor does: a stand-in ``oe_pyprocessor``, import by stem.

The GUI embeds a pybind11 module ``oe_pyprocessor`` whose ``PythonProcessor`` is the C++ object
passed to ``PyProcessor(processor, num_channels, sample_rate)``; its only method a module may use
is ``processor.add_python_event(line, state)``. This file provides a stand-in for it and
:func:`load_module`, which appends the script's folder to ``sys.path`` and imports the script by
its file stem, as the plugin does.
"""

from __future__ import annotations

import importlib
import numbers
import sys
import types
from pathlib import Path

import numpy as np

from .errors import ModuleImportError

STAND_IN_NAME = "oe_pyprocessor"
MAX_TTL_LINE = 255


def _as_int(value, name: str) -> int:
    """pybind11's ``int`` argument: ints, bools and numpy integers; no floats, no strings."""
    if isinstance(value, (bool, numbers.Integral, np.integer)):
        return int(value)
    raise TypeError(f"add_python_event(): {name} must be an int, got {type(value).__name__} "
                    "(the GUI's pybind11 binding rejects it)")


def _as_bool(value, name: str) -> bool:
    """pybind11's ``bool`` argument (convert mode): anything numeric, numpy bools, None."""
    if value is None or isinstance(value, (bool, numbers.Number, np.bool_, np.number)):
        return bool(value)
    raise TypeError(f"add_python_event(): {name} must be a bool, got {type(value).__name__}")


class PythonProcessor:
    """Stand-in for the GUI's C++ ``PythonProcessor`` (the ``processor`` a module receives).

    ``sink`` is the host: an object with ``_queue_event(line, state)``. Without a sink (a module
    built by hand in a unit test) events are recorded in ``self.events`` only.
    """

    def __init__(self, sink=None):
        self._sink = sink
        self.events: list[tuple[int, bool]] = []

    def add_python_event(self, line, state) -> None:
        """Queue a TTL event on the Python Processor's output line ``line`` (0..255).

        The host stamps it with the current block's first sample number, and drops it when
        acquisition is not running. Stricter than the GUI: a line outside 0..255 raises.
        """
        line = _as_int(line, "line")
        state = _as_bool(state, "state")
        if not 0 <= line <= MAX_TTL_LINE:
            raise ValueError(f"add_python_event(): line {line} outside 0..{MAX_TTL_LINE}")
        if self._sink is None:
            self.events.append((line, state))
        else:
            self._sink._queue_event(line, state)


def install_stand_in() -> types.ModuleType:
    """Put the stand-in ``oe_pyprocessor`` into ``sys.modules`` (kept if already ours)."""
    current = sys.modules.get(STAND_IN_NAME)
    if current is not None and getattr(current, "__sweepsort_stand_in__", False):
        return current
    module = types.ModuleType(STAND_IN_NAME, "sweepsort's stand-in for the GUI's embedded module")
    module.PythonProcessor = PythonProcessor
    module.__sweepsort_stand_in__ = True
    sys.modules[STAND_IN_NAME] = module
    return module


def _same_file(module: types.ModuleType, path: Path) -> bool:
    file = getattr(module, "__file__", None)
    try:
        return file is not None and Path(file).resolve() == path
    except OSError:
        return False


def load_module(script_path) -> types.ModuleType:
    """Import ``script_path`` as the Python Processor does and check it defines ``PyProcessor``.

    Appends the script's folder to ``sys.path`` (if not there yet) and imports the module by
    its file stem, after dropping a stale ``sys.modules[stem]`` left by an earlier load of the
    same script. Raises :class:`ModuleImportError` when the file is missing, the import fails
    (``__cause__`` holds the error), the stem names another module (the GUI would silently
    import that one instead), or ``PyProcessor`` is missing.
    """
    path = Path(script_path).expanduser().resolve()
    if not path.is_file():
        raise ModuleImportError(f"{path}: no such module file")
    if path.suffix != ".py":
        raise ModuleImportError(f"{path}: the Python Processor loads .py files")
    stem = path.stem
    install_stand_in()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    stale = sys.modules.get(stem)
    if stale is not None:
        if not _same_file(stale, path):
            raise ModuleImportError(
                f"{path}: the host imports scripts by file stem, and {stem!r} is already the "
                f"module {getattr(stale, '__file__', stale)!r}; rename the script")
        del sys.modules[stem]
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(stem)
    except Exception as err:  # noqa: BLE001 - anything the script raises at import time
        sys.modules.pop(stem, None)
        raise ModuleImportError(f"{path}: import failed: {type(err).__name__}: {err}") from err
    if not _same_file(module, path):
        raise ModuleImportError(
            f"{path}: importing {stem!r} by stem found {getattr(module, '__file__', module)!r} "
            "earlier on sys.path (the GUI would load that one); rename the script")
    if not isinstance(getattr(module, "PyProcessor", None), type):
        raise ModuleImportError(f"{path}: defines no class PyProcessor")
    return module
