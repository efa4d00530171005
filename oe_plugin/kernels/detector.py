"""The detection state object: allocates every array the detection kernel needs, once.

:class:`SpikeDetector` is the one driver-facing object over the kernel
:func:`oe_plugin.kernels.detect_kernel.detect_block` (this file holds its state, that one its
code):

- offline code calls :meth:`SpikeDetector.process` (the ``@njit`` way in, numpy arrays);
- ``process()`` in a Python Processor module calls :meth:`SpikeDetector.process_online` (the
  ``@cfunc`` way in through ``ctypes.PYFUNCTYPE``; safe on the GUI's GIL-less audio thread).

Both run the same compiled kernel over the same state, so they give identical events.
"""

from __future__ import annotations

import math

import numpy as np

from oe_plugin.kernels import detect_kernel as K
from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.bandpass import FILTER_TILE, design_bandpass, make_filter_state
from oe_plugin.kernels.noise import make_noise_state, reset_noise_state
from oe_plugin.settings import DetectSettings, FilterSettings

POLARITY_CODES = {"negative": -1.0, "positive": 1.0, "both": 0.0}
METHOD_CODES = {"bipolar": K.METHOD_BIPOLAR, "multiphasic": K.METHOD_MULTIPHASIC}

EVENT_DTYPE = np.dtype(
    [("sample_index", np.int64), ("channel_index", np.int32), ("amplitude", np.float32)]
)
"""A detection: ``amplitude`` is the signed filtered peak in the input's units — µV, or noise
units for a detector built with ``noise_units=True``."""


