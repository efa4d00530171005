"""What every stimulus shares: the render context, a full-screen shader quad, textures.

A stimulus is drawn by one fragment shader over a full-window quad: the GPU computes every
pixel from a handful of uniforms, so the per-frame CPU work is a few uniform writes and one
draw call. Shaders work in window pixels (``gl_FragCoord``, origin bottom-left, pixel centres
at +0.5) and output ``lum ** (1/gamma)`` (see :mod:`stimulus.gamma`).

Life cycle, driven by :mod:`stimulus.runner`::

    stim = Grating(ctx, static)          # compile shaders, upload textures (before frame 0)
    stim.begin_sweep(params, n_frames)   # at each sweep change: the condition's parameters
    stim.draw(frame_in_sweep)            # every refresh: per-frame uniforms + one draw call
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from stimulus.geometry import Geometry
from stimulus.params import COMMON, Param

VERTEX_SHADER = """#version 330 core
in vec2 position;
void main() { gl_Position = vec4(position, 0.0, 1.0); }
"""

FRAGMENT_PRELUDE = """#version 330 core
out vec4 out_color;
uniform float gamma;
vec4 drive(float lum) {
    float v = pow(clamp(lum, 0.0, 1.0), 1.0 / gamma);
    return vec4(v, v, v, 1.0);
}
// coverage of [-half, half] by a 1-pixel box centred at x (analytic anti-aliasing)
float cover(float x, float half_w) {
    return clamp(half_w - abs(x) + 0.5, 0.0, 1.0);
}
"""


@dataclass
class RenderContext:
    """What stimuli need to know about the display.

    geometry : screen geometry (its width_px/height_px are the window size).
    refresh_hz : the refresh rate frames are counted at (measured, or configured).
    gamma : monitor gamma applied by the shaders.
    seed : the experiment seed.
    """

    geometry: Geometry
    refresh_hz: float
    gamma: float = 1.0
    seed: int = 0
    """The experiment seed (stimuli that draw random patterns derive them from it)."""

    @property
    def center_px(self) -> tuple[float, float]:
        return self.geometry.width_px / 2.0, self.geometry.height_px / 2.0

    def pos_px(self, x_deg: float, y_deg: float) -> tuple[float, float]:
        """Window coordinates (origin bottom-left) of a position in degrees."""
        dx, dy = self.geometry.pos_to_px(x_deg, y_deg)
        cx, cy = self.center_px
        return cx + dx, cy + dy

    def ecc_deg(self, x_deg: float, y_deg: float) -> float:
        return math.hypot(x_deg, y_deg)


class ShaderQuad:
    """A compiled fragment shader drawn over the whole window."""

    def __init__(self, fragment_body: str, gamma: float):
        from pyglet import gl
        from pyglet.graphics.shader import Shader, ShaderProgram

        self._gl = gl
        self.program = ShaderProgram(Shader(VERTEX_SHADER, "vertex"),
                                     Shader(FRAGMENT_PRELUDE + fragment_body, "fragment"))
        self.vlist = self.program.vertex_list(
            4, gl.GL_TRIANGLE_STRIP, position=("f", [-1, -1, 1, -1, -1, 1, 1, 1]))
        self._names = set(self.program.uniforms)
        self.set(gamma=float(gamma))

    def set(self, **uniforms: Any) -> None:
        """Set uniforms by name (names the compiler optimised away are ignored)."""
        self.program.use()
        for name, value in uniforms.items():
            if name in self._names:
                self.program[name] = value

    def draw(self) -> None:
        self.program.use()
        self.vlist.draw(self._gl.GL_TRIANGLE_STRIP)

    def delete(self) -> None:
        self.vlist.delete()
        self.program.delete()


class Texture2D:
    """A single-channel texture (float32 values or uint8 levels), NEAREST or LINEAR."""

    def __init__(self, shape: tuple[int, int], *, dtype=np.float32, linear: bool = False):
        from pyglet import gl

        self._gl = gl
        self.shape = (int(shape[0]), int(shape[1]))  # (rows = height, cols = width)
        self.dtype = np.dtype(dtype)
        tex = gl.GLuint()
        gl.glGenTextures(1, ctypes.byref(tex))
        self.id = tex.value
        gl.glBindTexture(gl.GL_TEXTURE_2D, self.id)
        filt = gl.GL_LINEAR if linear else gl.GL_NEAREST
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MIN_FILTER, filt)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MAG_FILTER, filt)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_S, gl.GL_CLAMP_TO_EDGE)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_T, gl.GL_CLAMP_TO_EDGE)
        internal, _fmt, gltype = self._formats()
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, internal, self.shape[1], self.shape[0], 0,
                        gl.GL_RED, gltype, None)

    def _formats(self):
        gl = self._gl
        if self.dtype == np.uint8:
            return gl.GL_R8, gl.GL_RED, gl.GL_UNSIGNED_BYTE
        return gl.GL_R32F, gl.GL_RED, gl.GL_FLOAT

    def upload(self, image: np.ndarray) -> None:
        """Replace the contents. ``image`` shape (rows, cols), row 0 = the **top** row."""
        gl = self._gl
        a = np.ascontiguousarray(np.flipud(image), dtype=self.dtype)  # GL rows go bottom-up
        if a.shape != self.shape:
            raise ValueError(f"texture is {self.shape}, got an image of {a.shape}")
        gl.glBindTexture(gl.GL_TEXTURE_2D, self.id)
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        _i, _f, gltype = self._formats()
        gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, self.shape[1], self.shape[0], gl.GL_RED,
                           gltype, a.ctypes.data_as(ctypes.c_void_p))

    def bind(self, unit: int = 0) -> None:
        gl = self._gl
        gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
        gl.glBindTexture(gl.GL_TEXTURE_2D, self.id)

    def delete(self) -> None:
        gl = self._gl
        gl.glDeleteTextures(1, ctypes.byref(gl.GLuint(self.id)))


class Stimulus:
    """Base class. Subclasses declare ``KIND``, ``STATIC`` and ``DYNAMIC`` parameters and
    implement :meth:`begin_sweep` and :meth:`draw`.

    ``check(static, values, ctx)`` (a classmethod) returns ``[(param name, message), ...]``
    for impossible values that a type/range check cannot see (Nyquist, sizes vs the screen).
    """

    KIND: ClassVar[str] = ""
    STATIC: ClassVar[dict[str, Param]] = {}
    DYNAMIC: ClassVar[dict[str, Param]] = {}

    def __init__(self, ctx: RenderContext, static: dict):
        self.ctx = ctx
        self.static = {k: static.get(k, p.default) for k, p in self.STATIC.items()}
        self.params: dict = {}
        self.n_frames = 0

    @classmethod
    def dynamic_params(cls) -> dict[str, Param]:
        return {**COMMON, **cls.DYNAMIC}

    @classmethod
    def defaults(cls) -> dict:
        return {k: p.default for k, p in cls.dynamic_params().items()}

    @classmethod
    def check(cls, static: dict, values: dict[str, list], ctx: RenderContext
              ) -> list[tuple[str, str]]:
        return []

    def begin_sweep(self, params: dict, n_frames: int) -> None:
        """A new sweep: ``params`` has every dynamic parameter; ``n_frames`` refreshes long."""
        self.params = {**self.defaults(), **params}
        self.n_frames = n_frames

    def draw(self, frame_in_sweep: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass
