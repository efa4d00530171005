"""Manual bar and grating: find a receptive field by hand before an experiment.

``sweepstim manual bar`` / ``sweepstim manual grating`` open the stimulus screen with one bar
or grating patch that follows the mouse. An on-screen readout shows the current parameters;
**Enter** saves them to the rig config (``[manual_bar]`` / ``[manual_grating]``), where
scripts can read them (:func:`saved`) as defaults. **Esc** quits.

Controls (rates per second while a key or button is held):

=================  =============================  ====================================
input              bar                            grating
=================  =============================  ====================================
mouse              move                           move
left/right button  rotate ccw / cw (90 deg/s)     rotate ccw / cw (90 deg/s)
wheel              snap orientation by 15 deg     snap orientation by 15 deg
up / down          length x1.5 / ÷1.5 per s       spatial frequency x1.5 / ÷1.5 per s
right / left       width x1.5 / ÷1.5 per s        temporal frequency x1.5 / ÷1.5 per s
= / -              brightness ±0.5 per s          contrast ±0.5 per s
[ / ]              -                              diameter ÷1.5 / x1.5 per s
I                  swap bar and background        reverse drift
space              flashing on/off                -
PgUp / PgDn        flash rate x1.5 / ÷1.5 per s   -
0                  back to the screen centre      back to the screen centre
Enter              save to the rig config         save to the rig config
=================  =============================  ====================================
"""

from __future__ import annotations

import math
from pathlib import Path

from stimulus.rig import RigSettings, load_rig, update_section
from stimulus.stimuli.bar import Bar
from stimulus.stimuli.base import RenderContext
from stimulus.stimuli.grating import Grating

DEFAULTS = {
    "bar": {"x_deg": 0.0, "y_deg": 0.0, "ori_deg": 0.0, "length_deg": 8.0, "width_deg": 1.0,
            "bar_lum": 1.0, "bg_lum": 0.0, "flash_hz": 1.0},
    "grating": {"x_deg": 0.0, "y_deg": 0.0, "ori_deg": 0.0, "sf_cpd": 0.2, "tf_hz": 2.0,
                "contrast": 1.0, "diameter_deg": 10.0, "bg_lum": 0.5},
}
ORI_RATE_DPS = 90.0
SIZE_RATE = 1.5
LUM_RATE = 0.5
SNAP_DEG = 15.0


def saved(kind: str, config: str | Path | None = None) -> dict:
    """The saved manual parameters (defaults for anything not saved), for scripts::

        from stimulus.manual import saved
        rf = saved("bar")            # {"x_deg": ..., "y_deg": ..., "ori_deg": ..., ...}
    """
    rig = load_rig(config)
    return {**DEFAULTS[kind], **(rig.manual_bar if kind == "bar" else rig.manual_grating)}


