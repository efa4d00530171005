"""Natural movies: greyscale frames from a .npy stack or a folder of PNG images.

``path`` (static) is either a ``.npy`` file holding a (n_frames, height, width) stack (uint8
levels 0..255, or floats in 0..1; memory-mapped, so long movies need not fit in RAM) or a
folder of ``.png`` images, read in file-name order and converted to grey (mean of R, G, B).
Frame ``t = frame_i + frame_in_sweep // refreshes_per_frame`` is shown scaled to
``width_deg`` × ``height_deg`` (``height_deg = 0`` keeps the movie's aspect ratio). Row 0 of
each frame is the top of the image.

``gamma_correct = false`` (default, like the seed) sends pixel values to the monitor as they
are: most movies are already gamma-encoded. ``true`` treats them as linear luminance and
corrects them like every other stimulus. ``invert`` shows 255 - value.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stimulus.params import Param, frames
from stimulus.stimuli.base import RenderContext, Stimulus
from stimulus.stimuli.texrect import TexturedRect


def load_frames(path: str | Path) -> np.ndarray:
    """The movie as an array (n_frames, height, width): uint8, or float32 in 0..1.

    Raises ValueError when the file or folder does not hold greyscale frames.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise ValueError(f"{path}: no .png images in the folder")
        return np.stack([_read_png(f) for f in files])
    if path.suffix.lower() != ".npy":
        raise ValueError(f"{path}: a movie is a .npy stack or a folder of .png images")
    try:
        stack = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    if stack.ndim != 3 or min(stack.shape) < 1:
        raise ValueError(f"{path}: want shape (n_frames, height, width), got {stack.shape}")
    if stack.dtype == np.uint8:
        return stack
    if stack.dtype.kind == "f":
        return stack  # converted frame by frame in frame()
    raise ValueError(f"{path}: frames must be uint8 or float, got {stack.dtype}")


def _read_png(path: Path) -> np.ndarray:
    import pyglet

    img = pyglet.image.load(str(path))
    raw = img.get_image_data().get_data("RGBA", img.width * 4)
    a = np.frombuffer(raw, np.uint8).reshape(img.height, img.width, 4)
    grey = np.round(a[..., :3].astype(np.float32).mean(axis=2)).astype(np.uint8)
    return np.flipud(grey)  # pyglet rows are bottom-up


class Movie(Stimulus):
    KIND = "movie"
    STATIC = {
        "path": Param(str, None, "a .npy stack (n, h, w) or a folder of .png images",
                      static_only=True),
        "refreshes_per_frame": Param(int, 1, "refreshes per movie frame", 1, 10000,
                                     static_only=True),
        "gamma_correct": Param(bool, False, "treat pixel values as linear luminance",
                               static_only=True),
        "smooth": Param(bool, False, "bilinear scaling (default: nearest pixel)",
                        static_only=True),
    }
    DYNAMIC = {
        "frame_i": Param(int, 0, "movie frame at the sweep's first refresh", 0, 2**31 - 1),
        "width_deg": Param(float, 20.0, "displayed width, deg", 0.0, 180.0),
        "height_deg": Param(float, 0.0, "displayed height, deg (0: keep the aspect ratio)",
                            0.0, 180.0),
        "ori_deg": Param(float, 0.0, "rotation, deg ccw", -360, 720),
        "invert": Param(bool, False, "show 255 - value", ),
    }

    def __init__(self, ctx: RenderContext, static: dict):
        super().__init__(ctx, static)
        s = self.static
        self.frames = load_frames(s["path"])
        shape = self.frames.shape[1:]
        self.rect = TexturedRect(ctx, shape, dtype=np.uint8, linear=s["smooth"],
                                 raw=not s["gamma_correct"])
        self._t = None

    @classmethod
    def check(cls, static, values, ctx):
        if not static.get("path"):
            return [("path", "a movie needs a path (.npy stack or folder of .png images)")]
        try:
            stack = load_frames(static["path"])
        except ValueError as exc:
            return [("path", str(exc))]
        n = stack.shape[0]
        rpf = static.get("refreshes_per_frame", 1)
        last = max(values.get("frame_i", [0]))
        need = max(frames(s, ctx.refresh_hz) for s in values.get("sweep_s", [1.0]))
        last_shown = last + max(need - 1, 0) // rpf
        if last_shown >= n:
            return [("frame_i", f"the sweeps reach movie frame {last_shown} but the movie has "
                                f"{n} frames (0..{n - 1})")]
        return []

    def frame(self, t: int) -> np.ndarray:
        """Movie frame ``t`` as uint8 (height, width), inverted if asked."""
        f = np.asarray(self.frames[t])
        if f.dtype != np.uint8:
            f = np.round(np.clip(f, 0, 1) * 255).astype(np.uint8)
        return 255 - f if self.params.get("invert") else f

    def begin_sweep(self, params: dict, n_frames: int) -> None:
        super().begin_sweep(params, n_frames)
        p = self.params
        h, w = self.frames.shape[1:]
        height = p["height_deg"] or _keep_aspect(p["width_deg"], w, h)
        self.rect.place(p["x_deg"], p["y_deg"], p["width_deg"], height, p["ori_deg"],
                        p["bg_lum"])
        self._t = None

    def draw(self, frame_in_sweep: int) -> None:
        t = self.params["frame_i"] + frame_in_sweep // self.static["refreshes_per_frame"]
        if t != self._t:
            self.rect.upload(self.frame(t))
            self._t = t
        self.rect.draw()

    def close(self) -> None:
        self.rect.close()


def _keep_aspect(width_deg: float, w: int, h: int) -> float:
    half = math.radians(width_deg / 2)
    return 2 * math.degrees(math.atan(math.tan(half) * h / w))
