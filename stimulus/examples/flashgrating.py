"""Flashed static gratings (reverse correlation): 18 orientations x 6 spatial frequencies x
4 phases, one 25 ms flash each, fully shuffled."""

import math

from stimulus.script import Experiment, Runs, Variable

experiment = Experiment(
    stimulus="grating",
    static=dict(mask="gaussian", wave="sine"),
    dynamic=dict(
        ori_deg=Variable(range(0, 180, 10), dim=0, shuffle=True),
        sf_cpd=Variable([0.2, 0.4, 0.6, 1.0, 2.0, 4.0], dim=1, shuffle=True),
        phase0_rad=Variable([0, math.pi / 2, math.pi, 3 * math.pi / 2], dim=2, shuffle=True),
        tf_hz=0.0,
        sigma_deg=4.0,
        sweep_s=0.025,
    ),
    runs=Runs(10, reshuffle=True),
    preexp_s=1.0,
    postexp_s=1.0,
)
