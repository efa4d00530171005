"""A grey screen for 10 minutes (spontaneous activity)."""

from stimulus.script import Experiment

experiment = Experiment(stimulus="blank", dynamic=dict(bg_lum=0.5, sweep_s=600.0),
                        preexp_s=0.0, postexp_s=0.0)
