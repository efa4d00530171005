"""Run an experiment: prepare (load, validate, plan), then drive the frame loop.

The frame loop is driven directly (no pyglet scheduler), one iteration per refresh::

    clear to background -> draw the stimulus -> photodiode patch -> flip -> t = clock()
    -> frame number / dropped from t -> TTL word(s) for this refresh -> frame log -> events

Around the plan: the START block first (``marker_frames`` START refreshes, then the session
code's chunks each followed by a START refresh), END refreshes last (the protocol's experiment
markers). Keys: **space** pauses at the next sweep boundary (background, code
65535, until space again), **Esc** cancels at once (END markers are still sent and the
session file is written with status "cancelled").
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from oe_plugin.protocol.spec import SWEEP_NONE
from stimulus.plan import STIMULUS, FramePlan, build_plan
from stimulus.rig import RigSettings
from stimulus.script import LoadedScript, Variable, load_script
from stimulus.stimuli import KINDS
from stimulus.stimuli.base import RenderContext, Stimulus
from stimulus.timing import FrameLog, FrameTimer
from stimulus.ttl.base import TTLBackend
from stimulus.ttl.encoding import CODE_END, FrameEncoder, ProtocolSettings, start_block
from stimulus.validate import Validated, check_or_raise


@dataclass
class Prepared:
    """A validated experiment, ready to run."""

    loaded: LoadedScript
    validated: Validated
    plan: FramePlan
    seed: int
    rig: RigSettings
    protocol: ProtocolSettings
    ctx: RenderContext

    @property
    def table(self):
        return self.validated.table

    @property
    def default_bg(self) -> float:
        bg = self.validated.dynamic.get("bg_lum", 0.5)
        return float(bg.values[0] if isinstance(bg, Variable) else bg)


def prepare(script, rig: RigSettings, seed: int | None = None,
            refresh_hz: float | None = None, size_px: tuple[int, int] | None = None) -> Prepared:
    """Load and validate a script and lay out its refreshes (raises ScriptError).

    ``seed``: the command line's; else the script's; else a fresh one from the OS.
    ``refresh_hz``, ``size_px``: the display's measured rate / actual size if known.
    """
    loaded = script if isinstance(script, LoadedScript) else load_script(script)
    exp = loaded.experiment
    if seed is None:
        seed = exp.seed if exp.seed is not None else secrets.randbits(32)
    refresh = float(refresh_hz or rig.screen.refresh_hz)
    screen = rig.screen
    if size_px is not None:
        screen = dataclasses.replace(screen, width_px=int(size_px[0]), height_px=int(size_px[1]))
    protocol = dataclasses.replace(rig.protocol, refresh_hz=refresh)
    ctx = RenderContext(screen.geometry(), refresh, screen.gamma, int(seed))
    validated = check_or_raise(loaded, ctx, protocol, seed)
    blank_s = exp.blanks.duration_s if exp.blanks is not None else 0.0
    plan = build_plan(validated.table, refresh, preexp_s=exp.preexp_s,
                      postexp_s=exp.postexp_s, blank_s=blank_s)
    return Prepared(loaded, validated, plan, int(seed), rig, protocol, ctx)


def format_duration(sec: float) -> str:
    sec = int(round(sec))
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def summary(p: Prepared) -> str:
    """What will be shown, and for how long (printed before starting and by --dry-run)."""
    t = p.table
    exp = p.loaded.experiment
    dims = " x ".join(
        f"{'+'.join(d.names)} {d.n}{' (shuffled)' if d.shuffle else ''}" for d in t.dims) or "-"
    runs = f"{exp.runs.n} run(s){' reshuffled' if exp.runs.reshuffle else ''}"
    blanks = (f"{t.n_blanks} blank(s) of {exp.blanks.duration_s:g} s" if exp.blanks
              else "no blanks")
    return (f"{exp.stimulus}: {t.n_conditions} condition(s) [{dims}], {runs}: "
            f"{t.n_stimulus_sweeps} stimulus sweeps + {blanks}\n"
            f"{p.plan.n_frames} refreshes at {p.plan.refresh_hz:g} Hz = "
            f"{format_duration(p.plan.duration_s)} (pre {exp.preexp_s:g} s, post "
            f"{exp.postexp_s:g} s; plus {2 * p.protocol.marker_frames}+ marker refreshes)\n"
            f"seed {p.seed}; TTL {p.protocol.scheme} scheme (sweep indices up to "
            f"{p.protocol.max_sweep_index()})")



def rig_line(rig: RigSettings) -> str:
    """Which rig config the run uses: its file, or the built-in defaults (and where one was
    looked for), with the values that change durations and geometry."""
    from stimulus.rig import CONFIG_ENV_VAR, DEFAULT_CONFIG

    scr = rig.screen
    values = (f"{scr.width_px}x{scr.height_px} px, {scr.width_cm:g}x{scr.height_cm:g} cm at "
              f"{scr.distance_cm:g} cm, {scr.refresh_hz:g} Hz, gamma {scr.gamma:g}")
    if rig.path is not None:
        return f"rig file: {rig.path} ({values})"
    return (f"no rig file: built-in defaults ({values}); give one with --config, "
            f"${CONFIG_ENV_VAR} or {DEFAULT_CONFIG}")


def sweep_table_rows(p: Prepared) -> list[dict]:
    """One row per presented sweep, in presentation order: ``n`` (presentation), ``run``,
    ``sweep`` (the sweep index sent on the TTL lines, ``None`` for a blank), the values of the
    table's varied parameters (``None`` for a blank), ``frames`` (stimulus refreshes),
    ``post_frames`` (post-sweep background refreshes), ``duration_s`` (both, in seconds) and
    ``start_s`` (first refresh, from the plan's first refresh; the TTL START markers come
    before it)."""
    t, plan = p.table, p.plan
    names = [name for d in t.dims for name in d.names]
    starts = plan.presentation_start()
    hz = plan.refresh_hz
    rows = []
    for i, code in enumerate(t.order.tolist()):
        blank = code == SWEEP_NONE
        cond = None if blank else t.conditions[code]
        n_frames, n_post = int(plan.sweep_frames[i]), int(plan.post_frames[i])
        rows.append({"n": i, "run": int(t.run[i]), "sweep": None if blank else int(code),
                     **{name: None if blank else cond[name] for name in names},
                     "frames": n_frames, "post_frames": n_post,
                     "duration_s": (n_frames + n_post) / hz,
                     "start_s": float(starts[i]) / hz if i < starts.size else math.nan})
    return rows


def format_sweep_table(p: Prepared) -> str:
    """:func:`sweep_table_rows` as aligned text columns (``sweepstim run --dry-run --table``)."""
    rows = sweep_table_rows(p)
    names = [name for d in p.table.dims for name in d.names]
    header = ["#", "run", "sweep", *names, "frames", "post_frames", "duration_s", "start_s"]

    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    body = [[str(r["n"]), str(r["run"]), "blank" if r["sweep"] is None else str(r["sweep"]),
             *[cell(r[name]) for name in names], str(r["frames"]), str(r["post_frames"]),
             f"{r['duration_s']:.3f}", f"{r['start_s']:.3f}"] for r in rows]
    widths = [max(len(h), *(len(b[k]) for b in body)) if body else len(h)
              for k, h in enumerate(header)]
    lines = ["  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True))
             for line in [header, *body]]
    return "\n".join(lines)


@dataclass
class Progress:
    sweeps_done: int
    sweeps_total: int
    sec_left: float
    n_dropped: int
    paused: bool


@dataclass
class RunResult:
    status: str
    log: dict
    n_dropped: int
    n_missed: int
    ttl_errors: list = field(default_factory=list)
    error: str | None = None


class Runner:
    """Drives one prepared experiment on a display.

    display : :class:`stimulus.display.Display` or anything with ``clear(lum)``,
        ``photodiode(on)``, ``flip()``, ``dispatch_events()`` (tests use a fake).
    backend : an opened :class:`TTLBackend`.
    clock : returns seconds; if it has ``advance()`` it is called after every flip (a
        simulated vsync: offscreen runs and tests).
    stimulus : the stimulus object (default: built from the script; needs a GL context).
    session_code : the 24-bit session code sent in the START block (TTL protocol version 2,
        :mod:`oe_plugin.protocol.session_code`); None: START markers only (version 1).
    """

    def __init__(self, prepared: Prepared, display, backend: TTLBackend,
                 clock: Callable[[], float] = time.perf_counter,
                 stimulus: Stimulus | None = None,
                 progress: Callable[[Progress], None] | None = None,
                 progress_every_s: float = 0.5, session_code: int | None = None):
        self.p = prepared
        self.start_codes = start_block(prepared.protocol, session_code)
        self.display = display
        self.backend = backend
        self.clock = clock
        self._advance = getattr(clock, "advance", None)
        v = prepared.validated
        self.stim = stimulus or KINDS[prepared.loaded.experiment.stimulus](prepared.ctx,
                                                                           v.static)
        self.encoder = FrameEncoder(prepared.protocol)
        self.timer = FrameTimer(1.0 / prepared.plan.refresh_hz,
                                prepared.rig.timing.drop_threshold)
        self.log = FrameLog(capacity=prepared.plan.n_frames + 4 * prepared.protocol.marker_frames
                            + len(self.start_codes) + 16)
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.pause_requested = False
        self.cancel_requested = False
        self.ttl_errors: list[str] = []
        self.n_flips = 0
        self._last_progress = -math.inf
        self._sweeps_done = 0
        self._install_keys()

    # -- keys ---------------------------------------------------------------------------------

    def _install_keys(self) -> None:
        window = getattr(self.display, "window", None)
        if window is None:
            return
        from pyglet.window import key

        runner = self

        def on_key_press(symbol, modifiers):
            if symbol == key.ESCAPE:
                runner.cancel_requested = True
            elif symbol == key.SPACE:
                runner.pause_requested = not runner.pause_requested
            return True  # handled: pyglet's default closes the window on Esc

        def on_close():
            runner.cancel_requested = True
            return True

        window.push_handlers(on_key_press=on_key_press, on_close=on_close)

    # -- frames -------------------------------------------------------------------------------

    def _present(self, code: int, plan_index: int, bg: float, draw_frame: int = -1) -> None:
        d = self.display
        d.clear(bg)
        if draw_frame >= 0:
            self.stim.draw(draw_frame)
        d.photodiode(self.n_flips % 2 == 0)
        d.flip()
        if self._advance is not None:
            self._advance()
        t = self.clock()
        fn, dropped, interval = self.timer.tick(t)
        self.backend.send(self.encoder.frame(code, fn), t)
        self.log.append(t, interval, fn, code, plan_index, dropped)
        errs = self.backend.poll_errors()
        if errs:
            self.ttl_errors += [f"flip {self.n_flips}: {e}" for e in errs]
        self.n_flips += 1
        d.dispatch_events()
        if self.progress is not None and t - self._last_progress >= self.progress_every_s:
            self._last_progress = t
            self._report(plan_index)

    def _report(self, plan_index: int) -> None:
        plan = self.p.plan
        left = (plan.n_frames - max(plan_index, 0)) / plan.refresh_hz
        self.progress(Progress(self._sweeps_done, int(self.p.table.order.size), left,
                               self.timer.n_dropped, self.pause_requested))

    def _pause(self) -> None:
        while self.pause_requested and not self.cancel_requested:
            self._present(SWEEP_NONE, -1, self.p.default_bg)

    def run(self) -> RunResult:
        """Show the whole experiment; returns the status and the frame log."""
        p = self.p
        plan = p.plan
        conditions = p.table.conditions
        order = p.table.order
        default_bg = p.default_bg
        status = "completed"
        for code in self.start_codes:  # START markers (and the session code's chunks)
            self._present(code, -1, default_bg)
        current = -2
        bg = default_bg
        for f in range(plan.n_frames):
            if self.cancel_requested:
                status = "cancelled"
                break
            pres = int(plan.presentation[f])
            if pres != current:
                if current >= 0:
                    self._sweeps_done += 1
                if self.pause_requested:
                    self._pause()
                    if self.cancel_requested:
                        status = "cancelled"
                        break
                current = pres
                sweep = int(order[pres]) if pres >= 0 else SWEEP_NONE
                bg = float(conditions[sweep]["bg_lum"]) if sweep != SWEEP_NONE else default_bg
            draw = -1
            if plan.phase[f] == STIMULUS:
                fis = int(plan.frame_in_sweep[f])
                if fis == 0:
                    self.stim.begin_sweep(conditions[int(order[pres])],
                                          int(plan.sweep_frames[pres]))
                draw = fis
            self._present(int(plan.code[f]), f, bg, draw)
        else:
            self._sweeps_done += 1 if current >= 0 else 0
        for _ in range(self.encoder.end_count()):
            self._present(CODE_END, -1, default_bg)
        last = self.log.cols["flip_time_s"][self.log.n - 1] if self.log.n else 0.0
        finish = self.encoder.finish()
        if finish:
            self.backend.send(finish, float(last) + 1.0 / plan.refresh_hz)
        return RunResult(status, self.log.arrays(), self.timer.n_dropped, self.timer.n_missed,
                         list(self.ttl_errors))


def frame_arrays(p: Prepared, log: dict) -> dict[str, np.ndarray]:
    """The session NPZ's arrays: the frame log and the plan."""
    plan = p.plan
    return {**log, "plan_code": plan.code, "plan_presentation": plan.presentation,
            "plan_frame_in_sweep": plan.frame_in_sweep, "plan_phase": plan.phase}
