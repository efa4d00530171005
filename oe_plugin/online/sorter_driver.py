"""The online sorter's driver: every array the kernel
:func:`oe_plugin.kernels.sort_kernel.sort_block` needs, allocated once, and both ways in.

The online sorter's files: ``modules/online_sorter.py`` (what the GUI loads) ->
``online/sorter_module.py`` (the module: settings, files, TTLs) -> ``online/sorter_driver.py``
(this: state and calls) -> ``kernels/sort_kernel.py`` (the numba code), with
``online/match_model.py`` (what it takes from a sort folder).

:class:`OnlineSorter` is to detection + matching what
:class:`~oe_plugin.kernels.detector.SpikeDetector` is to detection: ``process()`` is the
``@njit`` way in (tests, offline), ``process_online()`` the ``@cfunc`` way in (the GUI's
GIL-less audio thread; no allocation unless a block is larger than any before).

Without a :class:`~oe_plugin.online.match_model.SortModel` it is a detector on µV (unit -1 for
every spike); with one, raw µV are scaled by the sort's noise, detected with the sort's
detection settings and fixed threshold (``threshold_mad`` noise units, as offline), and every
event is matched against the sort's templates. When the model has a drift stage
(:attr:`SortModel.drift`: the sort corrected probe motion), each sub-chunk of raw µV is first
drift-corrected (kriging rows of its interpolation bin, bins counted in stream samples from
:meth:`reset`) into a fixed (C, 256) scratch, then scaled, filtered and sorted as above.
With live motion tracking (:attr:`SortModel.track`, ``[match] track_motion``), the drift stage
has one live row that :class:`~oe_plugin.online.motion_tracker.Tracker`'s state, inside the
same C entry, rewrites every ``track_every_s`` of stream samples
(:mod:`oe_plugin.kernels.motion_track`); :attr:`tracker` holds its history and counters.
Every output record carries the displacement that corrected its channel (``out_d``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from oe_plugin.kernels import detect_kernel as D
from oe_plugin.kernels import sort_kernel as K
from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.detector import SpikeDetector
from oe_plugin.kernels.drift import ONLINE_VALID_MIN_SUM
from oe_plugin.kernels.match import P_MASK, make_params, match_tables, reset_overlap_budget
from oe_plugin.online.match_model import SortModel, match_params
from oe_plugin.online.motion_tracker import Tracker
from oe_plugin.settings import DetectSettings, FilterSettings

SUB = 256
"""Samples per sub-chunk (the detector's decision step)."""


def match_reach(model: SortModel) -> tuple[int, int]:
    """(samples before, samples after) an event that its match may read or peel."""
    width = model.templates.shape[2]
    s, lw = model.max_shift, model.pair_window
    return model.pre + 2 * s + lw, (width - model.pre) + 2 * s + lw + 1


def detection_settings(model: SortModel | None, filter_settings: FilterSettings | None,
                       detect_settings: DetectSettings | None):
    """(filter, detect) the sorter runs: the sort's or the given. With a sort the detector runs on
    traces in the sort's noise units (``SpikeDetector(..., noise_units=True)``: a fixed
    ``threshold_mad``, as offline)."""
    if model is None:
        return filter_settings or FilterSettings(), detect_settings or DetectSettings()
    return replace(model.filter, write_downstream=False), model.detect


class OnlineSorter:
    def __init__(self, n_channels: int, sample_rate_hz: float, model: SortModel | None = None,
                 filter_settings: FilterSettings | None = None,
                 detect_settings: DetectSettings | None = None, neighbours=None,
                 write_downstream: bool = False, max_block: int = 8192):
        c = self.n_channels = int(n_channels)
        self.sample_rate_hz = float(sample_rate_hz)
        self.model = model
        fset, dset = detection_settings(model, filter_settings, detect_settings)
        if model is not None:
            neighbours = model.neighbours
        self.filter_settings, self.detect_settings = fset, dset
        det = self.detector = SpikeDetector(
            c, sample_rate_hz, replace(fset, write_downstream=False), dset, neighbours,
            max_block=SUB, noise_units=model is not None)
        det.params[D.P_SAMPLE_MAJOR] = 1.0
        self.scratch = np.zeros((SUB, c), np.float32)
        if model is not None:
            self.noise = np.ascontiguousarray(model.noise_uv, np.float32)
            ok = np.isfinite(self.noise) & (self.noise > 0)
            self.inv_noise = np.where(ok, 1.0 / np.where(ok, self.noise, 1), 0).astype(np.float32)
            self.noise = np.where(ok, self.noise, 0).astype(np.float32)
        else:
            self.noise = np.ones(c, np.float32)
            self.inv_noise = np.ones(c, np.float32)
        matching = model is not None and model.n_units > 0
        if matching:
            tpl, chans = model.templates, model.channels
            thr, peak = model.thresholds, model.peak_uv
            cand_ptr, cand_idx = model.cand_ptr, model.cand_idx
            self.need_before, self.need_after = match_reach(model)
            self.mparams = match_params(model)
        else:
            tpl = np.zeros((1, 1, 1), np.float32)
            chans = np.full((1, 1), -1, np.int32)
            thr = np.zeros(1, np.float32)
            peak = np.zeros(1, np.float32)
            cand_ptr, cand_idx = np.zeros(c + 1, np.int32), np.zeros(1, np.int32)
            self.need_before, self.need_after = 0, 0
            self.mparams = make_params(0, 0)
        self.templates = np.ascontiguousarray(tpl, np.float32)
        self.tpl_chan = np.ascontiguousarray(chans, np.int32)
        self.thresholds = np.ascontiguousarray(thr, np.float32)
        self.tpl_peak_uv = np.ascontiguousarray(peak, np.float32)
        self.cand_ptr = np.ascontiguousarray(cand_ptr, np.int32)
        self.cand_idx = np.ascontiguousarray(cand_idx, np.int32)
        self.tpl_norm2, self.tpl_rows, self.work, self.iwork = match_tables(
            self.templates, self.cand_ptr, c, self.mparams)
        lag = det.decision_delay + 3 * SUB + 64
        span = self.need_before + self.need_after + lag
        self.ring_len = 1 << math.ceil(math.log2(max(span, 2)))
        self.mring = np.zeros((self.ring_len if matching else 2, c), np.float32)
        self.mparams[P_MASK] = self.ring_len - 1
        per_ch = (self.need_after + lag) // (det.lockout_samples + 1) + 2
        qcap = c * per_ch if matching else 1
        self.q_t = np.zeros(qcap, np.int64)
        self.q_c = np.zeros(qcap, np.int32)
        self.q_a = np.zeros(qcap, np.float32)
        self.one = [np.zeros(1, d) for d in (np.int64, np.int32, np.int32, np.int32, np.float32,
                                              np.float32, np.int32, np.int32, np.int32,
                                              np.float32, np.float32)]
        self.sparams = np.zeros(K.N_SPARAMS, np.float64)
        self.sparams[K.SP_NEED_AFTER] = self.need_after
        self.sparams[K.SP_MATCH] = 1.0 if matching else 0.0
        self.sparams[K.SP_WRITE_DOWNSTREAM] = 1.0 if write_downstream else 0.0
        self.scount = np.zeros(K.N_SCOUNT, np.int64)
        self.matching = matching
        self.drift = model.drift if model is not None else None
        lut = model.unit_lut if matching else None
        identity = lut is None or np.array_equal(lut[:-1], np.arange(lut.shape[0] - 1))
        self.unit_lut = None if identity else np.ascontiguousarray(lut, np.int32)
        track = model.track if (model is not None and matching and self.drift is not None) \
            else None
        lag_n = det.decision_delay + self.need_after + 2 * SUB + 64
        self.tracker = Tracker(track, self.drift.tables if self.drift is not None else None, c,
                               sample_rate_hz, lag_n)
        if self.drift is not None:
            dr = self.drift
            self.dbuf = np.zeros((c, SUB), np.float32)
            self.bin_grid = np.ascontiguousarray(dr.bin_grid, np.int32)
            self.d_index = np.ascontiguousarray(dr.index, np.int32)
            self.d_weight = np.ascontiguousarray(dr.weight, np.float32)
            self.sparams[K.SP_DRIFT_BIN_N] = float(dr.bin_n)
            # template rows on channels whose correction is extrapolated are left out of fits
            self.d_valid = np.ascontiguousarray(dr.tables.valid(ONLINE_VALID_MIN_SUM), np.int32)
            self.vmask = np.ones((1, c), np.int32)
        else:
            self.dbuf = np.zeros((1, 1), np.float32)
            self.bin_grid = np.zeros((1, 1), np.int32)
            self.d_index = np.zeros((1, 1, 1), np.int32)
            self.d_weight = np.zeros((1, 1, 1), np.float32)
            self.d_valid = np.zeros((1, 1), np.int32)
            self.vmask = np.zeros((1, 0), np.int32)  # no mask
        white = model.whitening if model is not None else None
        if white is not None:  # the sort's spatial whitening, after the drift stage
            self.wbuf = np.zeros((c, SUB), np.float32)
            self.w_index, self.w_weight = white
            self.w_grid = np.zeros(c, np.int32)
            self.sparams[K.SP_WHITE_DETECT] = 1.0 if model.whiten_detection else 0.0
            self.wzi = np.zeros_like(det.zi)  # the whitened rows' own band-pass state
        else:
            self.wzi = np.zeros((1, 1, 1), np.float64)
            self.wbuf = np.zeros((1, 1), np.float32)
            self.w_index = np.zeros((1, 1, 1), np.int32)
            self.w_weight = np.zeros((1, 1, 1), np.float32)
            self.w_grid = np.zeros(1, np.int32)
        self._dummy_block = np.zeros((c, 1), np.float32)
        self._dummy_addr = self._dummy_block.ctypes.data
        self._alloc_outputs(max_block)
        self.reset()

    def _alloc_outputs(self, max_block: int) -> None:
        self.max_block = int(max_block)
        det = self.detector
        span = self.max_block + SUB + det.decision_delay
        cap = 2 * (self.n_channels * (span // (det.lockout_samples + 1) + 2) + self.q_t.shape[0])
        self.out_t = np.zeros(cap, np.int64)
        self.out_c = np.zeros(cap, np.int32)
        self.out_u = np.zeros(cap, np.int32)
        self.out_a = np.zeros(cap, np.float32)
        self.out_d = np.full(cap, np.nan, np.float32)
        self._u_tmp = np.zeros(cap, np.int32)
        self._table = ArgTable(self._arrays(self._dummy_block))

    def _arrays(self, block):
        det = self.detector
        return (block, self.noise, self.inv_noise, self.scratch, *det._state_arrays(),
                self.mring, self.q_t, self.q_c, self.q_a, self.templates, self.tpl_chan,
                self.tpl_norm2, self.tpl_rows, self.cand_ptr, self.cand_idx,
                self.thresholds, self.tpl_peak_uv, self.mparams, self.work, self.iwork,
                *self.one, self.out_t, self.out_c, self.out_a, self.out_u, self.sparams,
                self.scount, self.dbuf, self.bin_grid, self.d_index, self.d_weight, self.out_d,
                *self.tracker.arrays(), self.d_valid, self.vmask, self.wbuf, self.w_index,
                self.w_weight, self.w_grid, self.wzi)

    def reset(self) -> None:
        """Back to the state before the first sample (a new acquisition)."""
        self.detector.reset()
        self.wzi[...] = 0
        self.mring[...] = 0
        self.scount[...] = 0
        self.iwork[...] = 0
        reset_overlap_budget(self.work, self.mparams)
        self.tracker.reset(self.bin_grid)

    def process(self, block: np.ndarray) -> int:
        """``@njit`` way in; ``block`` (C, n) float32 (rewritten when write_downstream).
        Returns n; the spikes are ``out_t/out_c/out_a/out_u[:n]``."""
        if block.shape[1] > self.max_block:
            self._alloc_outputs(block.shape[1])
        return self._units(int(K.sort_block(*self._arrays(block))))

    def process_online(self, block: np.ndarray) -> int:
        """The GIL-free way in (cfunc through ctypes): same as :meth:`process`."""
        if block.shape[1] > self.max_block:
            self._alloc_outputs(block.shape[1])
        tab = self._table
        tab.set(0, block)
        n = tab.call(_SORT_CALLER)
        tab.restore(0, self._dummy_block, self._dummy_addr)
        return self._units(n)

    def _units(self, n: int) -> int:
        """The kernel labels matches with their template: to units, where a unit owns several
        (``SortModel.unit_lut``; -1 wraps to its last entry, -1). No allocation."""
        if self.unit_lut is not None and n > 0:
            np.take(self.unit_lut, self.out_u[:n], out=self._u_tmp[:n], mode="wrap")
            self.out_u[:n] = self._u_tmp[:n]
        return n

    def spikes(self, n: int) -> np.ndarray:
        """Copy of the first ``n`` output records (SPIKE_DTYPE)."""
        out = np.empty(n, SPIKE_DTYPE)
        out["sample_index"] = self.out_t[:n]
        out["channel_index"] = self.out_c[:n]
        out["amplitude_uv"] = self.out_a[:n]
        out["unit"] = self.out_u[:n]
        out["displacement_um"] = self.out_d[:n]
        return out

    @property
    def n_units(self) -> int:
        return self.model.n_units if self.model is not None else 0

    @property
    def stats(self) -> dict:
        s = self.detector.stats
        s.update(events_matched=int(self.scount[K.S_MATCHED]),
                 spikes_accepted=int(self.scount[K.S_ACCEPTED]),
                 events_pending=int(self.scount[K.S_Q_COUNT]),
                 queue_dropped=int(self.scount[K.S_Q_DROPPED]),
                 output_dropped=int(self.scount[K.S_OUT_DROPPED]))
        s.update(self.tracker.stats)
        return s

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) both ways in, on a scratch copy of the state."""
        scratch = OnlineSorter(self.n_channels, self.sample_rate_hz, self.model,
                               self.filter_settings, self.detect_settings,
                               (self.detector.nb_ptr, self.detector.nb_idx),
                               bool(self.sparams[K.SP_WRITE_DOWNSTREAM]), max_block=64)
        block = np.zeros((self.n_channels, 64), np.float32)
        scratch.process(block.copy())
        scratch.process_online(block)


SPIKE_DTYPE = np.dtype([("sample_index", np.int64), ("channel_index", np.int32),
                        ("amplitude_uv", np.float32), ("unit", np.int32),
                        ("displacement_um", np.float32)])
"""``displacement_um``: what the drift stage shifted the spike's channel by at its event time
(µm, a drift-table grid value; NaN without a drift stage)."""

_SORT_CALLER = entry_caller(K.sort_entry)


class UpstreamClassifier:
    """Classifies spikes from an upstream Open Ephys Spike Detector (``handle_spike``) with the
    matching kernel's C entry (:data:`oe_plugin.kernels.match.match_entry`, GIL-free).

    The Spike Detector sends each spike's waveform ``(k, n_samples)`` µV on its electrode's k
    channels, sample ``pre_samples`` at the threshold crossing / peak. An electrode named
    ``"<anything> N"`` with k channels is taken to be stream channels ``(N-1)*k .. (N-1)*k+k-1``
    (the Spike Detector's default when it builds electrodes over consecutive channels). The
    waveform is scaled to the sort's noise units; the templates are cropped (once, here) to the
    samples every shift of ``±max_shift`` keeps inside the waveform, and restricted (once per
    electrode) to the electrode's channels, norms recomputed; then one event at ``pre_samples``
    on the electrode's largest channel is matched (no peeling, no pairs). Accepted: the
    template's unit at ``sample_number + shift``; otherwise unit -1.

    Results queue in ``out_t/out_c/out_a/out_u`` until :meth:`take` (``process()``) moves them.
    """

    def __init__(self, model: SortModel, n_channels: int, pre_samples: int, n_samples: int,
                 capacity: int = 4096):
        from oe_plugin.kernels.match import match_entry
        from oe_plugin.online.match_model import SortModelError

        self.n_channels = int(n_channels)
        self.pre_samples, self.n_samples = int(pre_samples), int(n_samples)
        s = int(model.max_shift)
        width = model.templates.shape[2]
        start = max(0, model.pre - self.pre_samples + s)
        stop = min(width, model.pre - self.pre_samples + self.n_samples - s)
        if stop - start < 8 or not 0 <= self.pre_samples < self.n_samples:
            raise SortModelError(
                f"[match] upstream waveforms of {self.n_samples} samples ({self.pre_samples} "
                f"before the peak) cover too little of the sort's templates ({width} samples, "
                f"{model.pre} before the peak) for shifts of ±{s}")
        self.templates = np.ascontiguousarray(model.templates[:, :, start:stop], np.float32)
        self.pre = model.pre - start
        self.chans = np.ascontiguousarray(model.channels, np.int32)
        self.row_norm2 = (self.templates.astype(np.float64) ** 2).sum(axis=2)
        self.thresholds = np.ascontiguousarray(model.thresholds, np.float32)
        self.cand_ptr = np.ascontiguousarray(model.cand_ptr, np.int32)
        self.cand_idx = np.ascontiguousarray(model.cand_idx, np.int32)
        self.unit_lut = model.unit_lut
        noise = np.asarray(model.noise_uv, np.float32)
        ok = np.isfinite(noise) & (noise > 0)
        self.inv_noise = np.where(ok, 1.0 / np.where(ok, noise, 1), 0).astype(np.float32)
        self.params = make_params(self.pre, s, model.amplitude_min, model.amplitude_max,
                                  mask=-1, row_offset=0, subtract=False, pair_window=0)
        self.src = np.zeros((self.n_samples, self.n_channels), np.float32)
        self._last = np.zeros(0, np.int64)
        self.ev_t = np.zeros(1, np.int64)
        self.ev_c = np.zeros(1, np.int32)
        self.one = [np.zeros(1, d) for d in (np.int32, np.int32, np.float32, np.float32,
                                              np.int32, np.int32, np.int32, np.float32,
                                              np.float32)]
        self._electrodes: dict = {}
        chan0, norm0 = self._restrict(np.arange(0))
        _, self.tpl_rows, self.work, self.iwork = match_tables(self.templates, self.cand_ptr,
                                                               self.n_channels, self.params)
        self._table = ArgTable([self.src, self.ev_t, self.ev_c, self.templates, chan0, norm0,
                                self.tpl_rows, self.cand_ptr, self.cand_idx, self.thresholds,
                                self.params, self.work, self.iwork, *self.one,
                                np.zeros((1, 0), np.int32)])  # no channel mask
        self._caller = entry_caller(match_entry)
        cap = int(capacity)
        self.out_t = np.zeros(cap, np.int64)
        self.out_c = np.zeros(cap, np.int32)
        self.out_a = np.zeros(cap, np.float32)
        self.out_u = np.zeros(cap, np.int32)
        self.n = 0
        self.n_classified = 0
        self.n_accepted = 0
        self.n_dropped = 0  # queue full (process() not called for a long time)
        self.n_unmapped = 0  # electrode name/channels not on this stream, or wrong shape
        self._table.call(self._caller)  # exercise the entry once (import-time work)

    def _restrict(self, channels: np.ndarray):
        keep = np.isin(self.chans, channels) & (self.chans >= 0)
        chan = np.ascontiguousarray(np.where(keep, self.chans, -1), np.int32)
        norm = np.ascontiguousarray((self.row_norm2 * keep).sum(axis=1), np.float32)
        return chan, norm

    def electrode(self, name: str, k: int):
        """(channels, restricted template channels, norms) of an electrode, or None."""
        key = (name, k)
        hit = self._electrodes.get(key)
        if hit is not None or key in self._electrodes:
            return hit
        digits = ""
        for ch in reversed(str(name).strip()):
            if not ch.isdigit():
                break
            digits = ch + digits
        hit = None
        if digits and k > 0 and int(digits) >= 1:
            chans = (int(digits) - 1) * k + np.arange(k, dtype=np.int64)
            if chans[-1] < self.n_channels:
                hit = (chans, *self._restrict(chans))
        self._electrodes[key] = hit
        return hit

    def classify(self, electrode_name, sample_number: int, spike_data) -> int:
        """Classify one spike; returns its unit (-1: none accepted, -2: not classified)."""
        data = spike_data
        if (getattr(data, "ndim", 0) != 2 or data.shape[1] != self.n_samples
                or data.shape[0] < 1):
            self.n_unmapped += 1
            return -2
        hit = self.electrode(electrode_name, int(data.shape[0]))
        if hit is None:
            self.n_unmapped += 1
            return -2
        chans, tpl_chan, norm = hit
        src = self.src
        if self._last.size:
            src[:, self._last] = 0.0
        src[:, chans] = (np.asarray(data, np.float32) * self.inv_noise[chans][:, None]).T
        self._last = chans
        peak_row = int(np.argmax(np.abs(data).max(axis=1)))
        self.ev_t[0] = self.pre_samples
        self.ev_c[0] = chans[peak_row]
        tab = self._table
        tab.set(4, tpl_chan)
        tab.set(5, norm)
        tab.call(self._caller)
        self.n_classified += 1
        unit, shift = int(self.one[0][0]), int(self.one[1][0])
        if self.one[4][0] >= 1:
            self.n_accepted += 1
            unit = int(self.unit_lut[unit])  # a unit may own several templates
            t = int(sample_number) + shift
        else:
            unit, t = -1, int(sample_number)
        i = self.n
        if i >= self.out_t.shape[0]:
            self.n_dropped += 1
            return unit
        self.out_t[i] = t
        self.out_c[i] = chans[peak_row]
        self.out_a[i] = data[peak_row, self.pre_samples]
        self.out_u[i] = unit
        self.n = i + 1
        return unit

    def take(self, out_t, out_c, out_a, out_u) -> int:
        """Move the queued records (time order) into ``out_*``; returns how many."""
        n = min(self.n, out_t.shape[0])
        order = np.argsort(self.out_t[:n], kind="stable")
        out_t[:n] = self.out_t[:n][order]
        out_c[:n] = self.out_c[:n][order]
        out_a[:n] = self.out_a[:n][order]
        out_u[:n] = self.out_u[:n][order]
        self.n = 0
        return n

    @property
    def stats(self) -> dict:
        return {"upstream_classified": self.n_classified, "upstream_accepted": self.n_accepted,
                "upstream_dropped": self.n_dropped, "upstream_unmapped": self.n_unmapped}
