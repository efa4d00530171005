"""A grey screen for 10 minutes (spontaneous activity)."""

from stimulus.script import Experiment

experiment = Experiment(stimulus="blank", dynamic=dict(bg_lum=0.5, sweep_sec=600.0),
                        preexp_sec=0.0, postexp_sec=0.0)
