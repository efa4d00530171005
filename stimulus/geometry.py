"""Screen geometry: degrees of visual angle <-> pixels on a flat screen.

The eye looks at the screen centre, perpendicular to it, from ``distance_cm``. Unlike the
seed (which used the small-angle arc length everywhere), the conversions here are exact for a
flat screen:

- a **position** ``x_deg`` from the screen centre is at ``distance * tan(x_deg)`` cm;
- an **extent** ``size_deg`` centred on a point at eccentricity ``e_deg`` covers
  ``distance * (tan(e + size/2) - tan(e - size/2))`` cm (``2 * distance * tan(size/2)`` on the
  line of sight);
- a **spatial frequency** is rendered with the local scale at the stimulus centre
  (``px_per_deg_at``), so a grating is an exact sinusoid in pixels whose frequency is exact at
  its centre. Far from the line of sight a flat screen stretches the visual angle; sweepstim
  does not warp images to a sphere (documented in docs/stimulus.md).

Pixels: ``px_per_cm`` may differ horizontally and vertically (non-square pixels are rare but
allowed); positions are returned relative to the screen centre, +x right, +y up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    """Screen size and viewing distance.

    width_cm, height_cm : visible image size, cm.
    width_px, height_px : resolution, pixels.
    distance_cm : eye to screen (perpendicular), cm.
    """

    width_cm: float
    height_cm: float
    width_px: int
    height_px: int
    distance_cm: float

    @property
    def px_per_cm_x(self) -> float:
        return self.width_px / self.width_cm

    @property
    def px_per_cm_y(self) -> float:
        return self.height_px / self.height_cm

    @property
    def px_per_cm(self) -> float:
        """Mean of horizontal and vertical pixel density, px/cm."""
        return 0.5 * (self.px_per_cm_x + self.px_per_cm_y)

    def px_per_deg_at(self, ecc_deg: float = 0.0) -> float:
        """Local scale at eccentricity ``ecc_deg`` along a screen axis, px/deg
        (d/dθ of distance·tan θ)."""
        c = math.cos(math.radians(ecc_deg))
        return self.distance_cm * self.px_per_cm * math.pi / 180.0 / (c * c)

    def pos_to_px(self, x_deg: float, y_deg: float) -> tuple[float, float]:
        """Degrees from the screen centre -> pixels from the centre (+x right, +y up)."""
        return (self.distance_cm * math.tan(math.radians(x_deg)) * self.px_per_cm_x,
                self.distance_cm * math.tan(math.radians(y_deg)) * self.px_per_cm_y)

    def px_to_pos(self, x_px: float, y_px: float) -> tuple[float, float]:
        """Inverse of :meth:`pos_to_px`."""
        return (math.degrees(math.atan(x_px / self.px_per_cm_x / self.distance_cm)),
                math.degrees(math.atan(y_px / self.px_per_cm_y / self.distance_cm)))

    def size_to_px(self, size_deg: float, ecc_deg: float = 0.0) -> float:
        """Extent of ``size_deg`` centred at eccentricity ``ecc_deg``, px (exact, flat screen)."""
        if size_deg <= 0:
            return 0.0
        half = min(size_deg / 2.0, 89.999)
        a = math.radians(min(ecc_deg + half, 89.999))
        b = math.radians(max(ecc_deg - half, -89.999))
        return self.distance_cm * (math.tan(a) - math.tan(b)) * self.px_per_cm

    def screen_deg(self) -> tuple[float, float]:
        """Full screen width and height in degrees (centred on the line of sight)."""
        return (2 * math.degrees(math.atan(self.width_cm / 2 / self.distance_cm)),
                2 * math.degrees(math.atan(self.height_cm / 2 / self.distance_cm)))

    def nyquist_cpd(self, ecc_deg: float = 0.0) -> float:
        """Highest spatial frequency the pixels can show at ``ecc_deg``: 0.5 cycle/px, cyc/deg."""
        return 0.5 * self.px_per_deg_at(ecc_deg)
