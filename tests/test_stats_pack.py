"""The compiled packing of the statistics tables (oe_plugin.outputs.stats_pack) against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oe_plugin.outputs.stats_file import EXP_FIELDS, HEADER_WORDS, StatsTables
from oe_plugin.outputs.stats_pack import TablePacker


def _tables(rng, rows, bins, slots, sig, cols):
    def r(*shape):
        return rng.integers(-2**40, 2**40, shape, dtype=np.int64)
    return StatsTables(r(rows, bins), r(slots, EXP_FIELDS), r(slots, sig), r(slots, rows),
                       r(cols), r(cols), r(cols), r(rows, cols))


def _numpy_pack(tb, r, k, nb, ns, nc, motion, nm):
    parts = [tb.time_counts[:r, :nb], tb.experiments[:ns], tb.signatures[:ns, :k],
             tb.no_sweep[:ns, :r], tb.col_exp[:nc], tb.col_sweep[:nc], tb.col_frames[:nc],
             tb.sweep_counts[:r, :nc]]
    if nm:
        parts.append(motion[:nm].view(np.int64))
    return np.concatenate([p.ravel() for p in parts])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 9), st.integers(0, 4), st.integers(0, 7),
       st.integers(0, 5), st.integers(0, 4), st.integers(0, 2**31))
def test_pack_equals_numpy_slicing(rows, nb, ns, nc, nm, nw, seed):
    """Any counts within the capacities: the buffer holds exactly numpy's packing (motion as
    the float64 bits, NaN included), after the header, and nothing past it changes."""
    rng = np.random.default_rng(seed)
    sig = 3
    tb = _tables(rng, rows + 1, 10, 5, sig + 2, 8)
    motion = rng.normal(0, 10, (6, max(nw, 1)))
    motion[0, 0] = np.nan
    words = HEADER_WORDS + 2000
    buf = np.full(words, 7, np.int64)
    packer = TablePacker(buf, tb, motion.shape[1])
    end = packer.pack(rows, sig, nb, ns, nc, HEADER_WORDS, motion, nm)
    want = _numpy_pack(tb, rows, sig, nb, ns, nc, motion, nm)
    assert end == HEADER_WORDS + want.size
    np.testing.assert_array_equal(buf[HEADER_WORDS:end], want)
    assert (buf[:HEADER_WORDS] == 7).all() and (buf[end:] == 7).all()


def test_pack_refuses_counts_past_the_arrays_or_the_buffer():
    rng = np.random.default_rng(1)
    tb = _tables(rng, 3, 10, 2, 4, 5)
    buf = np.zeros(HEADER_WORDS + 40, np.int64)
    packer = TablePacker(buf, tb, 0)
    assert packer.pack(3, 4, 11, 1, 1, HEADER_WORDS) == -1  # 11 bins of 10
    assert packer.pack(3, 4, 10, 1, 1, HEADER_WORDS) == -1  # 30 + 9 + 4 + 3 + 3 + 3 > 40 words
    assert (buf == 0).all()
    assert packer.pack(3, 4, 5, 1, 1, HEADER_WORDS) == HEADER_WORDS + 15 + 16 + 6


def test_packer_names_a_table_of_the_wrong_type():
    tb = _tables(np.random.default_rng(2), 3, 10, 2, 4, 5)
    bad = StatsTables(tb.time_counts, tb.experiments, tb.signatures, tb.no_sweep,
                      tb.col_exp.astype(np.int32), tb.col_sweep, tb.col_frames, tb.sweep_counts)
    with pytest.raises(ValueError, match="'col_exp' must be C-contiguous int64"):
        TablePacker(np.zeros(100, np.int64), bad, 0)