class ManualController:
    """The state and its input handling, independent of any window (testable).

    ``state`` holds the parameters shown; ``held`` the keys/buttons held down; :meth:`update`
    applies the held ones over ``dt`` seconds.
    """

    def __init__(self, kind: str, ctx: RenderContext, initial: dict | None = None,
                 save_to: str | Path | None = None):
        if kind not in DEFAULTS:
            raise ValueError(f"manual kind must be bar or grating, got {kind!r}")
        self.kind = kind
        self.ctx = ctx
        self.state = {**DEFAULTS[kind], **{k: v for k, v in (initial or {}).items()
                                            if k in DEFAULTS[kind]}}
        self.save_to = Path(save_to) if save_to else None
        self.held: set[str] = set()
        self.phase_rad = 0.0
        self.flashing = False
        self.flash_cycles = 0.0
        self.quit = False
        self.message = ""

    # -- inputs (names, so that tests need no pyglet key codes) ---------------------------------

    def press(self, name: str) -> None:
        s = self.state
        if name == "escape":
            self.quit = True
        elif name == "enter":
            self.save()
        elif name == "i":
            if self.kind == "bar":
                s["bar_lum"], s["bg_lum"] = s["bg_lum"], s["bar_lum"]
            else:
                s["tf_hz"] = -s["tf_hz"]
        elif name == "0":
            s["x_deg"] = s["y_deg"] = 0.0
        elif name == "space" and self.kind == "bar":
            self.flashing = not self.flashing
            self.flash_cycles = 0.0
        else:
            self.held.add(name)

    def release(self, name: str) -> None:
        self.held.discard(name)

    def move_to_px(self, x_px: float, y_px: float) -> None:
        """Mouse at window pixel (x, y), origin bottom-left."""
        cx, cy = self.ctx.center_px
        self.state["x_deg"], self.state["y_deg"] = self.ctx.geometry.px_to_pos(x_px - cx,
                                                                               y_px - cy)

    def scroll(self, clicks: float) -> None:
        s = self.state
        s["ori_deg"] = (round(s["ori_deg"] / SNAP_DEG) + (1 if clicks > 0 else -1)) * SNAP_DEG
        s["ori_deg"] %= 360.0

    def update(self, dt: float) -> None:
        """Apply held keys/buttons for ``dt`` seconds; advance the grating's drift."""
        s = self.state
        grow = SIZE_RATE ** dt
        h = self.held
        if "mouse_left" in h:
            s["ori_deg"] = (s["ori_deg"] + ORI_RATE_DPS * dt) % 360.0
        if "mouse_right" in h:
            s["ori_deg"] = (s["ori_deg"] - ORI_RATE_DPS * dt) % 360.0
        if self.kind == "bar":
            self._scale("length_deg", grow, "up", "down", 0.05, 180.0)
            self._scale("width_deg", grow, "right", "left", 0.05, 180.0)
            self._step("bar_lum", LUM_RATE * dt, "equal", "minus", 0.0, 1.0)
            self._scale("flash_hz", grow, "pageup", "pagedown", 0.05, self.ctx.refresh_hz / 4)
            if self.flashing:
                self.flash_cycles = (self.flash_cycles + s["flash_hz"] * dt) % 1.0
        else:
            self._scale("sf_cpd", grow, "up", "down", 0.005, self.ctx.geometry.nyquist_cpd())
            if "right" in h or "left" in h:
                f = grow if "right" in h else 1 / grow
                s["tf_hz"] = math.copysign(min(max(abs(s["tf_hz"]) * f, 0.05),
                                               self.ctx.refresh_hz / 2), s["tf_hz"])
            self._step("contrast", LUM_RATE * dt, "equal", "minus", 0.0, 1.0)
            self.phase_rad = (self.phase_rad + 2 * math.pi * s["tf_hz"] * dt) % (2 * math.pi)
        if self.kind == "grating":
            self._scale("diameter_deg", grow, "bracketright", "bracketleft", 0.1, 180.0)

    def _scale(self, key, f, up, down, lo, hi) -> None:
        if up in self.held:
            self.state[key] = min(self.state[key] * f, hi)
        if down in self.held:
            self.state[key] = max(self.state[key] / f, lo)

    def _step(self, key, d, up, down, lo, hi) -> None:
        if up in self.held:
            self.state[key] = min(self.state[key] + d, hi)
        if down in self.held:
            self.state[key] = max(self.state[key] - d, lo)

    # -- output ----------------------------------------------------------------------------------

    def params(self) -> dict:
        """The stimulus parameters for the current state (one static frame)."""
        s = dict(self.state)
        if self.kind == "bar":
            s.pop("flash_hz")
            if self.flashing and self.flash_cycles >= 0.5:  # off for the second half-period
                s["bar_lum"] = s["bg_lum"]
            return {**s, "speed_dps": 0.0}
        return {**s, "phase0_rad": self.phase_rad, "mean_lum": s["bg_lum"]}

    def readout(self) -> str:
        s = self.state
        parts = [f"x {s['x_deg']:+.2f}°  y {s['y_deg']:+.2f}°  ori {s['ori_deg']:.0f}°"]
        if self.kind == "bar":
            parts.append(f"{s['length_deg']:.2f}° x {s['width_deg']:.2f}°  "
                         f"lum {s['bar_lum']:.2f} on {s['bg_lum']:.2f}"
                         + (f"  flashing {s['flash_hz']:.2f} Hz" if self.flashing else ""))
        else:
            parts.append(f"sf {s['sf_cpd']:.3f} c/°  tf {s['tf_hz']:.2f} Hz  "
                         f"contrast {s['contrast']:.2f}  diameter {s['diameter_deg']:.1f}°")
        if self.message:
            parts.append(self.message)
        return "   ".join(parts)

    def save(self) -> None:
        if self.save_to is None:
            self.message = "nowhere to save (no config path)"
            return
        values = {k: round(float(v), 4) for k, v in self.state.items()}
        update_section(self.save_to, f"manual_{self.kind}", values)
        self.message = f"saved to {self.save_to}"


