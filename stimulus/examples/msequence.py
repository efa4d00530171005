"""M-sequence noise: a 16 x 16 grid following an order-15 m-sequence (32767 elements), one
element per 2 refreshes, as one long sweep."""

from stimulus.script import Experiment

ORDER = 15
REFRESHES = 2

experiment = Experiment(
    stimulus="msequence",
    static=dict(order=ORDER, n_cells_x=16, n_cells_y=16, refreshes_per_frame=REFRESHES),
    dynamic=dict(
        frame_i=0,
        width_deg=32.0,
        height_deg=32.0,
        sweep_s=(2**ORDER - 1) * REFRESHES / 200.0,
    ),
    preexp_s=1.0,
    postexp_s=1.0,
)
