"""Local spatial whitening of the noise: estimated once per sort, applied as a sparse channel mix.

Neighbouring contacts share much of their noise (tissue, reference and amplifier noise reach
several contacts at once). Template matching and clustering both compare residual energies
summed over channels, so correlated noise makes two neighbouring cells' templates fit each
other's spikes more often than independent noise would (``benchmarks/pair_separability.py``:
13-17 % of a cell's spikes fit its 15 µm neighbour's template better, 10-12 % after
whitening). Kilosort, SpykingCircus2 and Tridesclous2 all whiten; this is the same local
scheme as SpikeInterface's ``whiten(mode="local")``.

**The matrix.** ``R`` (C, C) is the noise correlation of the noise-scaled traces (each
channel divided by its noise level), from :data:`WHITEN_WINDOWS` of the noise estimate's
windows, leaving out every sample within ``exclude_ms`` of a sample beyond ``exclude_sigma``
noise units on any channel (spikes). Channel ``c``'s row is ``c``'s row of
``(R_N + eps I)^(-1/2)`` over its neighbourhood ``N`` (the channels of its group within
``radius_um``), so the mix is sparse:
a row has as many taps as the neighbourhood has channels. Scaled back by the noise levels
(``weight[c, j] = noise[c] W[c, j] / noise[j]``), the whitened traces keep each channel's noise
level, so the rest of the pipeline (noise units, µV amplitudes of the *whitened* traces, error
thresholds) is unchanged in form.

**Order.** After the drift correction (the kriging interpolates the field; on whitened
traces, which are spatially rough, it interpolates badly: a ±20 µm zigzag whitened first gave
twice the units). The same tables run online after the drift stage's mix
(:func:`oe_plugin.kernels.drift.mix_columns`, one grid row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPIKE_FREE_SIGMA = 4.0
"""Samples beyond this many noise units (on any channel) mark a spike ..."""
SPIKE_FREE_MS = 1.0
"""... and every sample within this of one is left out of the noise correlation."""
WHITEN_WINDOWS = 4
"""Noise windows (of the sort's ``noise_windows``, evenly spread) the correlation and the
whitened traces' noise levels come from: read once; ~0.1 M spike-free samples estimate a
16-channel neighbourhood's correlations to ~0.003 (all 16 windows cost np384 11 s)."""


@dataclass(frozen=True)
class Whitening:
    """A sparse channel mix: ``out[c] = sum_k weight[c, k] x[index[c, k]]``.

    index : (C, K) int32 source channels (rows padded with weight 0);
    weight : (C, K) float32, in µV per µV (each output channel keeps its noise level).
    """

    index: np.ndarray
    weight: np.ndarray

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(index (C, 1, K), weight (C, 1, K), grid_row (C,) zeros)``: the arguments of
        :func:`oe_plugin.kernels.drift.mix_columns` (a table with one grid row)."""
        c = self.index.shape[0]
        return (np.ascontiguousarray(self.index[:, None, :], np.int32),
                np.ascontiguousarray(self.weight[:, None, :], np.float32),
                np.zeros(c, np.int32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Whitened copy of ``x`` (C, n) float32."""
        from oe_plugin.kernels.drift import mix_columns

        x = np.ascontiguousarray(x, np.float32)
        out = np.empty_like(x)
        index, weight, rows = self.tables()
        mix_columns(x, 0, out, 0, x.shape[1], index, weight, rows)
        return out

    def dense(self) -> np.ndarray:
        """(C, C) float64 matrix ``M`` with ``whitened = M @ x``."""
        c = self.index.shape[0]
        m = np.zeros((c, c))
        for k in range(self.index.shape[1]):
            np.add.at(m, (np.arange(c), self.index[:, k]), self.weight[:, k])
        return m


def spike_free(x: np.ndarray, exclude_sigma: float, exclude_n: int) -> np.ndarray:
    """(n,) bool: samples of ``x`` (C, n) noise units further than ``exclude_n`` samples from
    any sample beyond ``exclude_sigma`` on any channel."""
    hot = (np.abs(x) > exclude_sigma).any(axis=0).astype(np.float32)
    near = np.convolve(hot, np.ones(2 * exclude_n + 1, np.float32), mode="same") > 0
    return ~near


def noise_correlation(windows: list[np.ndarray], exclude_sigma: float = 4.0,
                      exclude_n: int = 30) -> tuple[np.ndarray, int]:
    """``(R (C, C), samples used)``: the correlation of the spike-free samples
    (:func:`spike_free`) of noise-scaled trace windows (each (C, n) float32). Channels without
    signal (non-finite noise: zeros after scaling) get an identity row and column."""
    c = windows[0].shape[0]
    acc = np.zeros((c, c))
    n = 0
    for x in windows:
        x = np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        keep = spike_free(x, exclude_sigma, exclude_n)
        xs = x[:, keep]
        acc += xs @ xs.T
        n += xs.shape[1]
    if n < 10 * c:
        return np.eye(c), n
    cov = acc / n
    d = np.sqrt(np.diag(cov))
    dead = ~(d > 0)
    d[dead] = 1.0
    r = cov / np.outer(d, d)
    r[dead, :] = 0.0
    r[:, dead] = 0.0
    r[dead, dead] = 1.0
    return r, n


def local_whitening(corr: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray],
                    noise_uv: np.ndarray, eps: float = 0.01) -> Whitening:
    """The local whitening mix (module docstring) of correlation ``corr`` (C, C) over the
    neighbourhoods ``neighbours`` (CSR indptr (C + 1,), indices: channel ``c``'s rows, itself
    included), scaled to keep each channel's noise ``noise_uv`` (C,) (non-finite: the channel
    is copied, not mixed)."""
    indptr, indices = neighbours
    c_n = len(noise_uv)
    noise = np.asarray(noise_uv, np.float64)
    alive = np.isfinite(noise) & (noise > 0)
    k_max = int(np.diff(indptr).max(initial=1))
    index = np.tile(np.arange(c_n, dtype=np.int32)[:, None], (1, k_max))
    weight = np.zeros((c_n, k_max), np.float32)
    for c in range(c_n):
        if not alive[c]:
            weight[c, 0] = 1.0
            continue
        nb = indices[indptr[c]:indptr[c + 1]]
        nb = nb[alive[nb]]
        sub = corr[np.ix_(nb, nb)] + eps * np.eye(len(nb))
        ev, v = np.linalg.eigh(sub)
        w_sub = (v * np.maximum(ev, 1e-9) ** -0.5) @ v.T
        row = w_sub[int(np.flatnonzero(nb == c)[0])]
        # keep the output's noise level: the whitened row has unit variance on R
        row = row / np.sqrt(row @ corr[np.ix_(nb, nb)] @ row)
        index[c, :len(nb)] = nb
        weight[c, :len(nb)] = row * noise[c] / noise[nb]
    return Whitening(index, weight)
