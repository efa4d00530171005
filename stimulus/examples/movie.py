"""A natural movie (greyscale .npy stack or folder of PNGs), 2 refreshes per movie frame,
played as 2 s clips. Edit MOVIE to point at your file."""

from pathlib import Path

from stimulus.script import Experiment, Runs, Variable

MOVIE = str(Path(__file__).with_name("movie_demo.npy"))
CLIP_FRAMES = 200  # movie frames per clip (2 s at 200 Hz, 2 refreshes each)

experiment = Experiment(
    stimulus="movie",
    static=dict(path=MOVIE, refreshes_per_frame=2),
    dynamic=dict(
        frame_i=Variable([0, CLIP_FRAMES, 2 * CLIP_FRAMES], dim=0, shuffle=True),
        width_deg=30.0,
        sweep_s=2.0,
    ),
    runs=Runs(3, reshuffle=True),
)
