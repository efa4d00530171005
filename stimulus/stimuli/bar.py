"""Moving and flashed bars.

A ``length_deg`` × ``width_deg`` rectangle of ``bar_lum`` on ``bg_lum``. ``ori_deg`` is the
orientation of the bar's long axis (counter-clockwise from rightward); the bar moves
perpendicular to it, towards ``ori_deg + 90`` for ``speed_dps > 0`` (``ori_deg - 90`` for a
negative speed). Over a sweep of N refreshes it travels ``|speed| * N / R`` degrees centred on
(``x_deg``, ``y_deg``): at refresh ``n`` its centre is ``speed * (n - (N - 1) / 2) / R``
degrees from there along the motion direction. ``speed_dps = 0`` is a flashed bar at
(``x_deg``, ``y_deg``). Edges are anti-aliased over one pixel.
"""

from __future__ import annotations

import math

from stimulus.params import Param
from stimulus.stimuli.base import RenderContext, ShaderQuad, Stimulus

FRAGMENT = """
uniform vec2 center_px;
uniform float ori_rad;
uniform vec2 half_px;       // half length (along ori), half width (across)
uniform float bar_lum;
uniform float bg_lum;
void main() {
    vec2 d = gl_FragCoord.xy - center_px;
    float along = cos(ori_rad) * d.x + sin(ori_rad) * d.y;
    float across = -sin(ori_rad) * d.x + cos(ori_rad) * d.y;
    float a = cover(along, half_px.x) * cover(across, half_px.y);
    out_color = drive(mix(bg_lum, bar_lum, a));
}
"""


class Bar(Stimulus):
    KIND = "bar"
    STATIC = {}
    DYNAMIC = {
        "ori_deg": Param(float, 0.0, "long-axis orientation, deg ccw from rightward", -360, 720),
        "speed_dps": Param(float, 10.0, "speed perpendicular to the long axis, deg/s (0: "
                                        "flashed; <0: the other way)", -1000.0, 1000.0),
        "length_deg": Param(float, 10.0, "bar length (along ori), deg", 0.0, 180.0),
        "width_deg": Param(float, 1.0, "bar width (across ori), deg", 0.0, 180.0),
        "bar_lum": Param(float, 1.0, "bar luminance, 0..1", 0.0, 1.0),
    }

    def __init__(self, ctx: RenderContext, static: dict):
        super().__init__(ctx, static)
        self.quad = ShaderQuad(FRAGMENT, ctx.gamma)

    @classmethod
    def check(cls, static, values, ctx):
        out = []
        w_deg, h_deg = ctx.geometry.screen_deg()
        diag = math.hypot(w_deg, h_deg)
        for key in ("length_deg", "width_deg"):
            v = values.get(key, [])
            if v and max(v) > diag:
                out.append((key, f"{max(v):g} deg is bigger than the screen (diagonal "
                                 f"{diag:.1f} deg)"))
        return out

    def begin_sweep(self, params: dict, n_frames: int) -> None:
        super().begin_sweep(params, n_frames)
        p = self.params
        g = self.ctx.geometry
        ecc = self.ctx.ecc_deg(p["x_deg"], p["y_deg"])
        self._center = self.ctx.pos_px(p["x_deg"], p["y_deg"])
        ori = math.radians(p["ori_deg"])
        self._ori = ori
        self._motion = (-math.sin(ori), math.cos(ori))  # unit vector towards ori + 90
        self._px_per_deg = g.px_per_deg_at(ecc)
        self.quad.set(ori_rad=ori,
                      half_px=(g.size_to_px(p["length_deg"], ecc) / 2,
                               g.size_to_px(p["width_deg"], ecc) / 2),
                      bar_lum=float(p["bar_lum"]), bg_lum=float(p["bg_lum"]))

    def center_px(self, frame_in_sweep: int) -> tuple[float, float]:
        """Window position of the bar centre at refresh ``frame_in_sweep``."""
        p = self.params
        s_deg = p["speed_dps"] * (frame_in_sweep - (self.n_frames - 1) / 2) / self.ctx.refresh_hz
        s_px = s_deg * self._px_per_deg
        return (self._center[0] + s_px * self._motion[0],
                self._center[1] + s_px * self._motion[1])

    def draw(self, frame_in_sweep: int) -> None:
        self.quad.set(center_px=self.center_px(frame_in_sweep))
        self.quad.draw()

    def close(self) -> None:
        self.quad.delete()
