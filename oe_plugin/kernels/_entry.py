"""Two ways into one compiled kernel: ``@njit`` for offline code, ``@cfunc`` for ``process()``.

The Open Ephys Python Processor calls ``process()`` on its audio thread *without the GIL*. A
numpy array passed into an ``@njit`` function is released through ``PyGILState_Ensure`` and
hangs that thread (docs/host-threading.md). A ``@cfunc`` that receives raw pointers
and builds ``numba.carray`` views releases nothing through Python, so it is safe there.

Every online kernel therefore gets one uniform C entry point::

    int64 entry(int64* addresses, int64* shapes)

``addresses[k]`` is the data pointer of argument ``k`` and ``shapes[3k:3k+3]`` its shape (up to
three dimensions). :class:`ArgTable` fills both tables from numpy arrays once, and per block only
the entries that change (the block pointer and its length) are rewritten — no allocation.
Inside the cfunc, :func:`arg_f32_2d` & co. rebuild typed array views from the tables, so a new
kernel needs a short cfunc body and no hand-written ctypes signature.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

MAX_DIMS = 3

ENTRY_SIGNATURE = types.int64(types.CPointer(types.int64), types.CPointer(types.int64))
"""The C signature of every online entry point: ``int64 entry(int64* addresses, int64* shapes)``."""

_ENTRY_CTYPE = ctypes.PYFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)


@intrinsic
def _as_voidptr(typingctx, address):
    """Reinterpret an int64 address as ``void*`` (for ``numba.carray``)."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


def _make_view(dtype, ndim):
    if ndim == 1:

        @numba.njit(inline="always")
        def view(addresses, shapes, k):
            return numba.carray(_as_voidptr(addresses[k]), (shapes[3 * k],), dtype)

    elif ndim == 2:

        @numba.njit(inline="always")
        def view(addresses, shapes, k):
            return numba.carray(
                _as_voidptr(addresses[k]), (shapes[3 * k], shapes[3 * k + 1]), dtype
            )

    else:

        @numba.njit(inline="always")
        def view(addresses, shapes, k):
            return numba.carray(
                _as_voidptr(addresses[k]),
                (shapes[3 * k], shapes[3 * k + 1], shapes[3 * k + 2]),
                dtype,
            )

    return view


arg_f32_1d = _make_view(np.float32, 1)
arg_f32_2d = _make_view(np.float32, 2)
arg_f64_1d = _make_view(np.float64, 1)
arg_f64_2d = _make_view(np.float64, 2)
arg_f64_3d = _make_view(np.float64, 3)
arg_i64_1d = _make_view(np.int64, 1)
arg_i64_2d = _make_view(np.int64, 2)
arg_i32_1d = _make_view(np.int32, 1)
arg_i32_2d = _make_view(np.int32, 2)
arg_i32_2d = _make_view(np.int32, 2)
arg_u8_2d = _make_view(np.uint8, 2)


def cfunc_entry(body):
    """Compile ``body(addresses, shapes) -> int64`` as a C entry point (never raises).

    Returns the numba ``cfunc`` object; wrap its ``address`` with :func:`entry_caller`.
    """
    return numba.cfunc(ENTRY_SIGNATURE, cache=True, error_model="numpy")(body)


def entry_caller(compiled_cfunc):
    """A ctypes function calling the entry through ``PYFUNCTYPE`` (keeps the GIL state as is)."""
    return _ENTRY_CTYPE(compiled_cfunc.address)


class ArgTable:
    """Address and shape tables for one entry point's arguments.

    Parameters
    ----------
    arrays : sequence of C-contiguous numpy arrays (ndim <= 3), in the order the cfunc reads them.
        The table keeps references so the memory stays alive.

    Use :meth:`set` to point argument ``k`` at another array of the same dtype/ndim (e.g. the
    block handed to ``process()``), then :meth:`call`.
    """

    def __init__(self, arrays):
        self._arrays = list(arrays)
        n = len(self._arrays)
        self.addresses = np.zeros(n, dtype=np.int64)
        self.shapes = np.zeros(MAX_DIMS * n, dtype=np.int64)
        for k, a in enumerate(self._arrays):
            self._fill(k, a)
        self._addr_ptr = self.addresses.ctypes.data
        self._shape_ptr = self.shapes.ctypes.data

    def _fill(self, k, a):
        if not a.flags.c_contiguous:
            raise ValueError(f"argument {k} must be C-contiguous")
        if a.ndim > MAX_DIMS:
            raise ValueError(f"argument {k} has {a.ndim} dimensions; at most {MAX_DIMS}")
        self.addresses[k] = a.ctypes.data
        for d in range(MAX_DIMS):
            self.shapes[MAX_DIMS * k + d] = a.shape[d] if d < a.ndim else 1

    def set(self, k, array):
        """Point argument ``k`` at ``array`` (same dtype and ndim as before; not checked here:
        this runs on the hot path). Setting the array argument ``k`` already holds only
        rewrites its shape (an array's data pointer does not change; the lookup costs ~1 µs)."""
        if array is not self._arrays[k]:
            self._arrays[k] = array
            self.addresses[k] = array.ctypes.data
        shape = array.shape
        base = MAX_DIMS * k
        self.shapes[base:base + len(shape)] = shape

    def restore(self, k, array, address):
        """Point argument ``k`` back at ``array`` whose data pointer ``address`` the caller
        kept (e.g. a dummy block after the real one was used): no pointer lookup."""
        self._arrays[k] = array
        self.addresses[k] = address
        shape = array.shape
        base = MAX_DIMS * k
        self.shapes[base:base + len(shape)] = shape

    def call(self, caller):
        """Call a :func:`entry_caller` function with these tables; returns its int64 result."""
        return caller(self._addr_ptr, self._shape_ptr)
