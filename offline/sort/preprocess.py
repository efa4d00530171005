"""Per-chunk preprocessing with overlap margins: band-pass, reference, interpolation, scaling.

Every step is a kernel from ``oe_plugin/kernels`` (the online causal band-pass, the median
reference, the sinc interpolator); this module only decides what to read and in which order.

**Why chunks give the whole-file result.** A chunk ``[start, stop)`` is computed from the
samples ``[start - M, stop + M)`` (clipped to the stream; ``M`` = ``margin_ms`` plus the
interpolation half-width plus any extra context the caller asks for). The band-pass is an IIR
filter started from a zero state at the margin's edge; its start-up transient decays below
float32 rounding well within the margin (measured: after 20 ms at 300 Hz the float32 output is
bit-identical to a run from the start of the file; the default margin is 50 ms). The zero-phase
mode runs the same filter forward, then backward over the time-reversed result; the backward
transient starts at the right edge and dies out the same way. The reference is per sample and
the interpolator reads ``N + 1`` samples, so both are exact. At the stream's ends chunk and
whole-file runs see the same zero state. Hence any chunking gives the same traces as one call
over the whole file, and so the same detections.

Traces leave this module in **noise units**: each channel divided by its fixed noise level
(MAD / 0.6745 of the filtered signal, estimated once from ``noise_windows`` windows spread
over the recording), so thresholds are multiples of the noise and template-matching errors are in
noise variances. Multiply by ``noise_uv`` to get µV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oe_plugin.config import SettingsError
from oe_plugin.kernels.bandpass import (
    FILTER_TILE,
    bandpass_block,
    design_bandpass,
    make_filter_state,
)
from oe_plugin.kernels.drift import (
    VALID_MIN_SUM,
    DriftTables,
    correct_block,
    drift_tables,
    motion_bin_grid,
)
from oe_plugin.kernels.drift import valid_bins as drift_valid_bins
from oe_plugin.kernels.motion import Motion
from oe_plugin.kernels.noise import MAD_TO_SIGMA, abs_row_medians
from oe_plugin.kernels.reference import median_reference
from oe_plugin.kernels.resample import (
    mux_delays,
    output_length,
    resample_block,
    sinc_kernels,
)
from offline.sort.settings import PreprocessSettings


@dataclass(frozen=True)
class Geometry:
    """Rates and the chunk grid. All indices are *output* (sorting-rate) samples unless named
    ``_in`` (recording samples); output index ``i`` is recording time ``i / factor``."""

    n_samples_in: int
    sample_rate_in_hz: float
    factor: int
    chunk: int  # output samples per chunk
    margin: int  # output samples of settle margin on each side

    @property
    def n_samples(self) -> int:
        return self.n_samples_in * self.factor

    @property
    def sample_rate_hz(self) -> float:
        return self.sample_rate_in_hz * self.factor

    @property
    def n_chunks(self) -> int:
        return max(1, math.ceil(self.n_samples / self.chunk))

    def bounds(self, i: int) -> tuple[int, int]:
        """Output-sample range ``[start, stop)`` of chunk ``i``."""
        return i * self.chunk, min((i + 1) * self.chunk, self.n_samples)


def make_geometry(recording, settings: PreprocessSettings) -> Geometry:
    fs = float(recording.sample_rate_hz)
    factor = int(settings.upsample_factor)
    chunk_in = max(1, int(round(settings.chunk_s * fs)))
    margin_in = max(1, int(math.ceil(settings.margin_ms * 1e-3 * fs)))
    return Geometry(int(recording.n_samples), fs, factor, chunk_in * factor, margin_in * factor)


def channel_delays(s: PreprocessSettings, n_channels: int, sample_rate_hz: float) -> np.ndarray:
    """Each channel's sample-and-hold delay in input sample periods: ``sh_delays_us`` when
    given (one per channel), else ``(c mod sh_mux_size) * sh_tick_us``, else zeros."""
    if s.sh_delays_us:
        if len(s.sh_delays_us) != n_channels:
            raise SettingsError(f"preprocess.sh_delays_us: {len(s.sh_delays_us)} delays for a "
                                f"recording of {n_channels} channels (need one per channel)")
        delays = np.asarray(s.sh_delays_us, np.float64) * 1e-6 * sample_rate_hz
        if np.any(np.abs(delays) > s.sinc_half_width / 2):
            raise SettingsError(f"preprocess.sh_delays_us: delays up to "
                                f"{np.abs(delays).max():.2f} samples; the sinc kernel of "
                                f"sinc_half_width {s.sinc_half_width} corrects at most "
                                f"±{s.sinc_half_width / 2} samples")
        return delays
    if s.sh_tick_us > 0:
        return mux_delays(n_channels, s.sh_tick_us * 1e-6, sample_rate_hz, s.sh_mux_size)
    return np.zeros(n_channels)


@dataclass(frozen=True)
class DriftCorrection:
    """What the preprocessor needs to undo probe motion: the estimate, the channel geometry,
    the kriging length scale and the interpolation bin (see :mod:`oe_plugin.kernels.drift`)."""

    motion: Motion
    positions_um: np.ndarray
    groups: np.ndarray
    sigma_um: float = 20.0
    interp_bin_s: float = 1.0

    def tables(self) -> DriftTables:
        """Kriging tables covering the displacements this motion reaches (cached per process:
        chunk tasks of one sort share them)."""
        reach = float(np.abs(self.motion.displacement_um).max(initial=0.0)) + 1.0
        key = (round(reach, 3), self.sigma_um, np.asarray(self.positions_um).tobytes(),
               np.asarray(self.groups).tobytes())
        tab = _TABLES.get(key)
        if tab is None:
            _TABLES.clear()
            tab = _TABLES[key] = drift_tables(self.positions_um, reach, 0.5, self.sigma_um,
                                              groups=self.groups)
        return tab

    def valid_bins(self, start: int, stop: int, sample_rate_hz: float):
        """The matcher's channel mask for samples ``[start, stop)``: ``(valid (B, C) int32,
        bin_n, first bin)`` — per interpolation bin, which channels' corrections are
        interpolated (:func:`oe_plugin.kernels.drift.valid_bins`; ``make_params(valid_bin_n=
        bin_n, valid_bin0=first bin)``)."""
        bin_n = max(1, int(round(self.interp_bin_s * sample_rate_hz)))
        b0 = max(0, int(start)) // bin_n
        b1 = max(int(start), int(stop) - 1) // bin_n
        tab = self.tables()
        depth = np.asarray(self.positions_um, np.float64)[:, 1]
        grid = motion_bin_grid(self.motion, tab, depth, sample_rate_hz, bin_n, b0, b1 - b0 + 1)
        out = np.zeros(grid.shape, np.int32)
        drift_valid_bins(grid, tab.weight, VALID_MIN_SUM, out)
        return out, bin_n, b0

    def apply(self, x: np.ndarray, first_sample: int, sample_rate_hz: float) -> np.ndarray:
        return correct_block(x, first_sample, sample_rate_hz, self.motion, self.tables(),
                             self.positions_um, self.interp_bin_s)


_TABLES: dict = {}


class Preprocessor:
    """Computes noise-scaled traces for any output range of one recording (drift-corrected
    when given a :class:`DriftCorrection`, after filtering and interpolation in time)."""

    def __init__(self, recording, settings: PreprocessSettings, noise_uv: np.ndarray | None = None,
                 drift: DriftCorrection | None = None, whitening=None):
        self.rec = recording
        self.settings = s = settings
        self.geometry = make_geometry(recording, s)
        fs = self.geometry.sample_rate_in_hz
        c = int(recording.n_channels)
        self.n_channels = c
        self.sos = design_bandpass(s.low_hz, min(s.high_hz, 0.45 * fs), s.order, fs)
        delays = channel_delays(s, c, fs)
        self.resampling = s.upsample_factor > 1 or bool(np.any(delays != 0))
        self.kernels = (sinc_kernels(s.upsample_factor, delays, s.sinc_half_width)
                        if self.resampling else None)
        self.half_width = s.sinc_half_width if self.resampling else 0
        self.noise_uv = None if noise_uv is None else np.asarray(noise_uv, np.float32)
        self.drift = drift
        self.whitening = whitening
        """``offline.sort.whitening.Whitening`` applied after the drift correction, or None."""

    # -- filtering in recording samples ----------------------------------------------------
    def _filtered_in(self, start_in: int, stop_in: int) -> tuple[np.ndarray, int]:
        """Filtered µV for recording samples [start_in, stop_in) (+ the interpolation margin).
        Returns (traces (C, n) float32, first recording index of column 0)."""
        g = self.geometry
        settle = int(math.ceil(self.settings.margin_ms * 1e-3 * g.sample_rate_in_hz))
        lo = max(0, start_in - settle - self.half_width)
        hi = min(g.n_samples_in, stop_in + settle + self.half_width)
        x = self.rec.read_uv(lo, hi)
        if self.settings.common_reference == "median":
            median_reference(x, np.zeros(x.shape[0], np.float32))
        _filter(self.sos, x)
        if self.settings.filter == "zero-phase":
            rev = np.ascontiguousarray(x[:, ::-1])
            _filter(self.sos, rev)
            x = rev[:, ::-1]  # a view: the slice below makes the one copy
        a = max(0, start_in - self.half_width)
        b = min(g.n_samples_in, stop_in + self.half_width)
        return np.ascontiguousarray(x[:, a - lo : b - lo]), a

    def traces(self, start: int, stop: int, scaled: bool = True, white: bool = True
               ) -> np.ndarray:
        """Output samples [start, stop) (clipped to the stream): (C, n) float32, in noise units
        when ``scaled`` (needs ``noise_uv``), else µV; whitened when the preprocessor has a
        whitening and ``white``."""
        g = self.geometry
        start, stop = max(0, start), min(g.n_samples, stop)
        f = g.factor
        start_in, stop_in = start // f, -(-stop // f)
        x, first_in = self._filtered_in(start_in, stop_in)
        if self.resampling:
            h = self.half_width
            # zero padding where the stream ends, as the whole-file convenience does
            pad_lo = h - (start_in - first_in)
            pad_hi = h - (first_in + x.shape[1] - stop_in)
            if pad_lo or pad_hi:
                x = np.pad(x, ((0, 0), (pad_lo, pad_hi)))
            out = np.empty((x.shape[0], output_length(x.shape[1], self.kernels)), np.float32)
            resample_block(x, self.kernels, out)
            x = out
            x = x[:, start - start_in * f : start - start_in * f + (stop - start)]
        else:
            x = x[:, start - first_in : stop - first_in]
        x = np.ascontiguousarray(x)
        if self.drift is not None:
            x = self.drift.apply(x, start, g.sample_rate_hz)
        if self.whitening is not None and white:
            x = self.whitening.apply(x)
        if scaled:
            x /= self.noise_uv[:, None]
        return x

    def whiten_scaled(self, x: np.ndarray) -> np.ndarray:
        """The whitened copy of plain noise-unit traces ``x`` (C, n) (as :meth:`traces` with
        ``white``, up to float32 rounding)."""
        scale = np.where(np.isfinite(self.noise_uv), self.noise_uv, 0).astype(np.float32)
        inv = np.where(scale > 0, 1 / np.where(scale > 0, scale, 1), 0).astype(np.float32)
        return self.whitening.apply(x * scale[:, None]) * inv[:, None]

    def noise_windows(self) -> list[tuple[int, int]]:
        """The ``noise_windows`` sample ranges of ``noise_window_s``, evenly spread over the
        stream, that set the noise levels (and the whitening's noise correlation)."""
        g = self.geometry
        s = self.settings
        win = min(g.n_samples, max(1, int(round(s.noise_window_s * g.sample_rate_hz))))
        starts = np.unique(np.linspace(0, g.n_samples - win, s.noise_windows).round())
        return [(int(a), int(a) + win) for a in starts]

    def estimate_noise(self, threads: int = 1) -> np.ndarray:
        """Fixed per-channel noise (µV): MAD/0.6745 over the :meth:`noise_windows`
        (independent of the chunk size, so every chunking sees the same thresholds). A flat
        channel gets +inf (never detects). ``threads``: windows read and filtered at once
        (the kernels release the GIL; the same result for any number)."""
        windows = self.noise_windows()
        win = windows[0][1] - windows[0][0]
        x = np.empty((self.n_channels, len(windows) * win), np.float32)

        def one(i):
            a, b = windows[i]
            np.abs(self.traces(a, b, scaled=False), out=x[:, i * win:(i + 1) * win])

        in_threads(one, len(windows), threads)
        self.noise_uv = noise = mad_noise(x)
        return noise

    def windows(self, spans, threads: int = 1, **kw) -> list[np.ndarray]:
        """:meth:`traces` of each ``(start, stop)`` of ``spans`` (keyword arguments passed on),
        ``threads`` at once."""
        out = [None] * len(spans)

        def one(i):
            out[i] = self.traces(*spans[i], **kw)

        in_threads(one, len(spans), threads)
        return out


def in_threads(fn, n: int, threads: int) -> None:
    """``fn(i)`` for ``i < n`` on up to ``threads`` threads (in this thread when 1); the first
    exception raised is raised here."""
    if threads <= 1 or n <= 1:
        for i in range(n):
            fn(i)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, n)) as pool:
        for f in [pool.submit(fn, i) for i in range(n)]:
            f.result()


def mad_noise(abs_x: np.ndarray) -> np.ndarray:
    """(C,) float32 noise levels MAD / 0.6745 of ``abs_x`` (C, n) float32 = |samples|
    (the medians exactly ``np.median``'s, :func:`~oe_plugin.kernels.noise.abs_row_medians`);
    a flat channel (or a NaN) gets +inf (never detects)."""
    abs_x = np.ascontiguousarray(abs_x, np.float32)
    noise = np.empty(abs_x.shape[0], np.float32)
    abs_row_medians(abs_x, noise)
    noise *= np.float32(MAD_TO_SIGMA)
    noise[~(noise > 0)] = np.inf
    return noise


def _filter(sos: np.ndarray, x: np.ndarray) -> None:
    """The online causal band-pass kernel over (C, n) float32, in place, from a zero state."""
    c = x.shape[0]
    bandpass_block(sos, make_filter_state(sos, c), x, x, np.zeros((256, c), np.float32),
                   np.zeros(FILTER_TILE * c, np.float64))
