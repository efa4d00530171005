"""Everything a chunk task needs, in one picklable object (sent to pool or Dask workers)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from offline.sort.settings import AllSettings
from offline.sort.source import RecordingSource


@dataclass
class SortJob:
    """The fixed inputs of every chunk task.

    noise_uv : (C,) float32 per-channel noise (µV) the traces are divided by.
    lock_nb : CSR (indptr (C+1,), indices) int32, lockout neighbours (detection).
    snip_nb : CSR, snippet/template rows of an event peaking on each channel.
    """

    source: RecordingSource
    settings: AllSettings
    noise_uv: np.ndarray
    lock_nb: tuple[np.ndarray, np.ndarray]
    snip_nb: tuple[np.ndarray, np.ndarray]
    drift: object = None
    """``offline.sort.preprocess.DriftCorrection`` when the traces are motion-corrected."""
    loc_nb: tuple[np.ndarray, np.ndarray] | None = None
    """CSR channels that localise a peak (motion estimate); None = not localised."""
    positions_um: np.ndarray | None = None
    whitening: object = None
    """``offline.sort.whitening.Whitening`` applied after the drift correction, or None."""

    def preprocessor(self):
        from offline.sort.preprocess import Preprocessor

        return Preprocessor(self.source.open(), self.settings.preprocess, self.noise_uv,
                            self.drift, self.whitening)

    def fingerprint(self, *extra) -> str:
        """A hash of the inputs, to tell whether a saved chunk result can be reused (the
        ``[quality]`` settings are left out: they act after the chunks, on the metrics)."""
        h = hashlib.sha256()
        chunk_settings = {k: v for k, v in asdict(self.settings).items() if k != "quality"}
        h.update(json.dumps(chunk_settings, sort_keys=True, default=str).encode())
        h.update(json.dumps(self.source.identity(), sort_keys=True, default=str).encode())
        drift = () if self.drift is None else (
            self.drift.motion.time_s, self.drift.motion.depth_um,
            self.drift.motion.displacement_um, self.drift.positions_um,
            np.array([self.drift.sigma_um, self.drift.interp_bin_s]))
        loc = () if self.loc_nb is None else (*self.loc_nb, self.positions_um)
        white = () if self.whitening is None else (self.whitening.index,
                                                   self.whitening.weight)
        for a in (self.noise_uv, *self.lock_nb, *self.snip_nb, *drift, *loc, *white, *extra):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def window_samples(job: SortJob, sample_rate_hz: float) -> tuple[int, int]:
    """Template window (pre, post) in sorting-rate samples."""
    s = job.settings.sort
    pre = max(1, int(round(s.pre_ms * 1e-3 * sample_rate_hz)))
    post = max(1, int(round(s.post_ms * 1e-3 * sample_rate_hz)))
    return pre, post
