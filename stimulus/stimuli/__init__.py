"""Stimulus kinds by name (what an experiment script's ``stimulus=`` selects)."""

from __future__ import annotations

from stimulus.stimuli.bar import Bar
from stimulus.stimuli.base import RenderContext, Stimulus
from stimulus.stimuli.blank import Blank
from stimulus.stimuli.grating import Grating
from stimulus.stimuli.movie import Movie
from stimulus.stimuli.msequence import MSequence
from stimulus.stimuli.sparse_noise import SparseNoise

KINDS: dict[str, type[Stimulus]] = {
    cls.KIND: cls for cls in (Grating, Bar, SparseNoise, MSequence, Movie, Blank)
}

__all__ = ["KINDS", "RenderContext", "Stimulus"]
