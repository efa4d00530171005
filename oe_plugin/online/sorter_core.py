"""The online sorter's state object: every array :func:`online_sort.sort_block` needs, once.

:class:`OnlineSorter` is to detection + matching what
:class:`~oe_plugin.kernels.detector.SpikeDetector` is to detection: ``process()`` is the
``@njit`` way in (tests, offline), ``process_online()`` the ``@cfunc`` way in (the GUI's
GIL-less audio thread; no allocation unless a block is larger than any before).

Without a :class:`~oe_plugin.online.sort_model.SortModel` it is a detector on µV (unit -1 for
every spike); with one, raw µV are scaled by the sort's noise, detected with the sort's
detection settings and fixed threshold (``threshold_mad`` noise units, as offline), and every
event is matched against the sort's templates.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from oe_plugin.kernels import detect as D
from oe_plugin.kernels import online_sort as K
from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.detector import SpikeDetector
from oe_plugin.kernels.match import P_MASK, make_params, template_norms
from oe_plugin.online.sort_model import SortModel
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
    """(filter, detect) the sorter runs: the sort's (fixed threshold in noise units) or given."""
    if model is None:
        return filter_settings or FilterSettings(), detect_settings or DetectSettings()
    det = replace(model.detect, threshold_uv=float(model.detect.threshold_mad),
                  threshold_floor_uv=0.0)
    return replace(model.filter, write_downstream=False), det


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
            max_block=SUB)
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
            self.mparams = make_params(model.pre, model.max_shift, model.amplitude_min,
                                       model.amplitude_max, mask=-1, row_offset=0, subtract=True,
                                       pair_window=model.pair_window)
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
        self.tpl_norm2 = np.zeros(self.templates.shape[0], np.float32)
        template_norms(self.templates, self.tpl_norm2)
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
        self._dummy_block = np.zeros((c, 1), np.float32)
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
        self._table = ArgTable(self._arrays(self._dummy_block))

    def _arrays(self, block):
        det = self.detector
        return (block, self.noise, self.inv_noise, self.scratch, *det._state_arrays(),
                self.mring, self.q_t, self.q_c, self.q_a, self.templates, self.tpl_chan,
                self.tpl_norm2, self.cand_ptr, self.cand_idx, self.thresholds, self.tpl_peak_uv,
                self.mparams, *self.one, self.out_t, self.out_c, self.out_a, self.out_u,
                self.sparams, self.scount)

    def reset(self) -> None:
        """Back to the state before the first sample (a new acquisition)."""
        self.detector.reset()
        self.mring[...] = 0
        self.scount[...] = 0

    def process(self, block: np.ndarray) -> int:
        """``@njit`` way in; ``block`` (C, n) float32 (rewritten when write_downstream).
        Returns n; the spikes are ``out_t/out_c/out_a/out_u[:n]``."""
        if block.shape[1] > self.max_block:
            self._alloc_outputs(block.shape[1])
        return int(K.sort_block(*self._arrays(block)))

    def process_online(self, block: np.ndarray) -> int:
        """The GIL-free way in (cfunc through ctypes): same as :meth:`process`."""
        if block.shape[1] > self.max_block:
            self._alloc_outputs(block.shape[1])
        self._table.set(0, block)
        n = self._table.call(_SORT_CALLER)
        self._table.set(0, self._dummy_block)
        return n

    def spikes(self, n: int) -> np.ndarray:
        """Copy of the first ``n`` output records (SPIKE_DTYPE)."""
        out = np.empty(n, SPIKE_DTYPE)
        out["sample_index"] = self.out_t[:n]
        out["channel_index"] = self.out_c[:n]
        out["amplitude_uv"] = self.out_a[:n]
        out["unit"] = self.out_u[:n]
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
                        ("amplitude_uv", np.float32), ("unit", np.int32)])

_SORT_CALLER = entry_caller(K.sort_entry)
