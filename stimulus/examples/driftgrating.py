"""Drifting gratings: 12 directions x 6 spatial x 4 temporal frequencies, shuffled, 4 runs,
a blank every 10th sweep, 4 s per sweep (the seed lab's headline experiment, ~85 min)."""

from stimulus.script import Blanks, Experiment, Runs, Variable

experiment = Experiment(
    stimulus="grating",
    static=dict(mask="circle", wave="sine"),
    dynamic=dict(
        ori_deg=Variable(range(0, 360, 30), dim=0, shuffle=True),
        sf_cpd=Variable([0.05, 0.1, 0.2, 0.4, 0.8, 1.6], dim=1, shuffle=True),
        tf_hz=Variable([0.5, 1, 2, 5], dim=2, shuffle=True),
        diameter_deg=20.0,
        contrast=1.0,
        mean_lum=0.5,
        bg_lum=0.5,
        sweep_s=4.0,
    ),
    runs=Runs(4, reshuffle=True),
    blanks=Blanks(every=10, duration_s=4.0),
    preexp_s=1.0,
    postexp_s=1.0,
)
