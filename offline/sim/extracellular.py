"""Synthetic extracellular voltage: multi-channel spike templates and background noise.

**Templates** (:func:`make_templates`): each neuron has its own waveform (a negative trough of
width 0.08–0.16 ms — narrow "fast-spiking" to broad — and a slower positive repolarisation of
0.2–0.5 of the trough, 0.3–0.6 ms later); on each contact it is scaled by the distance d from
the neuron to the contact (``1 / (1 + (d / 35 µm)²)``: a point source seen from ~35 µm), and
widened (× (1 + d / 150 µm)) and delayed (d / 0.4 m/s) with distance, like the low-pass and
propagation seen on real polytrodes. Amplitudes are set from a target SNR = trough on the
best channel after the 300–6000 Hz band-pass / the band-passed noise σ. With probe drift
(``shifts_um``), the same neurons are also seen from probe positions moved along depth: a
neuron at depth y appears at y + shift (the convention of the sorter's motion estimate).

**Noise** (:class:`NoiseModel`), three parts with a realistic spectrum:

- thermal/amplifier noise: white, independent per channel;
- "biological" background (far neurons): white sources mixed across channels by a Gaussian of
  the inter-contact distance (σ 60 µm) and low-passed at 1.5 kHz (spectrum ∝ 1/f² above), so
  neighbouring channels share part of it, as on a real probe;
- LFP: a few spatially smooth sources of 1/f² noise below ~20 Hz (tens of µV), plus 50 Hz
  line pick-up (a few µV).

Every chunk is drawn from ``default_rng([seed, chunk])`` with filter states carried across
chunks, so the recording is generated in fixed memory. numpy + scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from oe_plugin.kernels.bandpass import default_band_sos
from oe_plugin.waveforms import biphasic_spike

TEMPLATE_PRE_MS = 0.7
TEMPLATE_POST_MS = 1.5


@dataclass
class NoiseModel:
    positions_um: np.ndarray
    sample_rate_hz: float
    thermal_uv: float = 6.0
    bio_uv: float = 11.0
    lfp_uv: float = 60.0
    line_uv: float = 3.0
    seed: int = 0

    def __post_init__(self):
        pos = np.asarray(self.positions_um, float)
        d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=2)
        mix = np.exp(-0.5 * (d / 60.0) ** 2)
        self._mix = (mix / np.sqrt((mix ** 2).sum(axis=1, keepdims=True))).astype(np.float32)
        fs = self.sample_rate_hz
        self._bio_b, self._bio_a = signal.butter(1, 1500.0, fs=fs)
        self._lfp_b, self._lfp_a = signal.butter(2, 20.0, fs=fs)
        c = pos.shape[0]
        self._bio_zi = np.zeros((c, 1))
        self._lfp_zi = np.zeros((3, 2))
        # LFP sources at the top, middle and bottom of the probe
        ys = np.linspace(pos[:, 1].min(), pos[:, 1].max(), 3)
        self._lfp_w = np.exp(-0.5 * ((pos[:, 1][:, None] - ys[None, :]) / 400.0) ** 2)
        self._next = 0
        self._t0 = 0

    def chunk(self, k: int, n: int) -> np.ndarray:
        """Noise for chunk ``k`` (call with k = 0, 1, 2... in order), float32 (C, n) µV."""
        if k != self._next:
            raise ValueError("noise chunks must be generated in order")
        self._next += 1
        rng = np.random.default_rng([self.seed, k])
        c = self._mix.shape[0]
        fs = self.sample_rate_hz
        out = rng.standard_normal((c, n), dtype=np.float32) * np.float32(self.thermal_uv)
        src = rng.standard_normal((c, n), dtype=np.float32)
        bio, self._bio_zi = signal.lfilter(self._bio_b, self._bio_a, self._mix @ src, axis=1,
                                           zi=self._bio_zi)
        # the 1st-order low-pass at 1.5 kHz keeps ~0.3 of white noise's power at 30 kHz
        out += (bio * (self.bio_uv * np.sqrt(2 * fs / (np.pi * 1500.0)) / np.sqrt(2))
                ).astype(np.float32)
        lsrc = rng.standard_normal((3, n))
        lfp, self._lfp_zi = signal.lfilter(self._lfp_b, self._lfp_a, lsrc, axis=1,
                                           zi=self._lfp_zi)
        lfp *= self.lfp_uv * np.sqrt(fs / (2 * 20.0))
        out += (self._lfp_w @ lfp).astype(np.float32)
        t = (self._t0 + np.arange(n)) / fs
        out += np.float32(self.line_uv) * np.sin(2 * np.pi * 50.0 * t).astype(np.float32)[None]
        self._t0 += n
        return out


def filtered_noise_sigma(model_kwargs: dict, seconds: float = 2.0) -> np.ndarray:
    """Per channel: σ (MAD / 0.6745) of the band-passed noise of a fresh :class:`NoiseModel`."""
    m = NoiseModel(**model_kwargs)
    n = int(seconds * m.sample_rate_hz)
    x = m.chunk(0, n)
    y = signal.sosfilt(default_band_sos(m.sample_rate_hz), x, axis=1)[:, n // 4:]
    return np.median(np.abs(y), axis=1) / 0.6745


def make_templates(neuron_pos_um: np.ndarray, contact_pos_um: np.ndarray, fs: float,
                   snr: np.ndarray, noise_sigma_uv: np.ndarray, rng: np.random.Generator,
                   shifts_um=None) -> tuple[np.ndarray, int, np.ndarray]:
    """Templates (U, C, W) float32 µV (raw, before any filter), the trough index, and the
    realised SNR (U,) (band-passed trough on the best channel / that channel's noise σ).

    ``shifts_um`` (S,): also the templates seen after the probe moved, a neuron at depth y
    appearing at y + shift: then the templates are (S, U, C, W), the SNR set at shift 0 and the
    same gain kept at every shift (a neuron's amplitude changes as it moves past the contacts).
    """
    pre = int(round(TEMPLATE_PRE_MS * 1e-3 * fs))
    post = int(round(TEMPLATE_POST_MS * 1e-3 * fs))
    t_ms = np.arange(-pre, post + 1) * 1e3 / fs
    contacts = np.column_stack([contact_pos_um, np.zeros(len(contact_pos_um))])
    shifts = np.zeros(1) if shifts_um is None else np.asarray(shifts_um, float).ravel()
    u = len(neuron_pos_um)
    c = len(contact_pos_um)
    out = np.zeros((len(shifts), u, c, t_ms.size), np.float32)
    sos = default_band_sos(fs)
    realised = np.zeros(u)
    pad = np.zeros((c, 300))
    for i in range(u):
        width = rng.uniform(0.08, 0.16)
        rebound = rng.uniform(0.2, 0.5)
        rebound_ms = rng.uniform(0.3, 0.6)
        for k, shift in enumerate(shifts):
            d = np.linalg.norm(contacts - (neuron_pos_um[i] + [0.0, shift, 0.0]), axis=1)
            scale = 1.0 / (1.0 + (d / 35.0) ** 2)
            for ch in range(c):
                if scale[ch] < 0.02:
                    continue
                widen = 1.0 + d[ch] / 150.0
                delay = d[ch] / 400.0  # ms at 0.4 m/s
                out[k, i, ch] = scale[ch] * biphasic_spike(
                    t_ms - delay, width * widen, rebound, rebound_ms * widen,
                    2.2 * (width * widen), pre_amp=0.12)
        k0 = int(np.argmin(np.abs(shifts)))
        filt = signal.sosfilt(sos, np.concatenate([pad, out[k0, i], pad], axis=1), axis=1)
        trough = -filt.min(axis=1)
        best = int(np.argmax(trough / noise_sigma_uv))
        gain = snr[i] * noise_sigma_uv[best] / trough[best]
        out[:, i] *= gain
        realised[i] = trough[best] * gain / noise_sigma_uv[best]
    return (out[0] if shifts_um is None else out), pre, realised


def add_spikes(out: np.ndarray, start: int, samples: np.ndarray, units: np.ndarray,
               amps: np.ndarray, templates: np.ndarray, trough: int) -> None:
    """Add ``amps[k] * templates[units[k]]`` with its trough at ``samples[k]`` into ``out``
    (C, n), which holds samples ``[start, start + n)``; spikes may straddle the edges."""
    n = out.shape[1]
    w = templates.shape[2]
    for s, u, a in zip(samples.tolist(), units.tolist(), amps.tolist(), strict=True):
        lo = s - trough - start
        a0, a1 = max(lo, 0), min(lo + w, n)
        if a1 <= a0:
            continue
        out[:, a0:a1] += np.float32(a) * templates[u][:, a0 - lo:a1 - lo]
