"""Packing the statistics tables into the file buffer: one GIL-free call on the audio thread.

:class:`~oe_plugin.outputs.stats_file.StatsFileWriter` packs the tables in use (leading rows,
bins, slots and columns of preallocated arrays) into its int64 buffer before writing it. Done
with numpy that is a dozen slicing calls whose Python costs ~0.03 ms hot and 0.09-0.14 ms on the
audio thread, where it runs once every ``write_every_s`` with cold caches (the 64-channel bench's
costliest blocks); one ``@cfunc`` call does the same copies (:func:`pack_call`).

The entry reads its arguments from an :class:`~oe_plugin.kernels._entry.ArgTable` in the order
of :data:`PACK_ARGS`; ``params`` (int64) holds ``R, SIG_LEN, n_bins, n_slots, n_columns,
motion_rows, first word`` (:data:`P_ROWS` ..). The motion table is float64: the entry reads its
bits as int64 (the file stores them so).
"""

from __future__ import annotations

import numba
import numpy as np

from oe_plugin.kernels._entry import (
    ArgTable,
    arg_i64_1d,
    arg_i64_2d,
    cfunc_entry,
    entry_caller,
)

PACK_ARGS = ("buf", "time_counts", "experiments", "signatures", "no_sweep", "col_exp",
             "col_sweep", "col_frames", "sweep_counts", "motion", "params")
P_ROWS, P_SIG_LEN, P_BINS, P_SLOTS, P_COLUMNS, P_MOTION_ROWS, P_FIRST = range(7)
N_PARAMS = 7


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _put_2d(buf, o, src, rows, cols):
    """``buf[o : o + rows*cols] = src[:rows, :cols]`` row by row; returns the next word."""
    for i in range(rows):
        s = src[i]
        for j in range(cols):
            buf[o + j] = s[j]
        o += cols
    return o


@numba.njit(cache=True, error_model="numpy", nogil=True)
def pack_tables(buf, tc, exps, sigs, no_sweep, col_exp, col_sweep, col_frames, sweep_counts,
                motion_bits, params) -> int:
    """Pack the tables in the file's order (module docstring of
    :mod:`oe_plugin.outputs.stats_file`) from word ``params[P_FIRST]``; returns the word after
    the last one written, or -1 (nothing written) when a count exceeds an array or the buffer.

    buf (words,) int64; tc (>= R, >= n_bins); exps (>= S, EXP_FIELDS); sigs (>= S, >= SIG_LEN);
    no_sweep (>= S, >= R); col_* (>= C,); sweep_counts (>= R, >= C); motion_bits (>= M, W)
    int64 (the float64 table's bits).
    """
    r = params[P_ROWS]
    k = params[P_SIG_LEN]
    nb = params[P_BINS]
    ns = params[P_SLOTS]
    nc = params[P_COLUMNS]
    nm = params[P_MOTION_ROWS]
    o = params[P_FIRST]
    nx = exps.shape[1]
    nw = motion_bits.shape[1]
    if (min(r, k, nb, ns, nc, nm, o) < 0 or tc.shape[0] < r or tc.shape[1] < nb
            or exps.shape[0] < ns or sigs.shape[0] < ns or sigs.shape[1] < k
            or no_sweep.shape[0] < ns or no_sweep.shape[1] < r or col_exp.shape[0] < nc
            or col_sweep.shape[0] < nc or col_frames.shape[0] < nc
            or sweep_counts.shape[0] < r or sweep_counts.shape[1] < nc
            or motion_bits.shape[0] < nm):
        return -1
    if o + r * nb + ns * (nx + k + r) + nc * (3 + r) + nm * nw > buf.shape[0]:
        return -1
    o = _put_2d(buf, o, tc, r, nb)
    o = _put_2d(buf, o, exps, ns, nx)
    o = _put_2d(buf, o, sigs, ns, k)
    o = _put_2d(buf, o, no_sweep, ns, r)
    for col in (col_exp, col_sweep, col_frames):
        for j in range(nc):
            buf[o + j] = col[j]
        o += nc
    o = _put_2d(buf, o, sweep_counts, r, nc)
    return _put_2d(buf, o, motion_bits, nm, nw)


def _pack_entry(addresses, shapes):
    return pack_tables(arg_i64_1d(addresses, shapes, 0), arg_i64_2d(addresses, shapes, 1),
                       arg_i64_2d(addresses, shapes, 2), arg_i64_2d(addresses, shapes, 3),
                       arg_i64_2d(addresses, shapes, 4), arg_i64_1d(addresses, shapes, 5),
                       arg_i64_1d(addresses, shapes, 6), arg_i64_1d(addresses, shapes, 7),
                       arg_i64_2d(addresses, shapes, 8), arg_i64_2d(addresses, shapes, 9),
                       arg_i64_1d(addresses, shapes, 10))


pack_entry = cfunc_entry(_pack_entry)
_PACK_CALLER = entry_caller(pack_entry)


class TablePacker:
    """The entry's argument table for one writer buffer and one set of tables.

    buf : the writer's int64 buffer; tables : a
    :class:`~oe_plugin.outputs.stats_file.StatsTables` (int64, C-contiguous);
    motion_windows : W, the motion table's width (0: none). Building it allocates (message
    thread); :meth:`pack` does not.
    """

    def __init__(self, buf: np.ndarray, tables, motion_windows: int):
        named = [("buf", buf)] + [(n, getattr(tables, n)) for n in PACK_ARGS[1:9]]
        for name, a in named:
            if a.dtype != np.int64 or not a.flags.c_contiguous:
                raise ValueError(f"stats table {name!r} must be C-contiguous int64, "
                                 f"not {a.dtype}{'' if a.flags.c_contiguous else ' (strided)'}")
        for name in ("time_counts", "experiments", "signatures", "no_sweep", "sweep_counts"):
            if getattr(tables, name).ndim != 2:
                raise ValueError(f"stats table {name!r} must be 2-D")
        self.tables = tables
        self.params = np.zeros(N_PARAMS, np.int64)
        self._no_motion = np.zeros((0, max(int(motion_windows), 1)), np.float64)
        self._table = ArgTable([a for _, a in named] + [self._no_motion, self.params])

    def pack(self, rows: int, sig_len: int, n_bins: int, n_slots: int, n_columns: int,
             first_word: int, motion: np.ndarray | None = None, motion_rows: int = 0) -> int:
        """Pack (see :func:`pack_tables`); ``motion`` (H, W) float64 C-contiguous or None.
        Returns the word after the last one written, -1 if the counts do not fit."""
        p = self.params
        p[P_ROWS] = rows
        p[P_SIG_LEN] = sig_len
        p[P_BINS] = n_bins
        p[P_SLOTS] = n_slots
        p[P_COLUMNS] = n_columns
        p[P_FIRST] = first_word
        tab = self._table
        if motion is None or motion_rows <= 0:
            p[P_MOTION_ROWS] = 0
            tab.set(9, self._no_motion)
        else:
            p[P_MOTION_ROWS] = motion_rows
            tab.set(9, motion)
        return int(tab.call(_PACK_CALLER))
