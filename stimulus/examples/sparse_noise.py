"""Sparse noise: every cell of an 8 x 8 grid, bright and dark, 100 ms each, shuffled."""

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
    runs=Runs(5, reshuffle=True),
)
