"""A small synthetic recording directory made with the other parts' own writers (for tests,
the docs and ``sweepsort report`` demos).

It holds what a real session leaves behind: an Open Ephys Binary recording whose TTL events
were encoded by the sweep protocol's encoder from a real sweep table and frame plan (built by
the stimulus package), two stimulus session files (``stimulus.session_file.write_session``:
drifting gratings with blanks, then sparse noise), an offline sort folder
(``offline.sort.sortfile.save_sort`` + its Phy export) and an online spike file
(``oe_plugin.outputs.spike_file.SpikeFileWriter``) and an online sweep file
(``oe_plugin.outputs.sweep_file.SweepFileWriter``, holding the same decoding of the TTL events
the online module makes). The neurons are known:

- unit 0: direction tuned (von Mises, preferred ``PREF_DIR_DEG``) to the gratings;
- unit 1: an ON cell of the sparse noise at cell (``ON_CELL_XI``, ``ON_CELL_YI``), responding
  ``STA_LATENCY_MS`` after a bright spot appears there;
- unit 2: a Poisson train with a 2 ms refractory period.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from oe_plugin.waveforms import biphasic_spike

FS = 30000.0
REFRESH_HZ = 200.0
FIRST_SAMPLE = 12345
PREF_DIR_DEG = 120.0
ON_CELL_XI, ON_CELL_YI = 1, 2
STA_LATENCY_MS = 40.0
N_CHANNELS = 4


def _grating_table(seed: int):
    from stimulus.script import Blanks, Runs, Variable
    from stimulus.sweeptable import build_table

    dynamic = dict(ori_deg=Variable(list(range(0, 360, 30)), dim=0, shuffle=True),
                   sf_cpd=0.1, tf_hz=2.0, contrast=1.0, sweep_s=0.5, postsweep_s=0.0)
    blanks = Blanks(every=7, duration_s=0.5)
    return build_table(dynamic, Runs(5, reshuffle=True), blanks, seed), "grating", {}, blanks


def _sparse_table(seed: int):
    from stimulus.script import Runs, Variable
    from stimulus.sweeptable import build_table

    dynamic = dict(xi=Variable(range(4), dim=0, shuffle=True),
                   yi=Variable(range(4), dim=1, shuffle=True),
                   spot_lum=Variable([0.0, 1.0], dim=2, shuffle=True),
                   bg_lum=0.5, sweep_s=0.05, postsweep_s=0.0)
    static = {"n_cells_x": 4, "n_cells_y": 4, "n_spots": 1}
    return build_table(dynamic, Runs(12, reshuffle=True), None, seed), "sparse_noise", static, \
        None


def _session_meta(name, kind, static, table, seed, blanks, settings):
    import dataclasses

    return {"session_id": name, "created_utc": None, "status": "completed", "seed": seed,
            "stimulus": kind, "static": static, "dynamic": {},
            "blanks": dataclasses.asdict(blanks) if blanks else None,
            "sweep_table": {"n_conditions": table.n_conditions,
                            "conditions": list(table.conditions), **table.structure(),
                            "order": table.order.tolist(), "run": table.run.tolist()},
            "ttl_protocol": settings.to_dict(), "frames": {"refresh_hz": REFRESH_HZ}}


def make_recording(root, *, seed: int = 0, with_online: bool = True, n_units: int = 3) -> dict:
    """Write the synthetic recording under ``root``; returns what the tests need to know:
    ``root``, ``sort_dir``, ``sessions`` (paths), ``truth`` (per-refresh arrays per
    experiment: on-screen time, sweep index; and the tables).

    ``n_units`` > 3 (report benchmarks): unit ``u`` is another draw of the kind of unit
    ``u % 3``, its peak on channel ``u % N_CHANNELS``."""
    from oe_plugin.protocol import ProtocolSettings, encode_session, session_codes
    from oe_plugin.protocol.oe_binary_events import write_binary_recording
    from oe_plugin.protocol.session_code import code_from_session_id, start_block
    from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions
    from stimulus.plan import build_plan
    from stimulus.session_file import write_session

    root = Path(root)
    rng = np.random.default_rng(seed)
    settings = ProtocolSettings(refresh_hz=REFRESH_HZ)
    period_us = 1e6 / REFRESH_HZ
    transitions, truth, sessions = [], [], []
    t0_us = 200_000.0
    for k, (name, maker) in enumerate((("drift", _grating_table), ("sparse", _sparse_table))):
        table, kind, static, blanks = maker(seed + k)
        plan = build_plan(table, REFRESH_HZ, preexp_s=0.2, postexp_s=0.2,
                          blank_s=blanks.duration_s if blanks else 0.0)
        code = code_from_session_id(name)
        codes = session_codes(settings, plan.code, session_code=code)
        n_start = len(start_block(settings, code))  # START markers + session-code chunks
        enc = encode_session(settings, codes, t0_us=t0_us)
        transitions.append(enc.transitions)
        body = slice(n_start, n_start + plan.n_frames)
        flips = enc.flip_time_us
        plan_index = np.full(codes.size, -1, np.int64)
        plan_index[body] = np.arange(plan.n_frames)
        log = {"flip_time_s": flips / 1e6, "interval_s": np.r_[np.nan, np.diff(flips) / 1e6],
               "frame_number": enc.frame_numbers, "code": codes, "plan_index": plan_index,
               "dropped": np.zeros(codes.size, bool), "plan_code": plan.code,
               "plan_presentation": plan.presentation,
               "plan_frame_in_sweep": plan.frame_in_sweep, "plan_phase": plan.phase}
        meta = _session_meta(name, kind, static, table, seed + k, blanks, settings)
        meta["ttl_protocol"]["session_code"] = code
        meta["created_utc"] = (dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
                               + dt.timedelta(minutes=k)).isoformat()
        sessions.append(write_session(root / "stimulus" / f"{name}.session.json", meta, log))
        # on screen one refresh after the flip's TTL edge (the display lag the model corrects)
        onscreen_s = (flips[body] + period_us) / 1e6 + FIRST_SAMPLE / FS
        truth.append({"kind": kind, "table": table, "plan": plan, "onscreen_s": onscreen_s,
                      "code": plan.code.astype(np.int64)})
        t0_us = flips[-1] + 500_000.0
    tr = np.concatenate(transitions)
    tr = tr[np.argsort(tr["time_us"], kind="stable")]
    events = sample_transitions(tr, SimSettings(sample_rate_hz=FS, first_sample_number=FIRST_SAMPLE,
                                                jitter_us=5.0, seed=seed))
    end_s = t0_us / 1e6
    n_samples = int(end_s * FS) + 1000
    rec_dir = root / "Record Node 101" / "experiment1" / "recording1"
    write_binary_recording(rec_dir, sample_rate_hz=FS, n_samples=n_samples,
                           first_sample_number=FIRST_SAMPLE, n_channels=N_CHANNELS, events=events)
    t_stop = FIRST_SAMPLE / FS + n_samples / FS
    spikes = _neurons(rng, truth, FIRST_SAMPLE / FS, t_stop)
    while len(spikes) < n_units:
        spikes += _neurons(rng, truth, FIRST_SAMPLE / FS, t_stop)
    spikes = spikes[:n_units]
    sort_dir = root / "sorts" / "sort1"
    _write_sort(sort_dir, spikes, n_samples)
    if with_online:
        _write_online(root, spikes)
        _write_online_sweeps(root, events, settings)
    return {"root": root, "sort_dir": sort_dir, "sessions": sessions, "truth": truth,
            "spike_times_s": spikes}


def _poisson_in(rng, t0, t1, rate_hz, refractory_s=0.0):
    n = rng.poisson(rate_hz * (t1 - t0))
    t = np.sort(rng.uniform(t0, t1, n))
    if refractory_s > 0 and t.size:
        keep = [0]
        for i in range(1, t.size):
            if t[i] - t[keep[-1]] >= refractory_s:
                keep.append(i)
        t = t[keep]
    return t


def _neurons(rng, truth, t_start, t_stop) -> list[np.ndarray]:
    from offline.analysis.fits import von_mises_direction

    dt_s = 1.0 / REFRESH_HZ
    # unit 0: direction tuned during the gratings, 2 Hz otherwise
    g = truth[0]
    conds = g["table"].conditions
    ori = np.array([conds[c]["ori_deg"] if 0 <= c < len(conds) else np.nan for c in g["code"]])
    rate = np.where(np.isnan(ori), 4.0,
                    von_mises_direction(np.nan_to_num(ori), 4.0, 50.0, 15.0, 2.5, PREF_DIR_DEG))
    n = rng.poisson(rate * dt_s)
    u0 = np.repeat(g["onscreen_s"], n) + rng.uniform(0, dt_s, n.sum())
    u0 = np.concatenate([u0, _poisson_in(rng, t_start, g["onscreen_s"][0], 2.0),
                         _poisson_in(rng, g["onscreen_s"][-1] + dt_s, t_stop, 2.0)])
    # unit 1: ON cell of the sparse noise, latency STA_LATENCY_MS
    s = truth[1]
    conds = s["table"].conditions
    bright_here = np.array([0 <= c < len(conds) and conds[c]["xi"] == ON_CELL_XI
                            and conds[c]["yi"] == ON_CELL_YI and conds[c]["spot_lum"] > 0.5
                            for c in s["code"]])
    lag = int(round(STA_LATENCY_MS * 1e-3 * REFRESH_HZ))
    drive = np.r_[np.zeros(lag, bool), bright_here[:-lag]]
    rate = np.where(drive, 120.0, 3.0)
    n = rng.poisson(rate * dt_s)
    u1 = np.repeat(s["onscreen_s"], n) + rng.uniform(0, dt_s, n.sum())
    u1 = np.concatenate([u1, _poisson_in(rng, t_start, s["onscreen_s"][0], 3.0)])
    u2 = _poisson_in(rng, t_start, t_stop, 15.0, refractory_s=0.002)
    return [np.sort(u) for u in (u0, u1, u2)]


def _write_sort(folder: Path, spikes, n_samples: int) -> None:
    from offline.sort.phy import export_phy
    from offline.sort.sortfile import SortResult, save_sort

    w = 40
    t = np.arange(w) - 12
    shape = biphasic_spike(t, 2.0, 0.3, 8, 4.0)
    n_units = len(spikes)
    templates = np.zeros((n_units, N_CHANNELS, w), np.float32)
    for u in range(n_units):
        for c in range(N_CHANNELS):
            templates[u, c] = shape * 80.0 * np.exp(-abs(c - u % N_CHANNELS) * 0.8)
    index = np.concatenate([np.round(s * FS).astype(np.int64) - FIRST_SAMPLE for s in spikes])
    unit = np.concatenate([np.full(s.size, u, np.int32) for u, s in enumerate(spikes)])
    peak = np.arange(n_units, dtype=np.int32) % N_CHANNELS
    order = np.argsort(index, kind="stable")
    index, unit = index[order], unit[order]
    n = index.size
    arrays = {
        "spike_index": index, "spike_index_sorting": index, "spike_unit": unit,
        "spike_amplitude": np.ones(n, np.float32),
        "spike_amplitude_uv": np.full(n, -80, np.float32),
        "spike_error": np.full(n, 1.0, np.float32), "spike_channel": peak[unit],
        "templates_uv": templates,
        "template_channels": np.tile(np.arange(N_CHANNELS, dtype=np.int32), (n_units, 1)),
        "template_peak_channel": peak,
        "template_threshold": np.full(n_units, 3.0, np.float32),
        "noise_uv": np.full(N_CHANNELS, 10.0, np.float32),
        "channel_positions_um": np.column_stack([np.zeros(N_CHANNELS),
                                                 np.arange(N_CHANNELS) * 25.0]),
    }
    metrics = [{"unit": u, "n_spikes": int(s.size), "firing_rate_hz": s.size / (n_samples / FS),
                "snr": 8.0, "isi_violation_ratio": 0.0, "amplitude_cutoff": 0.0,
                "presence_ratio": 1.0, "peak_channel": u % N_CHANNELS}
               for u, s in enumerate(spikes)]
    meta = {"recording_sample_rate_hz": FS, "sorting_sample_rate_hz": FS, "upsample_factor": 1,
            "n_samples": n_samples, "n_channels": N_CHANNELS,
            "first_sample_number": FIRST_SAMPLE, "template_pre_samples": 12,
            "n_units": n_units, "metrics": metrics, "synthetic": True}
    result = SortResult(arrays, meta)
    save_sort(folder, result)
    export_phy(result, folder / "phy")


def _write_online(root: Path, spikes) -> None:
    from oe_plugin.outputs.spike_file import SpikeFileWriter

    sn = np.concatenate([np.round(s * FS).astype(np.int64) for s in spikes])
    ch = np.concatenate([np.full(s.size, u % N_CHANNELS, np.int16) for u, s in enumerate(spikes)])
    order = np.argsort(sn, kind="stable")
    sn, ch = sn[order], ch[order]
    with SpikeFileWriter.open(root, FS, N_CHANNELS, capacity_records=sn.size + 16) as w:
        w.append(sn, ch, np.full(sn.size, -80.0, np.float32), np.full(sn.size, -1, np.int16),
                 sn.size)
        w.flush()


def _write_online_sweeps(root: Path, events, settings) -> None:
    from oe_plugin.outputs.sweep_file import SweepFileWriter
    from offline.sweeps import decode_ttl_events

    frames = decode_ttl_events(events, settings, FS)  # session codes: in the TTL events
    with SweepFileWriter.open(root, FS, settings.to_dict(), capacity_records=4096) as w:
        for k in range(0, frames.size, 2048):
            part = frames[k:k + 2048]
            w.append(part, part.size)
            w.flush()
