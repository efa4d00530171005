"""Build a virtual experiment: stimulus runs -> model neurons -> an Open Ephys Binary recording.

:func:`build_experiment` writes, under ``out_dir``::

    recording/                      the session folder (what the GUI would write)
      Record Node 101/experiment1/recording1/   Binary: continuous.dat (int16, 0.195 µV/bit),
                                    sample_numbers, timestamps, events/…/TTL, structure.oebin
      stim/                         the sweepstim session files (+ frame logs, TTL logs)
    truth/truth.npz, truth/truth.json   ground truth (no pickle)

The recording is one acquisition: ``lead_s`` of spontaneous activity, the drifting-grating
session, ``gap_s``, the sparse-noise session, ``tail_s``. Each session's TTL transitions (the
encoder's output, logged by sweepstim's ``file:`` backend) are moved onto the recording's
clock, a 1 Hz sync pulse is added on line 0, and all lines are sampled like the acquisition
board does (:func:`oe_plugin.protocol.ttl_sim.sample_transitions`: per-line skew up to 40 µs,
±20 µs jitter, same-sample events in random order).

The probe drifts slowly along depth (``drift_um``, default 15 µm): it settles after insertion,
``drift(t) = drift_um · (1 − exp(−t/τ)) / (1 − exp(−T/τ))`` with τ = T/2 over the recording's
duration T, so a neuron at depth y appears at y + drift(t) (the sorter's motion convention).
Each spike is drawn from the templates seen at its time's displacement, on a 1 µm grid. The
truth keeps ``drift_time_s`` / ``drift_um`` at 10 Hz.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from offline.sim.extracellular import (
    NoiseModel,
    add_spikes,
    filtered_noise_sigma,
    make_templates,
)
from offline.sim.population import make_population, population_spikes, refresh_rates
from offline.sim.session import SCRIPTS_DIR, StimSession, refresh_stimulus, run_sweepstim

BIT_VOLTS = 0.195
SOURCE_PROCESSOR = "Acquisition Board"
SOURCE_ID = 100
STREAM = "Rhythm Data"


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``quick``: the test-suite size."""

    probe: str = "polytrode54"
    n_neurons: int = 24
    grating_script: str = str(SCRIPTS_DIR / "gratings.py")
    sparse_script: str = str(SCRIPTS_DIR / "sparse_noise.py")
    sample_rate_hz: float = 30000.0
    first_sample_number: int = 123_456
    lead_s: float = 2.0
    gap_s: float = 1.0
    tail_s: float = 1.0
    snr_range: tuple[float, float] = (4.0, 16.0)
    amp_jitter: float = 0.06
    max_skew_us: float = 40.0
    jitter_us: float = 20.0
    chunk_s: float = 2.0
    drift_um: float = 15.0
    seed: int = 1

    @classmethod
    def quick(cls, **kw) -> SimConfig:
        base = dict(n_neurons=12, grating_script=str(SCRIPTS_DIR / "gratings_quick.py"),
                    sparse_script=str(SCRIPTS_DIR / "sparse_noise_quick.py"), lead_s=1.0,
                    gap_s=0.5, tail_s=0.5)
        base.update(kw)
        return cls(**base)


@dataclass
class Built:
    out_dir: Path
    session_root: Path
    recording_dir: Path
    sessions: list[StimSession]
    session_windows: list[tuple[int, int]]   # per session: [first, last) sample index
    truth_path: Path
    n_samples: int
    timings_s: dict


SIM_MARKER = ".sweepsort-sim"


def clear_previous_simulation(out_dir: Path) -> None:
    """Make ``out_dir`` ready for a new simulation: a previous one's ``recording/`` and
    ``truth/`` are removed (their session files would otherwise be matched against the new
    recording's TTLs); a ``recording/`` folder that is not a simulation's is refused, untouched.
    A simulation is recognised by the marker file written before anything else, or (older
    runs) by its ``truth/truth.json``."""
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    session_root, truth_json = out_dir / "recording", out_dir / "truth" / "truth.json"
    ours = (out_dir / SIM_MARKER).is_file()
    if not ours and truth_json.is_file():
        try:
            ours = json.loads(truth_json.read_text()).get("format") == "sweepsort-sim-truth"
        except (OSError, ValueError):
            ours = False
    if session_root.exists() and any(session_root.iterdir()) and not ours:
        raise FileExistsError(f"{session_root} exists and is not a previous sweepsort "
                              "simulation; give the simulation an empty or new output folder")
    if ours:
        for d in (session_root, out_dir / "truth"):
            shutil.rmtree(d, ignore_errors=True)
    (out_dir / SIM_MARKER).write_text("a sweepsort simulation writes recording/ and truth/ here\n")


def build_experiment(out_dir, cfg: SimConfig = SimConfig(), log=print) -> Built:
    from oe_plugin.probe import load_probe
    from oe_plugin.protocol.encoder import TRANSITION_DTYPE
    from oe_plugin.protocol.oe_binary_events import write_binary_recording, write_ttl_events
    from oe_plugin.protocol.ttl_sim import SimSettings, random_line_delays, sample_transitions

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    clear_previous_simulation(out_dir)
    session_root = out_dir / "recording"
    stim_dir = session_root / "stim"
    rec_dir = session_root / "Record Node 101" / "experiment1" / "recording1"
    rng = np.random.default_rng(cfg.seed)
    fs = cfg.sample_rate_hz

    # 1. the stimulus program, headless, exactly as on the rig
    sessions = [run_sweepstim(cfg.grating_script, stim_dir, seed=cfg.seed, name="gratings"),
                run_sweepstim(cfg.sparse_script, stim_dir, seed=cfg.seed + 1,
                              name="sparse_noise")]
    timings["sweepstim"] = time.perf_counter() - t0
    desc = ", ".join(f"{s.name} {s.frames['code'].size} refreshes" for s in sessions)
    log(f"  sweepstim: {desc} ({timings['sweepstim']:.1f} s)")

    # 2. place the sessions on the recording clock (seconds from the first sample)
    offsets_s, t = [], cfg.lead_s
    for s in sessions:
        first_us = min(float(s.transitions["time_us"].min()), s.frames["flip_time_s"][0] * 1e6)
        offsets_s.append(t - first_us * 1e-6)
        last_us = float(s.transitions["time_us"].max())
        t = last_us * 1e-6 + offsets_s[-1] + cfg.gap_s
    duration_s = t - cfg.gap_s + cfg.tail_s
    n_samples = int(np.ceil(duration_s * fs))

    # 3. the population and its spikes, driven by what was on the screen
    t1 = time.perf_counter()
    probe = load_probe(cfg.probe, _probe_channels(cfg.probe))
    pop = make_population(cfg.n_neurons, probe.positions_um, rng)
    edges, rates = [0.0], [pop.baseline_hz[:, None]]
    windows = []
    for s, off in zip(sessions, offsets_s, strict=True):
        stim = refresh_stimulus(s)
        r = refresh_rates(pop, stim, s.refresh_hz)
        tk = stim.t_s + off
        period = 1.0 / s.refresh_hz
        edges.extend(tk.tolist())
        rates.append(r)
        edges.append(tk[-1] + period)
        rates.append(pop.baseline_hz[:, None])  # after the last refresh: spontaneous
        windows.append((int(np.floor((tk[0] - 0.2) * fs)), int(np.ceil((tk[-1] + 0.2) * fs))))
    edges.append(duration_s)
    edges_s = np.asarray(edges)
    rate_mat = np.concatenate(rates, axis=1)
    trains, shared = population_spikes(pop, rate_mat, edges_s, rng)
    timings["spikes"] = time.perf_counter() - t1

    # 4. templates and noise
    t2 = time.perf_counter()
    noise_kw = dict(positions_um=probe.positions_um, sample_rate_hz=fs, seed=cfg.seed + 100)
    sigma = filtered_noise_sigma(noise_kw)
    snr_target = rng.uniform(*cfg.snr_range, pop.n)
    shifts = np.arange(0.0, np.ceil(abs(cfg.drift_um)) + 1.0) * np.sign(cfg.drift_um or 1.0)
    shifted, trough, snr = make_templates(pop.position_um, probe.positions_um, fs,
                                          snr_target, sigma, rng, shifts_um=shifts)
    templates = shifted[0]
    spike_sample = np.concatenate([np.round(tr * fs).astype(np.int64) for tr in trains])
    spike_unit = np.concatenate([np.full(tr.size, i, np.int64) for i, tr in enumerate(trains)])
    spike_shared = np.concatenate(shared)
    order = np.argsort(spike_sample, kind="stable")
    spike_sample, spike_unit, spike_shared = (spike_sample[order], spike_unit[order],
                                              spike_shared[order])
    ok = (spike_sample >= trough) & (spike_sample < n_samples - templates.shape[2])
    spike_sample, spike_unit, spike_shared = spike_sample[ok], spike_unit[ok], spike_shared[ok]
    # the probe's slow drift: each spike drawn from the templates at its time's displacement
    drift_time_s = np.arange(0.0, duration_s, 0.1)
    drift = probe_drift_um(drift_time_s, duration_s, cfg.drift_um)
    step = np.clip(np.round(np.abs(probe_drift_um(spike_sample / fs, duration_s, cfg.drift_um))
                            ).astype(np.int64), 0, len(shifts) - 1)
    flat = shifted.reshape(-1, *shifted.shape[2:])  # (S * U, C, W): shift-major
    spike_template = step * pop.n + spike_unit
    amp = np.exp(rng.normal(0.0, cfg.amp_jitter, spike_sample.size))
    # bursts: a spike < 10 ms after the same neuron's previous one is 10 % smaller
    for u in range(pop.n):
        idx = np.flatnonzero(spike_unit == u)
        isi = np.diff(spike_sample[idx]) / fs
        amp[idx[1:][isi < 0.010]] *= 0.9
    noise = NoiseModel(**noise_kw)
    chunk = int(cfg.chunk_s * fs)

    def chunks():
        for k, start in enumerate(range(0, n_samples, chunk)):
            n = min(chunk, n_samples - start)
            x = noise.chunk(k, n)
            lo = np.searchsorted(spike_sample, start - templates.shape[2])
            hi = np.searchsorted(spike_sample, start + n + trough)
            add_spikes(x, start, spike_sample[lo:hi], spike_template[lo:hi], amp[lo:hi],
                       flat, trough)
            yield x

    rec_dir.mkdir(parents=True, exist_ok=True)
    folder = write_binary_recording(rec_dir, sample_rate_hz=fs, n_samples=n_samples,
                                    first_sample_number=cfg.first_sample_number,
                                    n_channels=probe.n_channels, data_uv=chunks(),
                                    source_processor=SOURCE_PROCESSOR,
                                    source_processor_id=SOURCE_ID, stream_name=STREAM,
                                    bit_volts=BIT_VOLTS)
    timings["voltage"] = time.perf_counter() - t2

    # 5. the TTL lines: the encoder's transitions on the recording clock, sampled
    t3 = time.perf_counter()
    parts = []
    for s, off in zip(sessions, offsets_s, strict=True):
        tr = s.transitions.copy()
        tr["time_us"] = tr["time_us"] + off * 1e6
        parts.append(tr)
    sync_t = np.arange(0.5, duration_s - 0.1, 1.0)
    sync = np.zeros(2 * sync_t.size, TRANSITION_DTYPE)
    sync["time_us"] = np.r_[sync_t, sync_t + 0.01] * 1e6
    sync["line"] = int(sessions[0].protocol.get("sync_line", 0))
    sync["level"] = np.r_[np.ones(sync_t.size, bool), np.zeros(sync_t.size, bool)]
    transitions = np.concatenate(parts + [sync])
    transitions = transitions[np.argsort(transitions["time_us"], kind="stable")]
    lines = np.unique(transitions["line"])
    sim = SimSettings(sample_rate_hz=fs, first_sample_number=cfg.first_sample_number,
                      line_delay_us=random_line_delays(lines, cfg.max_skew_us, rng),
                      jitter_us=cfg.jitter_us, shuffle_ties=True, seed=cfg.seed)
    events = sample_transitions(transitions, sim)
    write_ttl_events(rec_dir, events, sample_rate_hz=fs, folder=folder,
                     source_processor=SOURCE_PROCESSOR, stream_name=STREAM)
    timings["ttl"] = time.perf_counter() - t3

    # 6. ground truth
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth_path = truth_dir / "truth.npz"
    np.savez(truth_path, spike_sample_index=spike_sample, spike_unit=spike_unit,
             spike_amplitude=amp.astype(np.float32), spike_shared=spike_shared,
             templates_uv=templates, template_trough_index=np.int64(trough),
             snr=snr, noise_sigma_uv=sigma, channel_positions_um=probe.positions_um,
             neuron_positions_um=pop.position_um, pairs=pop.pairs,
             drift_time_s=drift_time_s, drift_um=drift)
    meta = {
        "format": "sweepsort-sim-truth", "format_version": 1,
        "config": asdict(cfg), "sample_rate_hz": fs,
        "first_sample_number": cfg.first_sample_number, "n_samples": n_samples,
        "duration_s": n_samples / fs, "probe": cfg.probe,
        "sessions": [{"name": s.name, "session_file": str(s.session_path.relative_to(out_dir)),
                      "stimulus": s.stimulus, "offset_s": off, "window_samples": list(w)}
                     for s, off, w in zip(sessions, offsets_s, windows, strict=True)],
        "ttl": {"line_delay_us": [list(x) for x in sim.line_delay_us],
                "jitter_us": cfg.jitter_us, "n_events": int(events.size)},
        "neurons": [dict(r, snr=float(snr[i]), n_spikes=int(trains[i].size))
                    for i, r in enumerate(pop.to_json())],
        "pairs": pop.pairs.tolist(),
        "drift": "drift_um (µm) at drift_time_s (s from the first sample): a neuron at depth y "
                 "appears at y + drift_um; templates_uv are those at drift 0",
        "spike_sample_index": "sample index from the recording's first sample (trough of the "
                              "raw template); sample number = index + first_sample_number",
    }
    (truth_dir / "truth.json").write_text(json.dumps(meta, indent=1))
    timings["total"] = time.perf_counter() - t0
    return Built(out_dir, session_root, rec_dir, sessions, windows, truth_path, n_samples,
                 timings)


def probe_drift_um(t_s, duration_s: float, total_um: float) -> np.ndarray:
    """The probe's slow settling drift (µm) at times ``t_s``: 0 at t = 0, ``total_um`` at
    ``duration_s``, fastest at the start (τ = duration / 2)."""
    t = np.clip(np.asarray(t_s, float), 0.0, duration_s)
    tau = duration_s / 2.0
    return total_um * (1.0 - np.exp(-t / tau)) / (1.0 - np.exp(-duration_s / tau))


def _probe_channels(name: str) -> int:
    from oe_plugin.probe import PROBES_DIR

    p = PROBES_DIR / f"{name}.json"
    if p.is_file():
        d = json.loads(p.read_text())
        return sum(len(pr["contact_positions"]) for pr in d["probes"])
    raise ValueError(f"unknown probe {name!r}")


def load_truth(path) -> tuple[dict, dict]:
    """(arrays, meta) of a ground-truth folder or its truth.npz."""
    p = Path(path)
    if p.is_dir():
        p = p / "truth.npz"
    with np.load(p, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(p.with_suffix(".json").read_text())
