"""Moving bars: 12 directions, bright and dark, 10 runs."""

from stimulus.script import Experiment, Runs, Variable

experiment = Experiment(
    stimulus="bar",
    dynamic=dict(
        ori_deg=Variable(range(0, 360, 30), dim=0, shuffle=True),
        bar_lum=Variable([0.0, 1.0], dim=1, shuffle=True),
        speed_dps=10.0,
        length_deg=10.0,
        width_deg=1.0,
        bg_lum=0.5,
        sweep_s=2.5,
        postsweep_s=0.5,
    ),
    runs=Runs(10, reshuffle=True),
)
