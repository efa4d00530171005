"""A rotated rectangle filled with a texture (grids of cells, movie frames).

Shared by sparse noise, m-sequence noise and movies. The texture holds luminance values
(row 0 = top of the rectangle); outside the rectangle the screen shows ``bg_lum``. With
``raw`` the values go to the monitor as they are (no gamma correction: for movies that are
already gamma-encoded).
"""

from __future__ import annotations

import math

import numpy as np

from stimulus.stimuli.base import RenderContext, ShaderQuad, Texture2D

FRAGMENT = """
uniform sampler2D tex;
uniform vec2 center_px;
uniform float ori_rad;
uniform vec2 half_px;
uniform float bg_lum;
uniform float scale;        // lum = texel * scale + offset
uniform float offset;
uniform int raw;
void main() {
    vec2 d = gl_FragCoord.xy - center_px;
    float x = cos(ori_rad) * d.x + sin(ori_rad) * d.y;
    float y = -sin(ori_rad) * d.x + cos(ori_rad) * d.y;
    if (abs(x) > half_px.x || abs(y) > half_px.y) {
        out_color = drive(bg_lum);
        return;
    }
    vec2 uv = vec2(x / (2.0 * half_px.x) + 0.5, y / (2.0 * half_px.y) + 0.5);
    float v = texture(tex, uv).r * scale + offset;
    out_color = raw == 1 ? vec4(v, v, v, 1.0) : drive(v);
}
"""


class TexturedRect:
    """One texture of ``shape`` (rows, cols) drawn in a rotated rectangle.

    dtype float32 holds luminance 0..1 directly; uint8 holds levels 0..255 (scaled by 1/255).
    """

    def __init__(self, ctx: RenderContext, shape: tuple[int, int], *, dtype=np.float32,
                 linear: bool = False, raw: bool = False):
        self.ctx = ctx
        self.texture = Texture2D(shape, dtype=dtype, linear=linear)
        self.quad = ShaderQuad(FRAGMENT, ctx.gamma)
        self.quad.set(tex=0, raw=int(raw), scale=1.0, offset=0.0)

    def place(self, x_deg: float, y_deg: float, width_deg: float, height_deg: float,
              ori_deg: float, bg_lum: float) -> None:
        """Position, size and rotation of the rectangle, and the background around it."""
        g = self.ctx.geometry
        ecc = self.ctx.ecc_deg(x_deg, y_deg)
        self.quad.set(center_px=self.ctx.pos_px(x_deg, y_deg), ori_rad=math.radians(ori_deg),
                      half_px=(g.size_to_px(width_deg, ecc) / 2,
                               g.size_to_px(height_deg, ecc) / 2),
                      bg_lum=float(bg_lum))

    def set_levels(self, scale: float, offset: float) -> None:
        self.quad.set(scale=float(scale), offset=float(offset))

    def upload(self, image: np.ndarray) -> None:
        self.texture.upload(image)

    def draw(self) -> None:
        self.texture.bind(0)
        self.quad.draw()

    def close(self) -> None:
        self.quad.delete()
        self.texture.delete()
