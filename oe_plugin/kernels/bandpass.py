"""Causal Butterworth band-pass as second-order sections, streaming.

The filter runs sample-major: :func:`sos_rows` advances every channel through a tile of samples
(rows), section after section, so the inner loop runs over channels and vectorises (the
channels' states are independent). The state
is float64 (as scipy's ``sosfilt`` computes with float64 coefficients), which keeps the float32
output within float32 rounding of scipy and makes any block partition give bit-identical output.

With ``order=2`` and 300-6000 Hz this is the Open Ephys GUI's own Bandpass Filter (a 2nd-order
Butterworth band-pass from the DSPFilters library, i.e. four poles, like ``scipy.signal.butter(2,
[low, high], 'bandpass')``).
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import signal

from oe_plugin.kernels._entry import (
    arg_f32_2d,
    arg_f64_1d,
    arg_f64_2d,
    arg_f64_3d,
    cfunc_entry,
)
from oe_plugin.settings import BAND_HIGH_HZ, BAND_LOW_HZ, BAND_ORDER

INPUT_LIMIT_UV = 1e9
"""Samples beyond ±1 kV are clipped before filtering; NaN/inf become 0 (never reach the state)."""


def design_bandpass(low_hz: float, high_hz: float, order: int, sample_rate_hz: float) -> np.ndarray:
    """Butterworth band-pass SOS, shape (n_sections, 6) float64 (scipy layout b0 b1 b2 a0 a1 a2).

    ``order`` is the order of the low-pass prototype (the GUI's "order"): ``order`` sections.
    """
    nyquist = sample_rate_hz / 2.0
    if not 0 < low_hz < high_hz < nyquist:
        raise ValueError(
            f"band {low_hz}-{high_hz} Hz must satisfy 0 < low_hz < high_hz < {nyquist:g} Hz "
            f"(half the sample rate)"
        )
    if not 1 <= order <= 8:
        raise ValueError(f"order {order} must be between 1 and 8")
    sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate_hz, output="sos")
    return np.ascontiguousarray(sos, dtype=np.float64)


def default_band_sos(sample_rate_hz: float) -> np.ndarray:
    """:func:`design_bandpass` of the default band (:data:`oe_plugin.settings.BAND_LOW_HZ` ..
    ``BAND_HIGH_HZ``, order ``BAND_ORDER``): (BAND_ORDER, 6) float64."""
    return design_bandpass(BAND_LOW_HZ, BAND_HIGH_HZ, BAND_ORDER, sample_rate_hz)


def make_filter_state(sos: np.ndarray, n_channels: int) -> np.ndarray:
    """Zeroed filter memory, shape (n_sections, 2, n_channels) float64."""
    return np.zeros((sos.shape[0], 2, n_channels), dtype=np.float64)


@numba.njit(cache=True, inline="always", error_model="numpy")
def clean_sample(x):
    """Replace NaN/inf by 0 and clip to ±INPUT_LIMIT_UV; returns (value, was_bad)."""
    if not np.isfinite(x):
        return 0.0, 1
    if x > INPUT_LIMIT_UV:
        return INPUT_LIMIT_UV, 0
    if x < -INPUT_LIMIT_UV:
        return -INPUT_LIMIT_UV, 0
    return x, 0


FILTER_TILE = 32
"""Samples filtered per pass of :func:`sos_rows` (``tmp`` holds this many float64 rows)."""


@numba.njit(cache=True, error_model="numpy", inline="never")
def _section_rows_from(b0, b1, b2, a1, a2, src, dst, z0, z1):
    """One biquad (direct form II transposed) over rows of channels, ``dst[i] = f(src[i])`` in
    row (time) order; ``src`` (m, C) float32, ``dst`` (m, C) float64. A separate, non-inlined
    function on purpose: with distinct array arguments LLVM can prove (at run time) that they do
    not overlap and vectorises the loop over channels (~6x faster)."""
    for i in range(src.shape[0]):
        s = src[i]
        d = dst[i]
        for c in range(s.shape[0]):
            x = np.float64(s[c])
            y = b0 * x + z0[c]
            z0[c] = b1 * x - a1 * y + z1[c]
            z1[c] = b2 * x - a2 * y
            d[c] = y


@numba.njit(cache=True, error_model="numpy", inline="never")
def _section_rows_inplace(b0, b1, b2, a1, a2, rows, z0, z1):
    for i in range(rows.shape[0]):
        r = rows[i]
        for c in range(r.shape[0]):
            x = r[c]
            y = b0 * x + z0[c]
            z0[c] = b1 * x - a1 * y + z1[c]
            z1[c] = b2 * x - a2 * y
            r[c] = y


@numba.njit(cache=True, error_model="numpy", inline="never")
def _two_sections_inplace(s0, s1, rows, z00, z01, z10, z11):
    """Sections ``s0`` then ``s1`` (scipy rows b0 b1 b2 a0 a1 a2) over rows of channels in
    place, in one pass: each sample through both biquads in float64 (section 0's output is
    never rounded to float32), then stored as float32 — the same operations in the same order
    as :func:`_section_rows_from` + :func:`_section_rows_inplace` + the copy back, one pass
    over the rows instead of three (64 ch x 1024 samples 41 -> 34 µs). Not inlined, as
    :func:`_section_rows_from`."""
    b00, b01, b02, a01, a02 = s0[0], s0[1], s0[2], s0[4], s0[5]
    b10, b11, b12, a11, a12 = s1[0], s1[1], s1[2], s1[4], s1[5]
    for i in range(rows.shape[0]):
        r = rows[i]
        for c in range(r.shape[0]):
            x = np.float64(r[c])
            y = b00 * x + z00[c]
            z00[c] = b01 * x - a01 * y + z01[c]
            z01[c] = b02 * x - a02 * y
            y2 = b10 * y + z10[c]
            z10[c] = b11 * y - a11 * y2 + z11[c]
            z11[c] = b12 * y - a12 * y2
            r[c] = y2


@numba.njit(cache=True, error_model="numpy")
def sos_rows(sos, zi, ring, first_row, n, tmp):
    """Filter ring rows ``(first_row + i) & (R - 1)``, ``i < n``, in place (ring (R, C) float32,
    R a power of two): each channel through
    the cascade of sections, direct form II transposed (scipy's ``sosfilt``), float64 state.

    ``tmp`` float64 holds ``len(tmp) // C`` rows (at least one; :data:`FILTER_TILE` in the
    detector): section 0 runs over that many rows into ``tmp``, then each later section over
    its output, then the rows are written back. A cascade of causal filters gives every
    channel the same float64 operations in the same order for any tile size, and a call per
    section per tile instead of per sample (the calls cost more than the arithmetic at 64
    channels: 0.08 of 0.146 ms per 1024-sample block). Two sections (the default) run fused in
    place (:func:`_two_sections_inplace`), bit for bit the same."""
    n_sections = sos.shape[0]
    n_ch = ring.shape[1]
    if n_sections == 0 or n <= 0 or n_ch == 0 or tmp.shape[0] < n_ch:
        return
    mask = ring.shape[0] - 1
    if n_sections == 2:  # the default (the GUI's order 2): both sections in one pass, no tmp
        i = 0
        while i < n:
            r0 = (first_row + i) & mask
            m = min(n - i, ring.shape[0] - r0)  # rows contiguous in the ring
            _two_sections_inplace(sos[0], sos[1], ring[r0:r0 + m], zi[0, 0], zi[0, 1],
                                  zi[1, 0], zi[1, 1])
            i += m
        return
    tile = tmp.shape[0] // n_ch
    work = tmp[:tile * n_ch].reshape((tile, n_ch))
    i = 0
    while i < n:
        r0 = (first_row + i) & mask
        m = min(tile, n - i, ring.shape[0] - r0)  # rows contiguous in the ring
        rows = ring[r0:r0 + m]
        w = work[:m]
        _section_rows_from(sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5], rows, w,
                           zi[0, 0], zi[0, 1])
        for s in range(1, n_sections):
            _section_rows_inplace(sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5], w,
                                  zi[s, 0], zi[s, 1])
        for k in range(m):
            src = w[k]
            dst = rows[k]
            for c in range(n_ch):
                dst[c] = src[c]
        i += m


TILE = 16


@numba.njit(cache=True, error_model="numpy")
def columns_to_rows(data, pos, m, gains, scaled, dst, row0, mask):
    """``dst[(row0 + i) & mask, c] = data[c, pos + i] (* gains[c] when scaled)`` for ``i < m``:
    channel-major samples (the GUI's blocks) into sample-major rows (a ring when ``mask`` is
    R - 1, a plain array with ``mask = -1``). Eight channels at a time: eight row streams are
    read in step and each destination row receives 32 contiguous bytes (a plain transpose loop
    is 2-4x slower at 384 channels: its strided stores, or 4 KiB-apart reads that share one L1
    set)."""
    n_ch = data.shape[0]
    c8 = n_ch - n_ch % 8
    for c0 in range(0, c8, 8):
        g0 = gains[c0] if scaled else np.float32(1.0)
        g1 = gains[c0 + 1] if scaled else np.float32(1.0)
        g2 = gains[c0 + 2] if scaled else np.float32(1.0)
        g3 = gains[c0 + 3] if scaled else np.float32(1.0)
        g4 = gains[c0 + 4] if scaled else np.float32(1.0)
        g5 = gains[c0 + 5] if scaled else np.float32(1.0)
        g6 = gains[c0 + 6] if scaled else np.float32(1.0)
        g7 = gains[c0 + 7] if scaled else np.float32(1.0)
        d0 = data[c0, pos:pos + m]
        d1 = data[c0 + 1, pos:pos + m]
        d2 = data[c0 + 2, pos:pos + m]
        d3 = data[c0 + 3, pos:pos + m]
        d4 = data[c0 + 4, pos:pos + m]
        d5 = data[c0 + 5, pos:pos + m]
        d6 = data[c0 + 6, pos:pos + m]
        d7 = data[c0 + 7, pos:pos + m]
        for i in range(m):
            row = dst[(row0 + i) & mask, c0:c0 + 8]
            row[0] = d0[i] * g0
            row[1] = d1[i] * g1
            row[2] = d2[i] * g2
            row[3] = d3[i] * g3
            row[4] = d4[i] * g4
            row[5] = d5[i] * g5
            row[6] = d6[i] * g6
            row[7] = d7[i] * g7
    for c in range(c8, n_ch):
        g = gains[c] if scaled else np.float32(1.0)
        for i in range(m):
            dst[(row0 + i) & mask, c] = data[c, pos + i] * g


@numba.njit(cache=True, error_model="numpy")
def load_rows(data, start, stop, ring, first_row, sample_major):
    """Copy samples ``start:stop`` of ``data`` into ring rows ``(first_row + i) & (R-1)`` of
    ``ring`` (R, C), then clean them (NaN/inf -> 0, clip to ±INPUT_LIMIT_UV).

    ``data`` is (C, N) channel-major (the GUI's blocks; :func:`columns_to_rows`) or, with
    ``sample_major``, (N, C) (Open Ephys Binary's own layout: a plain row copy). Returns the
    number of non-finite samples."""
    mask = ring.shape[0] - 1
    if sample_major:
        n_channels = data.shape[1]
        for i in range(start, stop):
            src = data[i]
            dst = ring[(first_row + i - start) & mask]
            for c in range(n_channels):
                dst[c] = src[c]
    else:
        n_channels = data.shape[0]
        columns_to_rows(data, start, stop - start, ring[0], False, ring, first_row, mask)
    return clean_rows(ring, first_row, stop - start, n_channels)


@numba.njit(cache=True, error_model="numpy")
def clean_rows(ring, first_row, n, n_channels):
    """Clean ring rows ``(first_row + i) & (R-1)``, ``i < n``, channels ``< n_channels`` in
    place (NaN/inf -> 0, clip to ±INPUT_LIMIT_UV); returns the number of non-finite samples."""
    mask = ring.shape[0] - 1
    bad = 0
    for i in range(n):
        row = ring[(first_row + i) & mask]
        ok = True
        for c in range(n_channels):
            ok &= abs(row[c]) <= INPUT_LIMIT_UV
        if not ok:
            for c in range(n_channels):
                if not abs(row[c]) <= INPUT_LIMIT_UV:
                    v, b = clean_sample(row[c])
                    row[c] = v
                    bad += b
    return bad


@numba.njit(cache=True, error_model="numpy")
def store_rows(ring, first_row, data, start, stop, sample_major):
    """The inverse of :func:`load_rows`: ring rows back into samples ``start:stop`` of ``data``."""
    mask = ring.shape[0] - 1
    if sample_major:
        for i in range(start, stop):
            src = ring[(first_row + i - start) & mask]
            dst = data[i]
            for c in range(src.shape[0]):
                dst[c] = src[c]
        return
    n_channels = data.shape[0]
    for c0 in range(0, n_channels, TILE):
        c1 = min(c0 + TILE, n_channels)
        for c in range(c0, c1):
            for i in range(start, stop):
                data[c, i] = ring[(first_row + i - start) & mask, c]


@numba.njit(cache=True, error_model="numpy", nogil=True)
def bandpass_block(sos, zi, data, out, tile, tmp):
    """Filter ``data`` (n_channels, n_samples) float32 µV into ``out`` (same shape; may be
    ``data`` itself), carrying the state ``zi``. ``tile`` (T, n_channels) float32 with T a power
    of two and ``tmp`` float64 (at least n_channels; ``FILTER_TILE * n_channels`` is faster:
    :func:`sos_rows`) are scratch. Returns the number of non-finite input
    samples (filtered as 0)."""
    n_samples = data.shape[1]
    step = tile.shape[0]
    bad = 0
    for pos in range(0, n_samples, step):
        stop = min(pos + step, n_samples)
        bad += load_rows(data, pos, stop, tile, 0, False)
        sos_rows(sos, zi, tile, 0, stop - pos, tmp)
        store_rows(tile, 0, out, pos, stop, False)
    return bad


def _bandpass_entry(addresses, shapes):
    return bandpass_block(
        arg_f64_2d(addresses, shapes, 0),
        arg_f64_3d(addresses, shapes, 1),
        arg_f32_2d(addresses, shapes, 2),
        arg_f32_2d(addresses, shapes, 3),
        arg_f32_2d(addresses, shapes, 4),
        arg_f64_1d(addresses, shapes, 5),
    )


bandpass_entry = cfunc_entry(_bandpass_entry)
"""C entry: arguments (sos, zi, data, out, tile, tmp) through an ArgTable."""
