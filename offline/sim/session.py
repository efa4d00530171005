"""Run the stimulus program headless and read back what it showed.

:func:`run_sweepstim` runs the real ``sweepstim run SCRIPT --offscreen --ttl file:LOG`` in a
subprocess (the same command a lab runs, with offscreen rendering and a simulated vsync clock)
and returns its session file, frame log and the TTL line transitions the encoder emitted.
:func:`refresh_stimulus` turns the frame log + sweep table into what was on the screen at every
refresh (grating direction, spatial/temporal frequency, drift phase; sparse-noise spot position
and polarity), which drives the model neurons (:mod:`offline.sim.population`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oe_plugin.protocol.spec import MAX_SWEEP_INDEX

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"

#: A small offscreen window on a large, near screen (60 x 45 cm at 40 cm: ±37° x ±29°), so the
#: demo's 40° stimuli fit and rendering stays cheap; every other rig setting is the default.
RIG_TOML = """[screen]
width_cm = 60.0
height_cm = 45.0
distance_cm = 40.0
width_px = 96
height_px = 72
fullscreen = false

[timing]
priority = false
"""



@dataclass
class StimSession:
    """One ``sweepstim run``: its files and what it logged.

    ``frames``: the frame-log NPZ arrays (``flip_time_s``, ``code``, ``frame_number``,
    ``plan_index``, ``plan_*``); ``transitions``: TRANSITION_DTYPE (``time_us`` on the flip
    clock, ``line``, ``level``); ``protocol``: the protocol settings dict from the TTL log.
    """

    name: str
    session_path: Path
    session: dict
    frames: dict
    transitions: np.ndarray
    protocol: dict

    @property
    def refresh_hz(self) -> float:
        return float(self.session["frames"]["refresh_hz"])

    @property
    def stimulus(self) -> str:
        return str(self.session["stimulus"])


def run_sweepstim(script, out_dir, *, seed: int, name: str | None = None,
                  rig_toml: str = RIG_TOML) -> StimSession:
    """``sweepstim run SCRIPT --offscreen --ttl file:... --seed SEED --out OUT_DIR/`` and read
    back the session file, frame log and TTL transition log. Raises RuntimeError on failure."""
    from stimulus.ttl.file import read_transition_log

    script = Path(script)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or script.stem
    rig = out_dir / "rig.toml"
    rig.write_text(rig_toml)
    ttl_log = out_dir / f"{name}.ttl.tsv"
    before = set(out_dir.glob("*.session.json"))
    env = dict(os.environ, PYGLET_HEADLESS="1")
    cmd = [sys.executable, "-m", "stimulus.cli", "run", str(script), "--config", str(rig),
           "--seed", str(int(seed)), "--offscreen", "--ttl", f"file:{ttl_log}",
           "--out", str(out_dir) + os.sep, "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sweepstim run {script.name} failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")
    new = sorted(set(out_dir.glob("*.session.json")) - before)
    if len(new) != 1:
        raise RuntimeError(f"sweepstim run {script.name}: expected one new session file, "
                           f"found {[p.name for p in new]}")
    session_path = new[0]
    session = json.loads(session_path.read_text())
    with np.load(session_path.parent / session["frames"]["file"], allow_pickle=False) as z:
        frames = {k: z[k] for k in z.files}
    transitions, protocol = read_transition_log(ttl_log)
    if hasattr(protocol, "to_dict"):
        protocol = protocol.to_dict()
    return StimSession(name, session_path, session, frames, transitions, dict(protocol))


@dataclass
class RefreshStimulus:
    """What was on the screen at every logged refresh (one row per frame-log row).

    ``t_s``: flip time on the stimulus clock; the image is on the screen from one refresh later
    (display lag) until the next image. ``kind``: 0 background, 1 grating, 2 sparse-noise spot.
    Grating: ``ori_deg`` (drift direction), ``sf_cpd``, ``tf_hz``, ``contrast``, ``phase_rad``
    (at the stimulus centre). Spot: ``x_deg``, ``y_deg`` (cell centre), ``polarity`` (+1 bright,
    -1 dark), ``size_deg`` (cell width).
    """

    t_s: np.ndarray
    kind: np.ndarray
    ori_deg: np.ndarray
    sf_cpd: np.ndarray
    tf_hz: np.ndarray
    contrast: np.ndarray
    phase_rad: np.ndarray
    x_deg: np.ndarray
    y_deg: np.ndarray
    polarity: np.ndarray
    size_deg: np.ndarray


def refresh_stimulus(s: StimSession) -> RefreshStimulus:
    """Per logged refresh, the stimulus shown (from the frame log, plan and sweep table)."""
    fr = s.frames
    n = fr["code"].size
    code = fr["code"].astype(np.int64)
    plan_index = fr["plan_index"].astype(np.int64)
    in_sweep = np.where(plan_index >= 0, fr["plan_frame_in_sweep"][np.maximum(plan_index, 0)],
                        0)
    conds = s.session["sweep_table"]["conditions"]
    static = s.session["static"]
    z = np.zeros(n)
    out = RefreshStimulus(fr["flip_time_s"].astype(np.float64), np.zeros(n, np.int8),
                          z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(),
                          z.copy(), z.copy())
    shown = np.flatnonzero((code <= MAX_SWEEP_INDEX) & (plan_index >= 0))  # not chunks
    refresh_hz = s.refresh_hz
    for k in shown:
        c = conds[int(code[k])]
        if s.stimulus == "grating":
            out.kind[k] = 1
            out.ori_deg[k] = c["ori_deg"]
            out.sf_cpd[k] = c["sf_cpd"]
            out.tf_hz[k] = c["tf_hz"]
            out.contrast[k] = c["contrast"]
            out.phase_rad[k] = c["phase0_rad"] + 2 * np.pi * c["tf_hz"] * in_sweep[k] / refresh_hz
        elif s.stimulus == "sparse_noise":
            nx, ny = int(static["n_cells_x"]), int(static["n_cells_y"])
            if int(static.get("n_spots", 1)) != 1 or float(c.get("ori_deg", 0.0)) != 0.0:
                raise ValueError("the model neurons know single-spot, unrotated sparse noise")
            cw, ch = c["width_deg"] / nx, c["height_deg"] / ny
            out.kind[k] = 2
            out.x_deg[k] = c["x_deg"] + (c["xi"] + 0.5 - nx / 2) * cw
            out.y_deg[k] = c["y_deg"] + (c["yi"] + 0.5 - ny / 2) * ch
            out.polarity[k] = np.sign(c["spot_lum"] - c["bg_lum"])
            out.size_deg[k] = 0.5 * (cw + ch)
        else:
            raise ValueError(f"the model neurons do not respond to {s.stimulus!r} stimuli")
    return out