def self_only_neighbours(n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR neighbour lists where each channel neighbours only itself."""
    return np.arange(n_channels + 1, dtype=np.int32), np.arange(n_channels, dtype=np.int32)


def _us_to_samples(us: float, sample_rate_hz: float) -> int:
    return max(1, int(round(us * sample_rate_hz / 1e6)))


class SpikeDetector:
    """Streaming band-pass + noise + threshold + lockout detector for ``n_channels`` channels.

    Parameters
    ----------
    n_channels, sample_rate_hz : the stream's shape and rate.
    filter_settings, detect_settings : see :mod:`oe_plugin.settings`.
    neighbours : CSR ``(indptr, indices)`` int32 lists of each channel's lockout neighbours
        (self included), e.g. from :func:`oe_plugin.probe.neighbour_lists`; ``None`` = self only.
    max_block : largest block expected; bigger blocks are still handled (the output buffer grows,
        which allocates once, off the usual hot path).
    noise_units : the blocks come already divided by each channel's noise (the sorter's traces):
        the threshold is then fixed at ``threshold_mad`` of those units (no floor, no running
        noise rule) and event amplitudes are in noise units. False: µV, ``threshold_uv`` /
        ``threshold_floor_uv`` / the MAD rule as the settings say.
    """

    def __init__(
        self,
        n_channels: int,
        sample_rate_hz: float,
        filter_settings: FilterSettings | None = None,
        detect_settings: DetectSettings | None = None,
        neighbours: tuple[np.ndarray, np.ndarray] | None = None,
        max_block: int = 8192,
        noise_units: bool = False,
    ):
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if not sample_rate_hz > 0:
            raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
        fs = float(sample_rate_hz)
        self.n_channels = int(n_channels)
        self.sample_rate_hz = fs
        self.filter_settings = fs_ = filter_settings or FilterSettings()
        self.detect_settings = ds = detect_settings or DetectSettings()
        fs_.check("filter", fs)
        ds.check("detect")
        if fs_.enabled:
            self.sos = design_bandpass(fs_.low_hz, fs_.high_hz, fs_.order, fs)
        else:
            self.sos = np.zeros((0, 6), dtype=np.float64)
        self.lockout_samples = _us_to_samples(ds.lockout_us, fs)
        self.phase_window_samples = _us_to_samples(ds.phase_window_us, fs)
        self.decision_delay = max(self.lockout_samples + 2, self.phase_window_samples + 1)
        span = K.SUBSTEP + self.decision_delay + self.phase_window_samples + 64
        ring_len = 1 << math.ceil(math.log2(span))
        decimate = ds.noise_decimate
        self.noise_init_len = max(1, math.ceil(ds.noise_init_ms * 1e-3 * fs / decimate))
        self.noise_chunk_len = max(1, int(round(ds.noise_window_ms * 1e-3 * fs / decimate)))

        if neighbours is None:
            neighbours = self_only_neighbours(self.n_channels)
        nb_ptr, nb_idx = (np.ascontiguousarray(a, dtype=np.int32) for a in neighbours)
        if nb_ptr.shape != (self.n_channels + 1,) or (nb_idx.size and nb_idx.max() >= n_channels):
            raise ValueError("neighbour lists do not match the channel count")
        if nb_idx.size == 0:  # keep every array non-empty for the C entry
            nb_idx = np.zeros(1, dtype=np.int32)
        self.nb_ptr, self.nb_idx = nb_ptr, nb_idx

        params = np.zeros(K.N_PARAMS, dtype=np.float64)
        params[K.P_METHOD] = METHOD_CODES[ds.method]
        params[K.P_POLARITY] = POLARITY_CODES[ds.polarity]
        params[K.P_THRESHOLD_MAD] = ds.threshold_mad
        self.noise_units = bool(noise_units)
        self.fixed_threshold = float(ds.threshold_mad if noise_units else ds.threshold_uv)
        """The fixed threshold in the input's units (0: the running MAD rule)."""
        params[K.P_THRESHOLD_FIXED] = self.fixed_threshold
        params[K.P_THRESHOLD_FLOOR] = 0.0 if noise_units else ds.threshold_floor_uv
        params[K.P_LOCKOUT] = self.lockout_samples
        params[K.P_PHASE_WINDOW] = self.phase_window_samples
        params[K.P_PHASE2_FRACTION] = ds.phase2_fraction
        params[K.P_NOISE_DECIMATE] = decimate
        params[K.P_NOISE_INIT_LEN] = self.noise_init_len
        params[K.P_NOISE_CHUNK_LEN] = self.noise_chunk_len
        params[K.P_WRITE_BACK] = 1.0 if fs_.write_downstream else 0.0
        params[K.P_DECISION_DELAY] = self.decision_delay
        self.params = params

        c = self.n_channels
        self.zi = make_filter_state(self.sos, c)
        self.ring = np.zeros((ring_len, c), dtype=np.float32)
        self.tmp = np.zeros(FILTER_TILE * c, dtype=np.float64)
        (
            self.noise_ring,
            self.noise_counts,
            self.noise_bin_uv,
            self.noise_hist,
            self.noise_sched,
            self.noise_uv,
            self.noise_scratch,
        ) = make_noise_state(c, self.noise_init_len, ds.noise_history)
        self.thr_uv = np.zeros(c, dtype=np.float32)
        per_channel = (K.SUBSTEP + self.decision_delay + self.lockout_samples) // 2 + 4
        self.cand_t = np.zeros((c, per_channel), dtype=np.int64)
        self.cand_a = np.zeros((c, per_channel), dtype=np.float32)
        self.cand_n = np.zeros(c, dtype=np.int64)
        self.counters = np.zeros(K.N_COUNTERS, dtype=np.int64)
        self._alloc_outputs(max_block)
        self.reset()

    # -- state -----------------------------------------------------------------------------
    def _alloc_outputs(self, max_block: int) -> None:
        """Output capacity: two accepted events on one channel are > lockout apart."""
        self.max_block = int(max_block)
        span = self.max_block + K.SUBSTEP + self.decision_delay
        capacity = self.n_channels * (span // (self.lockout_samples + 1) + 2)
        self.out_t = np.zeros(capacity, dtype=np.int64)
        self.out_c = np.zeros(capacity, dtype=np.int32)
        self.out_a = np.zeros(capacity, dtype=np.float32)
        self._dummy_block = np.zeros((self.n_channels, 1), dtype=np.float32)
        self._dummy_addr = self._dummy_block.ctypes.data
        self._table = ArgTable([self._dummy_block, *self._state_arrays()])

    def _state_arrays(self):
        return (
            self.sos,
            self.zi,
            self.ring,
            self.tmp,
            self.noise_ring,
            self.noise_counts,
            self.noise_bin_uv,
            self.noise_hist,
            self.noise_sched,
            self.noise_uv,
            self.noise_scratch,
            self.thr_uv,
            self.nb_ptr,
            self.nb_idx,
            self.cand_t,
            self.cand_a,
            self.cand_n,
            self.out_t,
            self.out_c,
            self.out_a,
            self.params,
            self.counters,
        )

    def reset(self) -> None:
        """Back to the state before the first sample (a new acquisition)."""
        for a in (self.zi, self.ring, self.cand_n):
            a[...] = 0
        reset_noise_state(
            self.noise_ring,
            self.noise_counts,
            self.noise_bin_uv,
            self.noise_hist,
            self.noise_sched,
            self.noise_uv,
        )
        self.counters[...] = 0
        self.counters[K.C_HORIZON] = -1
        fixed = self.fixed_threshold
        self.thr_uv[...] = fixed if fixed > 0 else np.inf

    # -- the two ways in -------------------------------------------------------------------
    def process(self, block: np.ndarray) -> np.ndarray:
        """Offline/main-thread way in. ``block``: (n_channels, n) float32 µV (filtered in place
        if write_downstream). Returns the events decided by this call as an EVENT_DTYPE array."""
        block = self._check(block)
        if block.shape[1] > self.max_block:
            self._alloc_outputs(block.shape[1])
        n = K.detect_block(block, *self._state_arrays())
        return self.events(n)

    def process_rows(self, block_nc: np.ndarray) -> np.ndarray:
        """Offline way in for sample-major data, (n, n_channels) float32 µV (Open Ephys
        Binary's own layout): the same events as :meth:`process` on its transpose, without
        transposing. Returns the events decided by this call (EVENT_DTYPE)."""
        block_nc = np.asarray(block_nc)
        if block_nc.ndim != 2 or block_nc.shape[1] != self.n_channels:
            raise ValueError(
                f"block must have shape (n_samples, {self.n_channels}), got {block_nc.shape}"
            )
        if block_nc.dtype != np.float32 or not block_nc.flags.c_contiguous:
            block_nc = np.ascontiguousarray(block_nc, dtype=np.float32)
        if block_nc.shape[0] > self.max_block:
            self._alloc_outputs(block_nc.shape[0])
        self.params[K.P_SAMPLE_MAJOR] = 1.0
        try:
            n = K.detect_block(block_nc, *self._state_arrays())
        finally:
            self.params[K.P_SAMPLE_MAJOR] = 0.0
        return self.events(n)

    def process_online(self, block: np.ndarray) -> int:
        """GUI audio-thread way in (through the cfunc; takes no GIL, allocates nothing unless the
        block is larger than any before). Returns n; the events are ``out_t/out_c/out_a[:n]``.
        ``block`` must already be float32, C-contiguous, (n_channels, n)."""
        if block.shape[1] > self.max_block:
            self._alloc_outputs(block.shape[1])
        tab = self._table
        tab.set(0, block)
        n = tab.call(_DETECT_CALLER)
        tab.restore(0, self._dummy_block, self._dummy_addr)
        return n

    def events(self, n: int) -> np.ndarray:
        """Copy of the first ``n`` output events as an EVENT_DTYPE structured array."""
        ev = np.empty(n, dtype=EVENT_DTYPE)
        ev["sample_index"] = self.out_t[:n]
        ev["channel_index"] = self.out_c[:n]
        ev["amplitude"] = self.out_a[:n]
        return ev

    def _check(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.n_channels:
            raise ValueError(
                f"block must have shape ({self.n_channels}, n_samples), got {block.shape}"
            )
        if block.dtype != np.float32 or not block.flags.c_contiguous:
            block = np.ascontiguousarray(block, dtype=np.float32)
        return block

    # -- status ----------------------------------------------------------------------------
    @property
    def samples_processed(self) -> int:
        return int(self.counters[K.C_PROCESSED])

    @property
    def stats(self) -> dict:
        """Counters worth reporting: events, drops, non-finite input samples."""
        return {
            "samples_processed": int(self.counters[K.C_PROCESSED]),
            "events": int(self.counters[K.C_EVENTS_TOTAL]),
            "events_dropped": int(self.counters[K.C_EVENTS_DROPPED]),
            "candidates_dropped": int(self.counters[K.C_CAND_DROPPED]),
            "nonfinite_samples": int(self.counters[K.C_NONFINITE]),
        }

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) both ways in without touching this state."""
        scratch = SpikeDetector(
            self.n_channels,
            self.sample_rate_hz,
            self.filter_settings,
            self.detect_settings,
            (self.nb_ptr, self.nb_idx),
            max_block=64,
        )
        block = np.zeros((self.n_channels, 64), dtype=np.float32)
        scratch.process(block.copy())
        scratch.process_online(block)


_DETECT_CALLER = entry_caller(K.detect_entry)
