"""Drifting and flashed gratings (sine or square), with a circular, gaussian or no mask.

Luminance at a point ``u`` degrees along the drift direction from the grating centre, at
refresh ``n`` of the sweep (R = refresh rate)::

    lum = mean_lum * (1 + contrast * w(2*pi*sf_cpd*u - phase_n))
    phase_n = phase0_rad + 2*pi*tf_hz*n/R       (so the pattern drifts along ori_deg)

with ``w = sin`` (``wave = "sine"``) or ``sign(sin)`` (``"square"``). ``ori_deg`` is the drift
direction, counter-clockwise from rightward: the bars are perpendicular to it (0 = vertical
bars drifting right). A flashed grating is ``tf_hz = 0`` with short sweeps. Outside the mask the
screen shows ``bg_lum``. The spatial frequency is exact at the grating centre (see
:mod:`stimulus.geometry`).
"""

from __future__ import annotations

import math

from stimulus.params import Param
from stimulus.stimuli.base import RenderContext, ShaderQuad, Stimulus

FRAGMENT = """
uniform vec2 center_px;
uniform float ori_rad;
uniform float sf_cpp;        // cycles per pixel
uniform float phase_rad;
uniform float contrast;
uniform float mean_lum;
uniform float bg_lum;
uniform int square;
uniform int mask;            // 0 none (rectangle), 1 circle, 2 gaussian
uniform vec2 half_px;        // rectangle half width/height (mask none; <= 0: whole screen)
uniform float radius_px;     // circle radius
uniform float sigma_px;      // gaussian sigma
void main() {
    vec2 d = gl_FragCoord.xy - center_px;
    float u = cos(ori_rad) * d.x + sin(ori_rad) * d.y;
    float w = sin(6.283185307179586 * sf_cpp * u - phase_rad);
    if (square == 1) w = w >= 0.0 ? 1.0 : -1.0;
    float lum = mean_lum * (1.0 + contrast * w);
    float a = 1.0;
    if (mask == 0) {
        if (half_px.x > 0.0) a *= cover(d.x, half_px.x);
        if (half_px.y > 0.0) a *= cover(d.y, half_px.y);
    } else if (mask == 1) {
        a = clamp(radius_px - length(d) + 0.5, 0.0, 1.0);
    } else {
        a = exp(-0.5 * dot(d, d) / (sigma_px * sigma_px));
    }
    out_color = drive(mix(bg_lum, lum, a));
}
"""

MASKS = ("none", "circle", "gaussian")


class Grating(Stimulus):
    KIND = "grating"
    STATIC = {
        "mask": Param(str, "none", "mask shape", choices=MASKS, static_only=True),
        "wave": Param(str, "sine", "waveform", choices=("sine", "square"),
                      static_only=True),
    }
    DYNAMIC = {
        "ori_deg": Param(float, 0.0, "drift direction, deg ccw from rightward", -360, 720),
        "sf_cpd": Param(float, 0.1, "spatial frequency, cycles/deg", 0.0, 100.0),
        "tf_hz": Param(float, 1.0, "temporal frequency, Hz (0: static/flashed)", -100, 100),
        "phase0_rad": Param(float, 0.0, "phase at the centre at the sweep's first frame, rad",
                            -100.0, 100.0),
        "contrast": Param(float, 1.0, "Michelson contrast (<0 reverses)", -1.0, 1.0),
        "mean_lum": Param(float, 0.5, "mean luminance, 0..1", 0.0, 1.0),
        "diameter_deg": Param(float, 20.0, "circle mask diameter, deg", 0.0, 180.0),
        "sigma_deg": Param(float, 3.0, "gaussian mask sigma, deg", 0.0, 90.0),
        "width_deg": Param(float, 0.0, "rectangle width with mask none, deg (0: full screen)",
                           0.0, 180.0),
        "height_deg": Param(float, 0.0, "rectangle height with mask none, deg (0: full)",
                            0.0, 180.0),
    }

    def __init__(self, ctx: RenderContext, static: dict):
        super().__init__(ctx, static)
        self.quad = ShaderQuad(FRAGMENT, ctx.gamma)
        self.quad.set(mask=MASKS.index(self.static["mask"]),
                      square=int(self.static["wave"] == "square"))

    @classmethod
    def check(cls, static, values, ctx):
        out = []
        g = ctx.geometry
        nyq = g.nyquist_cpd(0.0)
        sfs = values.get("sf_cpd", [])
        if sfs and max(sfs) > nyq:
            out.append(("sf_cpd", f"{max(sfs):g} cycles/deg is above the screen's Nyquist "
                                  f"limit ({nyq:.3g} cycles/deg = 0.5 cycle/pixel)"))
        for key in ("tf_hz",):
            tfs = values.get(key, [])
            if tfs and max(abs(t) for t in tfs) > ctx.refresh_hz / 2:
                out.append((key, f"{max(abs(t) for t in tfs):g} Hz is above half the refresh "
                                 f"rate ({ctx.refresh_hz / 2:g} Hz): the drift would alias"))
        w_deg, h_deg = g.screen_deg()
        if static.get("mask") == "circle":
            d = values.get("diameter_deg", [])
            if d and max(d) > math.hypot(w_deg, h_deg):
                out.append(("diameter_deg", f"{max(d):g} deg is larger than the screen "
                                            f"diagonal ({math.hypot(w_deg, h_deg):.1f} deg)"))
        return out

    def begin_sweep(self, params: dict, n_frames: int) -> None:
        super().begin_sweep(params, n_frames)
        p = self.params
        ctx = self.ctx
        ecc = ctx.ecc_deg(p["x_deg"], p["y_deg"])
        g = ctx.geometry
        self.sf_cpp = p["sf_cpd"] / g.px_per_deg_at(ecc)
        self.quad.set(
            center_px=ctx.pos_px(p["x_deg"], p["y_deg"]),
            ori_rad=math.radians(p["ori_deg"]),
            sf_cpp=self.sf_cpp,
            contrast=float(p["contrast"]),
            mean_lum=float(p["mean_lum"]),
            bg_lum=float(p["bg_lum"]),
            half_px=(g.size_to_px(p["width_deg"], p["x_deg"]) / 2,
                     g.size_to_px(p["height_deg"], p["y_deg"]) / 2),
            radius_px=g.size_to_px(p["diameter_deg"], ecc) / 2,
            sigma_px=max(g.size_to_px(p["sigma_deg"], ecc), 1e-3),
        )

    def phase_rad(self, frame_in_sweep: int) -> float:
        """Phase at refresh ``frame_in_sweep`` (computed in float64, wrapped to [0, 2π))."""
        p = self.params
        ph = p["phase0_rad"] + 2 * math.pi * p["tf_hz"] * frame_in_sweep / self.ctx.refresh_hz
        return math.fmod(ph, 2 * math.pi) % (2 * math.pi)

    def draw(self, frame_in_sweep: int) -> None:
        self.quad.set(phase_rad=self.phase_rad(frame_in_sweep))
        self.quad.draw()

    def close(self) -> None:
        self.quad.delete()
