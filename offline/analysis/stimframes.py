"""What was on the screen at every refresh, rebuilt from the sweep table and the decoded frames.

Supported stimuli (the stimulus package's own frame functions, so the images are bit-exact):

- ``sparse_noise`` — one image per condition: +1 bright cell, -1 dark cell, 0 background
  (``n_spots = 1``: the condition's ``xi``, ``yi``, ``spot_lum`` vs ``bg_lum``; ``n_spots > 1``:
  :func:`stimulus.stimuli.sparse_noise.pattern` from the session seed and ``pattern_i``);
- ``msequence`` — every sequence position: ``2 * bit - 1`` per cell
  (:func:`stimulus.stimuli.msequence.frame_bits`), position
  ``frame_i + frame_in_sweep // refreshes_per_frame``.

Images are float32 (n_images, n_cells_y, n_cells_x), row 0 = the top of the grid; the last image
is all zeros (no sweep on the screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STA_KINDS = ("sparse_noise", "msequence")


@dataclass
class StimulusMovie:
    """Per refresh: on-screen time and which image was shown.

    onset_s : float64 (n_refresh,) — on-screen start of each refresh (display lag included), s.
    frame_s : float — one refresh, s.
    image_index : int64 (n_refresh,) — row of ``images``.
    images : float32 (n_images, ny, nx) — contrast images (+1 / -1 / 0).
    """

    onset_s: np.ndarray
    frame_s: float
    image_index: np.ndarray
    images: np.ndarray

    def frame_at(self, t_s) -> np.ndarray:
        """Index of the refresh on the screen at each time (-1: none), int64."""
        t = np.asarray(t_s, np.float64)
        r = np.searchsorted(self.onset_s, t, side="right") - 1
        ok = r >= 0
        rr = np.maximum(r, 0)
        nxt = np.append(self.onset_s[1:], self.onset_s[-1] + self.frame_s) if r.size else rr
        ok &= t < np.minimum(nxt[rr], self.onset_s[rr] + 2.5 * self.frame_s)
        return np.where(ok, r, -1)

    def __repr__(self) -> str:
        return (f"<StimulusMovie {self.onset_s.size} refreshes, {self.images.shape[0]} images "
                f"of {self.images.shape[1]}x{self.images.shape[2]}>")


def frame_in_sweep(refresh_sweep, refresh_frame_number=None) -> np.ndarray:
    """Refreshes since the start of the current run of one sweep index, int64 (n_refresh,).

    With frame numbers (a dropped refresh skips a number), counts refresh slots, i.e. the
    position the stimulus program had reached; else counts decoded refreshes.
    """
    codes = np.asarray(refresh_sweep, np.int64)
    n = codes.size
    pos = (np.arange(n, dtype=np.int64) if refresh_frame_number is None
           else np.asarray(refresh_frame_number, np.int64))
    start = np.r_[True, codes[1:] != codes[:-1]] if n else np.zeros(0, bool)
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0)) if n else start
    return pos - pos[first] if n else pos


def _bg(cond: dict, static: dict) -> float:
    return float(cond.get("bg_lum", static.get("bg_lum", 0.5)))


def sparse_noise_images(static: dict, conditions: list[dict], seed: int | None) -> np.ndarray:
    """One image per condition plus a blank: float32 (n_conditions + 1, ny, nx)."""
    nx, ny = int(static.get("n_cells_x", 8)), int(static.get("n_cells_y", 8))
    n_spots = int(static.get("n_spots", 1))
    out = np.zeros((len(conditions) + 1, ny, nx), np.float32)
    for i, c in enumerate(conditions):
        if n_spots == 1:
            sign = np.sign(float(c.get("spot_lum", 1.0)) - _bg(c, static))
            out[i, ny - 1 - int(c.get("yi", 0)), int(c.get("xi", 0))] = sign
        else:
            from stimulus.stimuli.sparse_noise import pattern

            if seed is None:
                raise ValueError("sparse noise with n_spots > 1 needs the session seed")
            out[i] = pattern(seed, int(c.get("pattern_i", 0)), nx, ny, n_spots)
    return out


def msequence_images(static: dict) -> np.ndarray:
    """Every sequence position plus a blank: float32 (L + 1, ny, nx), values +1 / -1."""
    from stimulus.stimuli.msequence import lfsr_sequence

    order = int(static.get("order", 15))
    taps = static.get("taps")
    nx, ny = int(static.get("n_cells_x", 16)), int(static.get("n_cells_y", 16))
    seq = lfsr_sequence(order, None if taps is None else tuple(taps))
    n = seq.size
    lag = n // (nx * ny)
    k = np.arange(nx * ny)
    bits = seq[(np.arange(n)[:, None] + k[None, :] * lag) % n]  # (L, cells), cell = yi*nx+xi
    imgs = np.zeros((n + 1, ny, nx), np.float32)
    imgs[:n] = (2.0 * bits - 1.0).reshape(n, ny, nx)[:, ::-1, :]
    return imgs


def build_movie(kind: str, static: dict, conditions: list[dict], *, seed: int | None,
                refresh_sample, refresh_sweep, sample_rate_hz: float, refresh_hz: float,
                refresh_frame_in_sweep=None, refresh_frame_number=None,
                display_lag_frames: float = 1.0) -> StimulusMovie:
    """Rebuild every refresh of a sparse-noise or m-sequence experiment.

    Parameters
    ----------
    kind : the session's ``stimulus`` ('sparse_noise' or 'msequence').
    static, conditions, seed : from the session file.
    refresh_sample, refresh_sweep : per decoded refresh: TTL sample number and sweep index.
    refresh_frame_in_sweep : per refresh, from the frame plan when known; else derived from
        runs of equal sweep index (and frame numbers when given).
    display_lag_frames : refreshes between the TTL edge and the image on the screen.
    """
    codes = np.asarray(refresh_sweep, np.int64)
    ok = (codes >= 0) & (codes < len(conditions))
    onset = np.asarray(refresh_sample, np.int64) / sample_rate_hz + display_lag_frames / refresh_hz
    if kind == "sparse_noise":
        images = sparse_noise_images(static, conditions, seed)
        index = np.where(ok, codes, len(conditions))
    elif kind == "msequence":
        images = msequence_images(static)
        n = images.shape[0] - 1
        fis = (np.asarray(refresh_frame_in_sweep, np.int64) if refresh_frame_in_sweep is not None
               else frame_in_sweep(codes, refresh_frame_number))
        frame_i = np.array([int(c.get("frame_i", 0)) for c in conditions] or [0], np.int64)
        rpf = int(static.get("refreshes_per_frame", 1))
        pos = frame_i[np.where(ok, codes, 0)] + fis // rpf
        index = np.where(ok, pos % n, n)
    else:
        raise ValueError(f"no frame reconstruction for stimulus {kind!r}; STA supports "
                         f"{', '.join(STA_KINDS)}")
    return StimulusMovie(onset, 1.0 / refresh_hz, index.astype(np.int64), images)
