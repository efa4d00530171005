"""The stimulus window: full-screen with vsync on a real monitor, or offscreen (headless EGL).

Every refresh the runner calls :meth:`Display.clear` (background), draws the stimulus, the
photodiode patch (:meth:`Display.photodiode`), then :meth:`Display.flip`, which swaps buffers
and waits for the GPU (``glFinish``) so that, with vsync, it returns right after the vertical
blank at which the new image starts scanning out. The caller timestamps the return.

**Display lag.** The image drawn for refresh n reaches the top of the screen at the vertical
blank that ends the flip, and the bottom one refresh period later (raster scan); LCDs add their
own processing delay on top. The TTL word for refresh n leaves after the flip returns, so it
follows the vblank by the flip-return latency (typically < 1 ms) plus the TTL backend's latency.
Some drivers queue one frame ahead (flip returns a refresh *before* the image is shown): then
every image is one refresh later than its TTL word. Measure it once per rig with the
photodiode patch (docs/stimulus.md) and correct offline by a constant.

Headless: ``pyglet.options['headless']`` must be set before ``pyglet.window`` is imported;
:func:`use_headless` does it (the CLI's ``--offscreen``, the tests' conftest via
``PYGLET_HEADLESS=1``).
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from stimulus.gamma import correct

CORNERS = ("bottom-left", "bottom-right", "top-left", "top-right")


def use_headless() -> None:
    """Render offscreen through EGL (call before anything imports ``pyglet.window``)."""
    os.environ["PYGLET_HEADLESS"] = "1"
    import pyglet

    pyglet.options["headless"] = True


class Display:
    """One window (or offscreen surface) of ``width_px`` × ``height_px``.

    Parameters
    ----------
    width_px, height_px : int — used when not full-screen.
    fullscreen : bool — full-screen on ``screen_index`` (the window takes the screen's mode).
    screen_index : int — which monitor (pyglet's order).
    vsync : bool — synchronise flips to the vertical blank.
    gamma : float — applied to :meth:`clear` and the photodiode patch (shaders do their own).
    photodiode_px, photodiode_corner : the patch; ``photodiode_px = 0`` disables it.
    """

    def __init__(self, width_px: int, height_px: int, *, fullscreen: bool = False,
                 screen_index: int = 0, vsync: bool = True, gamma: float = 1.0,
                 photodiode_px: int = 0, photodiode_corner: str = "bottom-right",
                 visible: bool = True):
        import pyglet
        from pyglet import gl

        self._gl = gl
        self.gamma = float(gamma)
        config = gl.Config(red_size=8, green_size=8, blue_size=8, alpha_size=8,
                           double_buffer=not pyglet.options["headless"])
        self.headless = bool(pyglet.options["headless"])
        kwargs = dict(config=config, vsync=vsync, caption="sweepstim")
        if fullscreen and not self.headless:
            screens = pyglet.display.get_display().get_screens()
            if not 0 <= screen_index < len(screens):
                raise RuntimeError(f"screen {screen_index} does not exist "
                                   f"({len(screens)} screen(s))")
            self.window = pyglet.window.Window(fullscreen=True, screen=screens[screen_index],
                                               **kwargs)
            self.window.set_mouse_visible(False)
        else:
            self.window = pyglet.window.Window(width_px, height_px, visible=visible and
                                               not self.headless, **kwargs)
        self.width_px, self.height_px = self.window.get_framebuffer_size()
        self.window.switch_to()
        gl.glViewport(0, 0, self.width_px, self.height_px)
        gl.glDisable(gl.GL_BLEND)
        gl.glDisable(gl.GL_DEPTH_TEST)
        if photodiode_corner not in CORNERS:
            raise ValueError(f"photodiode_corner must be one of {CORNERS}")
        self.photodiode_px = int(photodiode_px)
        self._corner = photodiode_corner
        self.closed = False

    # -- per frame --------------------------------------------------------------------------

    def clear(self, lum: float) -> None:
        """Fill the window with linear luminance ``lum`` (gamma-corrected)."""
        gl = self._gl
        v = float(correct(lum, self.gamma))
        gl.glDisable(gl.GL_SCISSOR_TEST)
        gl.glClearColor(v, v, v, 1.0)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)

    def photodiode(self, on: bool) -> None:
        """Draw the photodiode patch white (``on``) or black in its corner."""
        if self.photodiode_px <= 0:
            return
        gl = self._gl
        x, y, size = self.photodiode_rect()
        gl.glEnable(gl.GL_SCISSOR_TEST)
        gl.glScissor(x, y, size, size)
        v = 1.0 if on else 0.0
        gl.glClearColor(v, v, v, 1.0)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
        gl.glDisable(gl.GL_SCISSOR_TEST)

    def photodiode_rect(self) -> tuple[int, int, int]:
        """(x, y, size) of the patch in window pixels, origin bottom-left."""
        s = self.photodiode_px
        x = 0 if self._corner.endswith("left") else self.width_px - s
        y = 0 if self._corner.startswith("bottom") else self.height_px - s
        return x, y, s

    def flip(self) -> None:
        """Show the frame: swap (waits for the vblank with vsync) and wait for the GPU."""
        self.window.flip()
        self._gl.glFinish()

    def finish(self) -> None:
        """Wait until everything drawn so far is in the framebuffer (before reading pixels)."""
        self._gl.glFinish()

    def dispatch_events(self) -> None:
        self.window.dispatch_events()

    # -- inspection -------------------------------------------------------------------------

    def read_pixels(self, x: int = 0, y: int = 0, width: int | None = None,
                    height: int | None = None) -> np.ndarray:
        """The red channel of a window region as uint8 (height, width), **rows bottom-up**
        (``a[y, x]`` is the pixel whose ``gl_FragCoord`` is (x + 0.5, y + 0.5)).

        Read before :meth:`flip` on a double-buffered window (the back buffer is read).
        """
        gl = self._gl
        width = self.width_px - x if width is None else width
        height = self.height_px - y if height is None else height
        gl.glFinish()
        buf = (ctypes.c_ubyte * (width * height * 4))()
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        gl.glReadPixels(x, y, width, height, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, buf)
        return np.frombuffer(buf, np.uint8).reshape(height, width, 4)[..., 0].copy()

    def close(self) -> None:
        if not self.closed:
            self.window.close()
            self.closed = True