KEY_NAMES = {"ESCAPE": "escape", "ENTER": "enter", "RETURN": "enter", "I": "i", "_0": "0",
             "UP": "up", "DOWN": "down", "LEFT": "left", "RIGHT": "right", "EQUAL": "equal",
             "PLUS": "equal", "MINUS": "minus", "BRACKETLEFT": "bracketleft",
             "BRACKETRIGHT": "bracketright", "SPACE": "space", "PAGEUP": "pageup",
             "PAGEDOWN": "pagedown"}


def run_manual(kind: str, rig: RigSettings, save_to: str | Path, *, window: bool = False,
               offscreen: bool = False, max_frames: int | None = None) -> int:
    """The interactive loop (returns the exit status). ``max_frames`` ends it (tests)."""
    import time

    from stimulus.display import Display, use_headless

    if offscreen:
        use_headless()
    import pyglet
    from pyglet.window import key, mouse

    scr = rig.screen
    display = Display(scr.width_px, scr.height_px, fullscreen=scr.fullscreen and not window,
                      screen_index=scr.screen_index, gamma=scr.gamma)
    geom = rig.with_screen(width_px=display.width_px, height_px=display.height_px).screen
    ctx = RenderContext(geom.geometry(), scr.refresh_hz, scr.gamma)
    ctrl = ManualController(kind, ctx, rig.manual_bar if kind == "bar" else rig.manual_grating,
                            save_to)
    stim = Bar(ctx, {}) if kind == "bar" else Grating(ctx, {"mask": "circle"})
    label = pyglet.text.Label("", x=8, y=display.height_px - 8, anchor_y="top", font_size=11,
                              color=(255, 64, 64, 255))
    names = {getattr(key, k): v for k, v in KEY_NAMES.items() if hasattr(key, k)}
    w = display.window
    if not display.headless:
        w.set_mouse_visible(True)

    def on_key_press(symbol, modifiers):
        if symbol in names:
            ctrl.press(names[symbol])
        return True

    def on_key_release(symbol, modifiers):
        if symbol in names:
            ctrl.release(names[symbol])
        return True

    def on_mouse_press(x, y, button, modifiers):
        ctrl.press("mouse_left" if button == mouse.LEFT else "mouse_right")

    def on_mouse_release(x, y, button, modifiers):
        ctrl.release("mouse_left" if button == mouse.LEFT else "mouse_right")

    def on_mouse_motion(x, y, dx, dy):
        ctrl.move_to_px(x, y)

    def on_mouse_scroll(x, y, scroll_x, scroll_y):
        if scroll_y:
            ctrl.scroll(scroll_y)

    def on_close():
        ctrl.quit = True
        return True

    w.push_handlers(on_key_press=on_key_press, on_key_release=on_key_release,
                    on_mouse_press=on_mouse_press, on_mouse_release=on_mouse_release,
                    on_mouse_motion=on_mouse_motion, on_mouse_drag=lambda x, y, *a:
                    on_mouse_motion(x, y, 0, 0), on_mouse_scroll=on_mouse_scroll,
                    on_close=on_close)
    last = time.perf_counter()
    n = 0
    try:
        while not ctrl.quit and (max_frames is None or n < max_frames):
            now = time.perf_counter()
            ctrl.update(now - last if not offscreen else 1.0 / scr.refresh_hz)
            last = now
            display.clear(ctrl.state["bg_lum"])
            stim.begin_sweep(ctrl.params(), 1)
            stim.draw(0)
            label.text = ctrl.readout()
            label.draw()
            display.flip()
            display.dispatch_events()
            n += 1
    finally:
        stim.close()
        display.close()
    return 0
