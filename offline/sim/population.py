"""A model V1 population: tuning, receptive fields, firing statistics, spike trains.

Each neuron (:class:`Population`, one array per property) has

- **direction/orientation tuning** (von Mises): ``D(θ) = exp(κ(cos(θ − θp) − 1)) + a_null ·
  exp(κ(cos(θ − θp − 180°) − 1))`` over the grating's drift direction θ (``ori_deg`` of the
  stimulus); ``a_null`` = 1 is a pure orientation cell, < 1 direction selective;
- **spatial and temporal frequency** preference: log-Gaussian (σ in octaves);
- a **receptive field**: centre (x, y) in degrees, Gaussian σ, ON and OFF weights (sparse noise:
  a spot drives the cell by its overlap with the RF, bright spots through ON, dark through OFF);
  a grating drives it only if the RF centre is inside the grating's mask;
- **simple/complex**: simple cells' grating response is modulated at the drift frequency;
- a **baseline rate**, a **response latency** (a gamma-shaped temporal kernel), an absolute
  **refractory period**;
- **correlated pairs**: a fraction of one neuron's spikes is copied (±0.5 ms jitter) into a
  neighbour.

The stimulus is what sweepstim logged, refresh by refresh (:class:`~offline.sim.session.
RefreshStimulus`); the rate is piecewise constant per refresh and spikes are drawn by time
rescaling with a dead time (an inhomogeneous Poisson process with refractoriness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from offline.sim.session import RefreshStimulus


@dataclass
class Population:
    """Model neurons; every field is an array of shape (n,) (positions (n, 3) µm)."""

    position_um: np.ndarray        # (x, y along the probe, z off the probe plane)
    pref_dir_deg: np.ndarray
    kappa: np.ndarray
    null_ratio: np.ndarray
    pref_sf_cpd: np.ndarray
    sf_sigma_oct: np.ndarray
    pref_tf_hz: np.ndarray
    tf_sigma_oct: np.ndarray
    grating_peak_hz: np.ndarray
    simple: np.ndarray             # bool
    rf_x_deg: np.ndarray
    rf_y_deg: np.ndarray
    rf_sigma_deg: np.ndarray
    on_weight: np.ndarray
    off_weight: np.ndarray
    spot_peak_hz: np.ndarray
    baseline_hz: np.ndarray
    latency_ms: np.ndarray
    refractory_ms: np.ndarray
    pairs: np.ndarray              # (n_pairs, 2) int: (source, target)
    pair_fraction: np.ndarray      # (n_pairs,)

    @property
    def n(self) -> int:
        return int(self.pref_dir_deg.size)

    @property
    def pref_ori_deg(self) -> np.ndarray:
        return np.mod(self.pref_dir_deg, 180.0)

    def to_json(self) -> list[dict]:
        d = asdict(self)
        out = []
        for i in range(self.n):
            rec = {k: (v[i].tolist() if k != "pairs" and k != "pair_fraction" else None)
                   for k, v in d.items()}
            rec = {k: v for k, v in rec.items() if v is not None}
            rec["neuron"] = i
            rec["pref_ori_deg"] = float(self.pref_ori_deg[i])
            out.append(rec)
        return out


def make_population(n: int, positions_um: np.ndarray, rng: np.random.Generator, *,
                    pair_fraction: float = 0.15) -> Population:
    """``n`` neurons near a probe whose contacts are at ``positions_um`` (C, 2)."""
    pos = np.asarray(positions_um, float)
    y_lo, y_hi = pos[:, 1].min() + 20.0, pos[:, 1].max() - 20.0
    x_half = max(np.abs(pos[:, 0]).max(), 10.0) + 15.0
    # spread along the probe: evenly spaced depths with jitter, so neighbours are ~probe/n apart
    y = np.linspace(y_lo, y_hi, n) + rng.uniform(-0.3, 0.3, n) * (y_hi - y_lo) / max(n, 1)
    position = np.column_stack([rng.uniform(-x_half, x_half, n), np.clip(y, y_lo, y_hi),
                                rng.uniform(10.0, 35.0, n)])
    rng.shuffle(position, axis=0)
    # preferred directions cover the circle, off the 30° grid of the stimulus
    pref_dir = np.mod((np.arange(n) + rng.uniform(0, 1, n)) * 360.0 / n, 360.0)
    rng.shuffle(pref_dir)
    simple = rng.uniform(size=n) < 0.4
    # ON- or OFF-dominated receptive fields (the other sign at 0-30 %)
    is_on = rng.uniform(size=n) < 0.5
    weak = rng.uniform(0.0, 0.3, n)
    on = np.where(is_on, 1.0, weak)
    off = np.where(is_on, weak, 1.0)
    # correlated pairs: the nearest neighbour of every 5th neuron
    d = np.linalg.norm(position[:, None, :] - position[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    src = np.arange(0, n, 5)
    pairs = np.column_stack([src, np.argmin(d[src], axis=1)]).astype(np.int64)
    return Population(
        position_um=position,
        pref_dir_deg=pref_dir,
        kappa=rng.uniform(2.5, 5.0, n),
        null_ratio=rng.uniform(0.2, 1.0, n),
        pref_sf_cpd=np.exp(rng.uniform(np.log(0.04), np.log(0.14), n)),
        sf_sigma_oct=rng.uniform(1.2, 1.8, n),
        pref_tf_hz=np.exp(rng.uniform(np.log(1.0), np.log(6.0), n)),
        tf_sigma_oct=rng.uniform(1.5, 2.5, n),
        grating_peak_hz=rng.uniform(25.0, 50.0, n),
        simple=simple,
        rf_x_deg=rng.uniform(-12.0, 12.0, n),
        rf_y_deg=rng.uniform(-12.0, 12.0, n),
        rf_sigma_deg=rng.uniform(3.0, 5.0, n),
        on_weight=on / np.maximum(on, off),
        off_weight=off / np.maximum(on, off),
        spot_peak_hz=rng.uniform(40.0, 80.0, n),
        baseline_hz=np.exp(rng.uniform(np.log(1.0), np.log(5.0), n)),
        latency_ms=rng.uniform(35.0, 60.0, n),
        refractory_ms=rng.uniform(1.5, 2.5, n),
        pairs=pairs,
        pair_fraction=np.full(len(pairs), float(pair_fraction)),
    )


def direction_tuning(pop: Population, theta_deg) -> np.ndarray:
    """(n, len(theta)) the von Mises direction tuning, peak 1 at the preferred direction."""
    th = np.deg2rad(np.asarray(theta_deg, float))[None, :]
    p = np.deg2rad(pop.pref_dir_deg)[:, None]
    k = pop.kappa[:, None]
    return (np.exp(k * (np.cos(th - p) - 1)) + pop.null_ratio[:, None]
            * np.exp(k * (np.cos(th - p - np.pi) - 1)))


def _log_gauss(x, pref, sigma_oct):
    x = np.maximum(np.asarray(x, float), 1e-9)
    return np.exp(-0.5 * (np.log2(x / pref) / sigma_oct) ** 2)


def temporal_kernel(latency_ms: float, refresh_hz: float) -> np.ndarray:
    """Unit-sum gamma-shaped kernel (shape 4) peaking at ``latency_ms``, sampled per refresh."""
    dt = 1e3 / refresh_hz
    t = np.arange(0.0, 4 * latency_ms, dt) + 0.5 * dt
    shape = 4.0
    scale = latency_ms / (shape - 1.0)
    h = (t / scale) ** (shape - 1.0) * np.exp(-t / scale)
    return h / h.sum()


def refresh_rates(pop: Population, stim: RefreshStimulus, refresh_hz: float,
                  mask_radius_deg: float = 20.0) -> np.ndarray:
    """(n_neurons, n_refreshes) firing rate (Hz) during each refresh interval of ``stim``.

    The image logged at refresh k is on the screen during refresh k + 1 (display lag); the
    drive is filtered by each neuron's temporal kernel (latency) and added to the baseline.
    """
    n, m = pop.n, stim.t_s.size
    drive = np.zeros((n, m))
    g = stim.kind == 1
    if g.any():
        inside = np.hypot(pop.rf_x_deg, pop.rf_y_deg) <= mask_radius_deg
        d = direction_tuning(pop, stim.ori_deg[g])
        s = _log_gauss(stim.sf_cpd[g][None, :], pop.pref_sf_cpd[:, None], pop.sf_sigma_oct[:, None])
        t = _log_gauss(stim.tf_hz[g][None, :], pop.pref_tf_hz[:, None], pop.tf_sigma_oct[:, None])
        # simple cells: modulated at the drift frequency, phase set by the RF position
        rf_phase = 2 * np.pi * stim.sf_cpd[g][None, :] * (
            pop.rf_x_deg[:, None] * np.cos(np.deg2rad(stim.ori_deg[g]))[None, :]
            + pop.rf_y_deg[:, None] * np.sin(np.deg2rad(stim.ori_deg[g]))[None, :])
        mod = np.where(pop.simple[:, None],
                       1.0 + 0.9 * np.sin(stim.phase_rad[g][None, :] - rf_phase), 1.0)
        drive[:, g] = (pop.grating_peak_hz[:, None] * d * s * t * mod
                       * np.abs(stim.contrast[g])[None, :] * inside[:, None])
    sp = stim.kind == 2
    if sp.any():
        dx = stim.x_deg[sp][None, :] - pop.rf_x_deg[:, None]
        dy = stim.y_deg[sp][None, :] - pop.rf_y_deg[:, None]
        overlap = np.exp(-0.5 * (dx ** 2 + dy ** 2) / pop.rf_sigma_deg[:, None] ** 2)
        w = np.where(stim.polarity[sp][None, :] > 0, pop.on_weight[:, None],
                     pop.off_weight[:, None])
        drive[:, sp] = pop.spot_peak_hz[:, None] * w * overlap
    rates = np.empty((n, m))
    for i in range(n):
        lagged = np.r_[0.0, drive[i, :-1]]  # display lag: one refresh
        h = temporal_kernel(pop.latency_ms[i], refresh_hz)
        rates[i] = pop.baseline_hz[i] + np.convolve(lagged, h)[:m]
    return np.maximum(rates, 0.0)


def draw_spikes(rate_hz: np.ndarray, edges_s: np.ndarray, refractory_s: float,
                rng: np.random.Generator) -> np.ndarray:
    """Spike times (s) of a process with piecewise-constant rate ``rate_hz[k]`` on
    ``[edges_s[k], edges_s[k+1])`` and an absolute dead time, by time rescaling."""
    widths = np.diff(edges_s)
    cum = np.r_[0.0, np.cumsum(rate_hz * widths)]  # integrated rate at the edges
    total = cum[-1]
    out = []
    t = edges_s[0]
    lam = 0.0
    while True:
        lam += rng.exponential()
        if lam >= total:
            break
        k = int(np.searchsorted(cum, lam, side="right")) - 1
        k = min(k, rate_hz.size - 1)
        t = edges_s[k] + (lam - cum[k]) / max(rate_hz[k], 1e-12)
        out.append(t)
        # dead time: continue from t + refractory in rescaled time
        t_next = t + refractory_s
        if t_next >= edges_s[-1]:
            break
        j = int(np.searchsorted(edges_s, t_next, side="right")) - 1
        lam = cum[j] + rate_hz[j] * (t_next - edges_s[j])
    return np.asarray(out)


def enforce_refractory(times_s: np.ndarray, refractory_s: float) -> np.ndarray:
    """Drop spikes closer than ``refractory_s`` to the previous kept one (sorted input)."""
    if times_s.size < 2:
        return times_s
    keep = np.ones(times_s.size, bool)
    last = times_s[0]
    for i in range(1, times_s.size):
        if times_s[i] - last < refractory_s:
            keep[i] = False
        else:
            last = times_s[i]
    return times_s[keep]


def population_spikes(pop: Population, rates: np.ndarray, edges_s: np.ndarray,
                      rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Spike times per neuron (s, sorted), with the correlated pairs' shared spikes, and per
    neuron a bool array marking the spikes copied from its pair partner."""
    trains = [draw_spikes(rates[i], edges_s, pop.refractory_ms[i] * 1e-3, rng)
              for i in range(pop.n)]
    shared = [np.zeros(t.size, bool) for t in trains]
    for (a, b), frac in zip(pop.pairs, pop.pair_fraction, strict=True):
        src = trains[a]
        pick = src[rng.uniform(size=src.size) < frac]
        copies = pick + rng.uniform(-0.5e-3, 0.5e-3, pick.size)
        t = np.r_[trains[b], copies]
        flag = np.r_[np.zeros(trains[b].size, bool), np.ones(copies.size, bool)]
        order = np.argsort(t, kind="stable")
        t, flag = t[order], flag[order]
        kept = enforce_refractory(t, pop.refractory_ms[b] * 1e-3)
        keep_mask = np.isin(t, kept)
        trains[b], shared[b] = t[keep_mask], flag[keep_mask]
    return trains, shared
