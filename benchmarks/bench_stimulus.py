"""Per-frame CPU work of the stimulus driver, for every stimulus, at 800x600 offscreen.

    .venv/bin/python benchmarks/bench_stimulus.py [--frames 2000] [--size 800x600]

Per refresh, what the runner does on the CPU besides waiting for the flip:

- lookup : the plan's code/presentation/phase for this refresh, the sweep's condition dict;
- draw   : the stimulus's per-frame uniform updates (and texture uploads where the image
           changes: m-sequence every refresh here, movie every refresh here) + the draw call;
- ttl    : encoding this refresh's protocol word(s) (serial scheme, a word every refresh: the
           worst case) and handing them to the ``file`` backend;
- total  : the three together.

The GPU's work is *not* counted: ``glFinish`` runs outside the timed region (here the "GPU" is
llvmpipe on the CPU, ≈4.5 ms per 800x600 frame, which says nothing about a real GPU). Target:
total well under 1 ms, so a 5 ms refresh at 200 Hz has room to spare.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGLET_HEADLESS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--size", default="800x600")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    from oe_plugin.protocol.spec import ProtocolSettings
    from stimulus.display import Display
    from stimulus.geometry import Geometry
    from stimulus.stimuli import KINDS, RenderContext
    from stimulus.ttl.encoding import FrameEncoder
    from stimulus.ttl.file import FileBackend

    display = Display(w, h)
    ctx = RenderContext(Geometry(36.3, 27.2, w, h, 57.0), 200.0, 2.2, seed=1)
    tmp = Path(tempfile.mkdtemp())
    movie = tmp / "movie.npy"
    np.save(movie, np.random.default_rng(0).integers(0, 256, (64, 256, 256), np.uint8))
    cases = {
        "grating": ({"mask": "circle"}, {"sf_cpd": 0.2, "tf_hz": 2.0, "diameter_deg": 20.0}),
        "bar": ({}, {"speed_dps": 20.0}),
        "sparse_noise": ({"n_cells_x": 16, "n_cells_y": 16, "n_spots": 4}, {"pattern_i": 3}),
        "msequence": ({"order": 15, "n_cells_x": 32, "n_cells_y": 32}, {}),
        "movie": ({"path": str(movie)}, {"width_deg": 30.0}),
        "blank": ({}, {}),
    }
    settings = ProtocolSettings(word_every_frames=1)
    n = args.frames
    plan_code = np.arange(n, dtype=np.int32) % 50
    plan_pres = np.arange(n, dtype=np.int32) // 200
    conditions = [{"x": i} for i in range(50)]
    print(f"per-frame CPU work, {w}x{h} offscreen, {n} frames, µs (median / p99)")
    print(f"{'stimulus':<14}{'lookup':>16}{'draw':>16}{'ttl':>16}{'total':>16}")
    for kind, (static, params) in cases.items():
        stim = KINDS[kind](ctx, static)
        p = {**type(stim).defaults(), **params}
        stim.begin_sweep(p, n)
        backend = FileBackend(settings, tmp / f"{kind}.tsv")
        backend.open()
        enc = FrameEncoder(settings)
        t_look = np.empty(n)
        t_draw = np.empty(n)
        t_ttl = np.empty(n)
        for f in range(-50, n):  # 50 warm-up frames
            k = max(f, 0)
            display.clear(0.5)
            t0 = time.perf_counter()
            code = int(plan_code[k])
            pres = int(plan_pres[k])
            cond = conditions[code]
            t1 = time.perf_counter()
            stim.draw(k % 64)
            t2 = time.perf_counter()
            backend.send(enc.frame(code if pres >= 0 and cond else 65535, k + 1000), k / 200.0)
            t3 = time.perf_counter()
            display.finish()  # the GPU's part, not timed
            if f >= 0:
                t_look[f], t_draw[f], t_ttl[f] = t1 - t0, t2 - t1, t3 - t2
        backend.close()
        stim.close()
        tot = t_look + t_draw + t_ttl

        def fmt(a):
            return f"{np.median(a) * 1e6:7.1f} /{np.percentile(a, 99) * 1e6:7.1f}"

        print(f"{kind:<14}{fmt(t_look):>16}{fmt(t_draw):>16}{fmt(t_ttl):>16}{fmt(tot):>16}")
    display.close()
    runner_loop(n)


def runner_loop(n: int) -> None:
    """The whole runner loop (plan lookup, timer, encoder, frame log, progress) around a
    no-op display and stimulus, with the virtual TTL backend: the driver's own overhead."""
    from stimulus.rig import RigSettings
    from stimulus.runner import Runner, prepare
    from stimulus.script import Experiment, LoadedScript, Variable
    from stimulus.timing import FakeClock
    from stimulus.ttl.virtual import VirtualBackend

    class NoDisplay:
        window = None

        def clear(self, lum):
            pass

        def photodiode(self, on):
            pass

        def flip(self):
            pass

        def dispatch_events(self):
            pass

    class NoStim:
        def begin_sweep(self, params, n_frames):
            pass

        def draw(self, frame):
            pass

    exp = Experiment(stimulus="blank", dynamic={"bg_lum": Variable([0.4, 0.6], dim=0),
                                                "sweep_s": 0.05},
                     preexp_s=0.0, postexp_s=0.0)
    exp.runs = type(exp.runs)(max(1, n // 20))
    p = prepare(LoadedScript("bench.py", "", exp), RigSettings(), seed=0)
    r = Runner(p, NoDisplay(), VirtualBackend(p.protocol), FakeClock(0.005), stimulus=NoStim())
    t0 = time.perf_counter()
    res = r.run()
    dt = time.perf_counter() - t0
    k = res.log["code"].size
    print(f"runner loop without drawing (virtual TTL, a sweep change every 10 refreshes): "
          f"{dt / k * 1e6:.1f} µs per refresh over {k} refreshes")


if __name__ == "__main__":
    main()
