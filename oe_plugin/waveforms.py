"""The synthetic spike waveform: one shape for every simulated spike in the project.

Used by the host simulator's :class:`oe_plugin.host.sources.SyntheticSource`, the virtual
experiment (:mod:`offline.sim.extracellular`), the analysis test data
(:mod:`offline.analysis.synthetic`), the tests' recordings (tests/synth.py) and the benchmarks.
"""

from __future__ import annotations

import numpy as np


def biphasic_spike(t, trough_sd, after_amp=0.35, after_at=0.45, after_sd=0.2, *,
                   trough_at=0.0, pre_amp=0.0) -> np.ndarray:
    """A negative Gaussian trough plus a slower positive after-phase (and, with ``pre_amp``, a
    small positive phase ``2 * trough_sd`` before the trough), unnormalised: the trough is -1.

    ``t`` (array) and every time argument share one unit (ms, or samples): the trough is centred
    at ``trough_at`` with s.d. ``trough_sd``; the after-phase has height ``after_amp`` at
    ``after_at`` with s.d. ``after_sd``. Returns float64 (or ``t``'s float dtype), ``t``'s shape.
    """
    wave = -np.exp(-0.5 * ((t - trough_at) / trough_sd) ** 2)
    wave = wave + after_amp * np.exp(-0.5 * ((t - after_at) / after_sd) ** 2)
    if pre_amp:
        wave = wave + pre_amp * np.exp(-0.5 * ((t - (trough_at - 2.0 * trough_sd)) / trough_sd)
                                       ** 2)
    return wave
