"""The virtual experiment: model V1 neurons driven by what sweepstim showed, recorded on a probe.

- :mod:`offline.sim.session` — run ``sweepstim`` headless; what was on screen per refresh;
- :mod:`offline.sim.population` — model neurons (tuning, RFs, rates, refractoriness, pairs);
- :mod:`offline.sim.extracellular` — templates by neuron position, noise with a real spectrum;
- :mod:`offline.sim.build` — the Open Ephys Binary recording + TTLs + ground truth;
- :mod:`offline.sim.compare` — sorted units against the ground truth.

``sweepsort demo`` (:mod:`offline.demo`) runs the whole system on it.
"""
