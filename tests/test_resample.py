"""Sinc interpolation with sample-and-hold delay correction (oe_plugin.kernels.resample)."""

from __future__ import annotations

import numpy as np
import pytest

from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.resample import (
    mux_delays,
    output_length,
    resample,
    resample_block,
    resample_entry,
    sinc_kernels,
)

FS_HZ = 25000.0


def _band_limited(seed=0, n_tones=20, max_fraction=0.3):
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.01, max_fraction, n_tones) * FS_HZ
    phase = rng.uniform(0, 2 * np.pi, n_tones)

    def signal_at(t_samples):
        t = np.asarray(t_samples, dtype=np.float64)
        return np.sin(2 * np.pi * freq[:, None] * t[None, :] / FS_HZ + phase[:, None]).sum(0)

    return signal_at


def _rms_error(y, ref, trim=100):
    y, ref = y[trim:-trim], ref[trim:-trim]
    return np.sqrt(np.mean((y - ref) ** 2)) / np.sqrt(np.mean(ref**2))


def test_upsampling_reproduces_a_band_limited_signal():
    s = _band_limited()
    n = 5000
    x = s(np.arange(n))[None].astype(np.float32)
    y = resample(x, sinc_kernels(2, np.zeros(1)))
    assert y.shape == (1, 2 * n)
    assert _rms_error(y[0], s(np.arange(2 * n) / 2)) < 0.01


def test_sample_and_hold_delay_is_removed():
    s = _band_limited(seed=1)
    n = 5000
    # channel c's samples were taken at n + delay[c] (a 32-channel mux, one tick apart)
    delays = mux_delays(4, tick_s=8e-6, sample_rate_hz=FS_HZ)  # 0, 0.2, 0.4, 0.6 samples
    x = np.stack([s(np.arange(n) + d) for d in delays]).astype(np.float32)
    skew_before = _rms_error(x[3].astype(float), s(np.arange(n)))
    assert skew_before > 0.3  # the uncorrected skew is a large error
    for factor in (1, 2, 3):
        y = resample(x, sinc_kernels(factor, delays))
        ref = s(np.arange(n * factor) / factor)
        for c in range(4):
            assert _rms_error(y[c], ref) < 0.01, (factor, c)


def test_chunked_equals_whole_and_cfunc_equals_njit():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 997)).astype(np.float32)
    k = sinc_kernels(2, np.array([0.0, 0.3, 0.7]))
    taps = k.shape[2]
    whole = np.zeros((3, output_length(x.shape[1], k)), dtype=np.float32)
    resample_block(x, k, whole)
    # chunks of 100 outputs positions, each with taps-1 samples of overlap
    parts = []
    for start in range(0, x.shape[1] - taps + 1, 100):
        stop = min(start + 100 + taps - 1, x.shape[1])
        out = np.zeros((3, output_length(stop - start, k)), dtype=np.float32)
        resample_block(np.ascontiguousarray(x[:, start:stop]), k, out)
        parts.append(out)
    assert np.array_equal(np.concatenate(parts, axis=1), whole)
    online = np.zeros_like(whole)
    table = ArgTable([x, k, online])
    assert table.call(entry_caller(resample_entry)) == whole.shape[1]
    assert np.array_equal(online, whole)


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="factor"):
        sinc_kernels(0, np.zeros(2))
    with pytest.raises(ValueError, match="delays"):
        sinc_kernels(2, np.array([0.0, np.nan]))
    # too short an input gives no output rather than reading out of bounds
    k = sinc_kernels(2, np.zeros(1))
    out = np.zeros((1, 4), dtype=np.float32)
    assert resample_block(np.zeros((1, 5), dtype=np.float32), k, out) == 0
