"""M-sequence noise: every cell of a grid follows one maximal-length LFSR sequence, shifted.

The sequence of order ``n`` (length L = 2^n - 1) comes from a Galois LFSR with the tap set
``taps`` (exponents of the feedback polynomial; a primitive one by default, see
:data:`DEFAULT_TAPS`), started from state 1: bit t is the register's low bit before step t.
Cell k (``k = yi * n_cells_x + xi``, ``yi`` from the bottom) shows bit
``(t + k * lag) mod L`` at sequence position t, with ``lag = L // (n_cells_x * n_cells_y)`` —
the classic one-sequence-for-all-pixels design (Sutter 1987; Reid, Victor & Shapley 1997) whose
cross-correlation gives every cell's kernel at once. Bit 1 shows ``bright_lum``, 0
``dark_lum``.

Sequence position: ``t = frame_i + frame_in_sweep // refreshes_per_frame``. Use either one
long sweep (``frame_i = 0``, ``sweep_s = L * refreshes_per_frame / R``) or dimstim's way:
``frame_i`` a Variable over ``range(L)`` with one sweep per element (then the TTL sweep index is
the sequence position).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from stimulus.params import Param
from stimulus.stimuli.base import RenderContext, Stimulus
from stimulus.stimuli.texrect import TexturedRect

DEFAULT_TAPS = {
    2: (2, 1), 3: (3, 2), 4: (4, 3), 5: (5, 3), 6: (6, 5), 7: (7, 6), 8: (8, 6, 5, 4),
    9: (9, 5), 10: (10, 7), 11: (11, 9), 12: (12, 6, 4, 1), 13: (13, 4, 3, 1),
    14: (14, 5, 3, 1), 15: (15, 14), 16: (16, 15, 13, 4), 17: (17, 14), 18: (18, 11),
    19: (19, 6, 2, 1), 20: (20, 17),
}
"""Primitive feedback polynomials x^n + ... by order (tap exponents), maximal for 2..20."""


@lru_cache(maxsize=8)
def lfsr_sequence(order: int, taps: tuple[int, ...] | None = None) -> np.ndarray:
    """The m-sequence: uint8 array of shape (2^order - 1,), values 0/1 (read-only).

    Raises ValueError for an unknown order without taps, or taps that do not give a
    maximal-length sequence (the period is checked).
    """
    if taps is None:
        if order not in DEFAULT_TAPS:
            raise ValueError(f"no default taps for order {order} (2..20): give taps")
        taps = DEFAULT_TAPS[order]
    taps = tuple(int(t) for t in taps)
    if max(taps) != order or min(taps) < 1:
        raise ValueError(f"taps {taps} must be exponents 1..{order} including {order}")
    mask = 0
    for t in taps:
        mask |= 1 << (t - 1)
    n = (1 << order) - 1
    out = np.empty(n, np.uint8)
    state = 1
    for i in range(n):
        bit = state & 1
        out[i] = bit
        state >>= 1
        if bit:
            state ^= mask
        if state == 1 and i < n - 1:
            raise ValueError(f"taps {taps} are not maximal: period {i + 1} < {n}")
    if state != 1:
        raise ValueError(f"taps {taps} are not maximal for order {order}")
    out.setflags(write=False)
    return out


def frame_bits(order: int, taps, n_x: int, n_y: int, t: int) -> np.ndarray:
    """The grid at sequence position ``t``: uint8 (n_y, n_x), row 0 = top, values 0/1."""
    seq = lfsr_sequence(order, None if taps is None else tuple(taps))
    n = seq.size
    lag = n // (n_x * n_y)
    k = np.arange(n_x * n_y)
    bits = seq[(t + k * lag) % n]
    return np.flipud(bits.reshape(n_y, n_x))


class MSequence(Stimulus):
    KIND = "msequence"
    STATIC = {
        "order": Param(int, 15, "LFSR order n (sequence length 2^n - 1)", 2, 20,
                       static_only=True),
        "n_cells_x": Param(int, 16, "grid columns", 1, 512, static_only=True),
        "n_cells_y": Param(int, 16, "grid rows", 1, 512, static_only=True),
        "refreshes_per_frame": Param(int, 1, "refreshes per sequence element", 1, 10000,
                                     static_only=True),
        "taps": Param(tuple, None, "feedback tap exponents (default: DEFAULT_TAPS[order])",
                      static_only=True),
    }
    DYNAMIC = {
        "frame_i": Param(int, 0, "sequence position at the sweep's first refresh", 0,
                         2**20),
        "bright_lum": Param(float, 1.0, "luminance of a 1, 0..1", 0.0, 1.0),
        "dark_lum": Param(float, 0.0, "luminance of a 0, 0..1", 0.0, 1.0),
        "width_deg": Param(float, 32.0, "grid width, deg", 0.0, 180.0),
        "height_deg": Param(float, 32.0, "grid height, deg", 0.0, 180.0),
        "ori_deg": Param(float, 0.0, "grid rotation, deg ccw", -360, 720),
    }

    def __init__(self, ctx: RenderContext, static: dict):
        super().__init__(ctx, static)
        s = self.static
        self.taps = self.static["taps"]
        lfsr_sequence(s["order"], None if self.taps is None else tuple(self.taps))
        self.rect = TexturedRect(ctx, (s["n_cells_y"], s["n_cells_x"]), dtype=np.uint8)
        self._t = None

    @classmethod
    def check(cls, static, values, ctx):
        out = []
        order = static.get("order", cls.STATIC["order"].default)
        taps = static.get("taps")
        try:
            lfsr_sequence(order, None if taps is None else tuple(taps))
        except (ValueError, TypeError) as exc:
            out.append(("taps" if taps is not None else "order", str(exc)))
            return out
        nx = static.get("n_cells_x", cls.STATIC["n_cells_x"].default)
        ny = static.get("n_cells_y", cls.STATIC["n_cells_y"].default)
        if nx * ny > (1 << order) - 1:
            out.append(("order", f"a {nx} x {ny} grid needs a sequence longer than "
                                 f"2^{order} - 1"))
        return out

    def position(self, frame_in_sweep: int) -> int:
        return self.params["frame_i"] + frame_in_sweep // self.static["refreshes_per_frame"]

    def begin_sweep(self, params: dict, n_frames: int) -> None:
        super().begin_sweep(params, n_frames)
        p = self.params
        self.rect.place(p["x_deg"], p["y_deg"], p["width_deg"], p["height_deg"], p["ori_deg"],
                        p["bg_lum"])
        self.rect.set_levels(p["bright_lum"] - p["dark_lum"], p["dark_lum"])
        self._t = None

    def draw(self, frame_in_sweep: int) -> None:
        t = self.position(frame_in_sweep)
        if t != self._t:
            s = self.static
            # texel 0/1 as uint8 levels 0/255 -> 0/1 after the texture's normalisation
            bits = frame_bits(s["order"], self.taps, s["n_cells_x"], s["n_cells_y"], t)
            self.rect.upload(bits * np.uint8(255))
            self._t = t
        self.rect.draw()

    def close(self) -> None:
        self.rect.close()
