"""Demo sparse noise, quick variant (sweepsort demo --quick): 8 x 8 cells over 40 x 40 deg,
bright and dark, 100 ms each, shuffled, 1 run (~14 s)."""

from stimulus.script import Experiment, Runs, Variable

experiment = Experiment(
    stimulus="sparse_noise",
    static=dict(n_cells_x=8, n_cells_y=8),
    dynamic=dict(
        xi=Variable(range(8), dim=0, shuffle=True),
        yi=Variable(range(8), dim=1, shuffle=True),
        spot_lum=Variable([0.0, 1.0], dim=2, shuffle=True),
        width_deg=40.0,
        height_deg=40.0,
        sweep_s=0.1,
    ),
    runs=Runs(1),
    preexp_s=0.3,
    postexp_s=0.3,
)
