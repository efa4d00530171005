"""Ctrl-C that is never lost.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode of the main thread; when that
bytecode belongs to a ``__del__`` (e.g. a ``zipfile.ZipFile`` being collected after an
``np.load``/``np.savez``), the exception is printed as "Exception ignored" and the program goes
on as if no key had been pressed: a sort interrupted at that instant ran to its end. So the CLI
installs :func:`install`'s handler, which also *remembers* the interrupt (and keeps the
"Exception ignored" report of one raised in a ``__del__`` off the terminal), and long loops call
:func:`check` at safe points (before and after each chunk stage, after each chunk result): a
swallowed Ctrl-C is raised again there.
"""

from __future__ import annotations

import signal
import sys
import threading

_pressed = threading.Event()
_default_unraisable = sys.unraisablehook


def _unraisable(unraisable) -> None:
    """A ``KeyboardInterrupt`` raised inside a ``__del__`` is remembered, not printed as
    "Exception ignored"; every other unraisable exception goes to the default hook."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _pressed.set()
        return
    _default_unraisable(unraisable)


def _on_sigint(signum, frame):
    _pressed.set()
    raise KeyboardInterrupt


def install():
    """Take SIGINT in this (main) thread: raise ``KeyboardInterrupt`` and remember it. Leaves an
    ignored SIGINT ignored (a background job started without job control). Returns the handler
    it replaced (pass it to :func:`restore`), or None when it installed nothing."""
    _pressed.clear()
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        return None
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable
    return previous


def restore(previous) -> None:
    """Put back the handler :func:`install` replaced (nothing when it installed none), and
    forget any interrupt seen."""
    _pressed.clear()
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = _default_unraisable


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since :func:`install` (a no-op when it
    was not, or when the handler was never installed)."""
    if _pressed.is_set():
        raise KeyboardInterrupt


def pressed() -> bool:
    """Whether Ctrl-C was pressed since :func:`install`: an exception that cleanup code raised
    while a ``KeyboardInterrupt`` unwound (``zipfile`` refusing to close a half-written member
    of an ``np.savez``) is then the interrupt, not an error."""
    return _pressed.is_set()
