"""Demo drifting gratings (sweepsort demo): 12 directions x 3 spatial frequencies, 2 Hz drift,
1 s sweeps, shuffled, 3 runs, a 1 s blank every 10th sweep (~2 min)."""

from stimulus.script import Blanks, Experiment, Runs, Variable

experiment = Experiment(
    stimulus="grating",
    static=dict(mask="circle", wave="sine"),
    dynamic=dict(
        ori_deg=Variable(range(0, 360, 30), dim=0, shuffle=True),
        sf_cpd=Variable([0.04, 0.08, 0.16], dim=1, shuffle=True),
        tf_hz=2.0,
        diameter_deg=40.0,
        contrast=1.0,
        sweep_s=1.0,
    ),
    runs=Runs(3, reshuffle=True),
    blanks=Blanks(every=10, duration_s=1.0),
    preexp_s=1.0,
    postexp_s=0.5,
)
