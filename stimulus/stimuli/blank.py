"""A uniform screen at ``bg_lum`` (spontaneous activity; also what blank sweeps show)."""

from __future__ import annotations

from stimulus.stimuli.base import Stimulus


class Blank(Stimulus):
    KIND = "blank"
    STATIC = {}
    DYNAMIC = {}

    def draw(self, frame_in_sweep: int) -> None:
        pass  # the display clears to bg_lum before every frame
