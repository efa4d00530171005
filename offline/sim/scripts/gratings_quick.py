"""Demo drifting gratings, quick variant (sweepsort demo --quick): 12 directions x 2 spatial
frequencies, 2 Hz drift, 0.75 s sweeps, shuffled, 2 runs, a blank every 12th sweep (~40 s)."""

from stimulus.script import Blanks, Experiment, Runs, Variable

experiment = Experiment(
    stimulus="grating",
    static=dict(mask="circle", wave="sine"),
    dynamic=dict(
        ori_deg=Variable(range(0, 360, 30), dim=0, shuffle=True),
        sf_cpd=Variable([0.05, 0.1], dim=1, shuffle=True),
        tf_hz=2.0,
        diameter_deg=40.0,
        contrast=1.0,
        sweep_s=0.75,
    ),
    runs=Runs(2, reshuffle=True),
    blanks=Blanks(every=12, duration_s=0.75),
    preexp_s=0.5,
    postexp_s=0.5,
)
