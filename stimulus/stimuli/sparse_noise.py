"""Sparse noise: a grid of cells, one or several of them bright or dark per sweep.

The grid (``n_cells_x`` × ``n_cells_y`` cells over ``width_deg`` × ``height_deg``, rotated by
``ori_deg`` about its centre at (``x_deg``, ``y_deg``)) shows ``bg_lum`` except for the lit
cells. Cell (``xi``, ``yi``) counts from the bottom-left cell (0, 0), ``xi`` rightwards and
``yi`` upwards (dimstim's convention).

- ``n_spots = 1`` (static): the sweep's ``xi``, ``yi`` and ``spot_lum`` say which cell and how
  bright — make them Variables to map every cell at both polarities.
- ``n_spots > 1``: the sweep's ``pattern_i`` picks pattern k of a reproducible family: k's
  ``n_spots`` distinct cells and their polarities (``spot_lum`` for bright, ``dark_lum`` for
  dark) are drawn from ``numpy.random.default_rng([seed, 0x5A5E, k])`` — the experiment seed,
  so :func:`pattern` rebuilds any sweep's frame offline.

Each sweep lasts ``sweep_s`` (one refresh and up): that is the per-frame duration.
"""

from __future__ import annotations

import numpy as np

from stimulus.params import Param
from stimulus.stimuli.base import RenderContext, Stimulus
from stimulus.stimuli.texrect import TexturedRect


def pattern(seed: int, k: int, n_x: int, n_y: int, n_spots: int) -> np.ndarray:
    """Pattern ``k``: int8 array (n_y, n_x), row 0 = top; +1 bright, -1 dark, 0 background."""
    rng = np.random.default_rng([int(seed), 0x5A5E, int(k)])
    cells = rng.choice(n_x * n_y, size=n_spots, replace=False)
    polarity = np.where(rng.integers(0, 2, size=n_spots) == 1, 1, -1).astype(np.int8)
    grid = np.zeros(n_x * n_y, np.int8)
    grid[cells] = polarity
    return np.flipud(grid.reshape(n_y, n_x))  # cell index = yi * n_x + xi, yi from the bottom


class SparseNoise(Stimulus):
    KIND = "sparse_noise"
    STATIC = {
        "n_cells_x": Param(int, 8, "grid columns", 1, 1024, static_only=True),
        "n_cells_y": Param(int, 8, "grid rows", 1, 1024, static_only=True),
        "n_spots": Param(int, 1, "cells lit per sweep", 1, 100000, static_only=True),
    }
    DYNAMIC = {
        "xi": Param(int, 0, "lit cell column (n_spots = 1), from the left", 0, 1023),
        "yi": Param(int, 0, "lit cell row (n_spots = 1), from the bottom", 0, 1023),
        "pattern_i": Param(int, 0, "pattern number (n_spots > 1)", 0, 2**31 - 1),
        "spot_lum": Param(float, 1.0, "lit cell luminance (bright cells), 0..1", 0.0, 1.0),
        "dark_lum": Param(float, 0.0, "dark cell luminance (n_spots > 1), 0..1", 0.0, 1.0),
        "width_deg": Param(float, 40.0, "grid width, deg", 0.0, 180.0),
        "height_deg": Param(float, 40.0, "grid height, deg", 0.0, 180.0),
        "ori_deg": Param(float, 0.0, "grid rotation, deg ccw", -360, 720),
    }

    def __init__(self, ctx: RenderContext, static: dict):
        super().__init__(ctx, static)
        s = self.static
        self.rect = TexturedRect(ctx, (s["n_cells_y"], s["n_cells_x"]))

    @classmethod
    def check(cls, static, values, ctx):
        out = []
        nx = static.get("n_cells_x", cls.STATIC["n_cells_x"].default)
        ny = static.get("n_cells_y", cls.STATIC["n_cells_y"].default)
        ns = static.get("n_spots", 1)
        for key, n in (("xi", nx), ("yi", ny)):
            v = values.get(key, [])
            if v and max(v) >= n:
                out.append((key, f"cell {max(v)} is outside the grid (0..{n - 1})"))
        if ns > nx * ny:
            out.append(("n_spots", f"{ns} spots do not fit a {nx} x {ny} grid"))
        w_deg, h_deg = ctx.geometry.screen_deg()
        for key, lim in (("width_deg", w_deg), ("height_deg", h_deg)):
            v = values.get(key, [])
            if v and max(v) > 2 * lim:
                out.append((key, f"{max(v):g} deg is far bigger than the screen ({lim:.1f} deg)"))
        return out

    def image(self) -> np.ndarray:
        """The current sweep's cell luminances, float32 (n_cells_y, n_cells_x), row 0 = top."""
        s, p = self.static, self.params
        nx, ny = s["n_cells_x"], s["n_cells_y"]
        img = np.full((ny, nx), p["bg_lum"], np.float32)
        if s["n_spots"] == 1:
            img[ny - 1 - p["yi"], p["xi"]] = p["spot_lum"]
        else:
            pat = pattern(self.ctx.seed, p["pattern_i"], nx, ny, s["n_spots"])
            img[pat > 0] = p["spot_lum"]
            img[pat < 0] = p["dark_lum"]
        return img

    def begin_sweep(self, params: dict, n_frames: int) -> None:
        super().begin_sweep(params, n_frames)
        p = self.params
        self.rect.place(p["x_deg"], p["y_deg"], p["width_deg"], p["height_deg"], p["ori_deg"],
                        p["bg_lum"])
        self.rect.upload(self.image())

    def draw(self, frame_in_sweep: int) -> None:
        self.rect.draw()

    def close(self) -> None:
        self.rect.close()
