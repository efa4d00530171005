"""Rendered frames checked by their pixels (headless EGL, 8 bits per channel)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import least_squares

from stimulus.display import Display
from stimulus.geometry import Geometry
from stimulus.stimuli import KINDS, RenderContext
from stimulus.stimuli.msequence import frame_bits, lfsr_sequence
from stimulus.stimuli.sparse_noise import pattern

W, H = 256, 192


@pytest.fixture(scope="module")
def display():
    d = Display(W, H, photodiode_px=16, photodiode_corner="bottom-right")
    yield d
    d.close()


@pytest.fixture(scope="module")
def geom():
    return Geometry(36.3, 27.2, W, H, 57.0)


def ctx_for(geom, gamma=1.0, seed=0):
    return RenderContext(geom, 200.0, gamma, seed)


def render(display, stim, params, frame=0, n_frames=100, bg=None):
    p = {**type(stim).defaults(), **params}
    stim.begin_sweep(p, n_frames)
    display.clear(p["bg_lum"] if bg is None else bg)
    stim.draw(frame)
    return display.read_pixels().astype(np.float64)


def fit_grating(img, center, contrast=1.0, mean=0.5):
    """Fit w = sin(2π (fx dx + fy dy) - φ) to an unmasked grating image (rows bottom-up)."""
    w = (img / 255.0 / mean - 1.0) / contrast
    F = np.fft.rfft2(w)
    F[0, 0] = 0
    ky, kx = np.unravel_index(np.argmax(np.abs(F)), F.shape)
    fy0 = (ky if ky <= H // 2 else ky - H) / H
    fx0 = kx / W
    yy, xx = np.mgrid[0:H:2, 0:W:2]  # every other pixel is plenty
    w = w[::2, ::2]
    dx = xx + 0.5 - center[0]
    dy = yy + 0.5 - center[1]
    theta = 2 * np.pi * (fx0 * dx + fy0 * dy)
    a, b = np.linalg.lstsq(np.column_stack([np.sin(theta).ravel(), np.cos(theta).ravel()]),
                           w.ravel(), rcond=None)[0]
    phi0 = math.atan2(-b, a)

    def resid(p):
        fx, fy, phi = p
        return (np.sin(2 * np.pi * (fx * dx + fy * dy) - phi) - w).ravel()

    best = least_squares(resid, [fx0, fy0, phi0], x_scale=[1e-3, 1e-3, 0.1])
    fx, fy, phi = best.x
    if fx < 0 or (fx == 0 and fy < 0):  # the same wave written with (-f, φ -> -φ + π)
        fx, fy, phi = -fx, -fy, -phi + np.pi
    return math.atan2(fy, fx), math.hypot(fx, fy), phi % (2 * np.pi), best


def test_grating_orientation_sf_phase_recovered(display, geom):
    ctx = ctx_for(geom)
    stim = KINDS["grating"](ctx, {"mask": "none"})
    ppd = geom.px_per_deg_at(0)
    for ori, period_px, phase in [(30.0, 23.0, 1.0), (-60.0, 31.0, 4.0), (90.0, 17.0, 0.3)]:
        sf = ppd / period_px
        img = render(display, stim, {"ori_deg": ori, "sf_cpd": sf, "phase0_rad": phase,
                                     "tf_hz": 0.0, "contrast": 0.9, "mean_lum": 0.5})
        ori_fit, f_cpp, phi, res = fit_grating(img, ctx.center_px, contrast=0.9)
        # the drift direction ori is defined modulo 360; the fitted wave vector modulo 180
        d_ori = (math.degrees(ori_fit) - ori + 90) % 180 - 90
        assert abs(d_ori) < 1.0, (ori, math.degrees(ori_fit))
        assert abs(f_cpp * ppd / sf - 1) < 0.01
        same_dir = abs((math.degrees(ori_fit) - ori + 180) % 360 - 180) < 90
        expect = phase if same_dir else (-phase + np.pi)
        d_phi = (phi - expect + np.pi) % (2 * np.pi) - np.pi
        assert abs(d_phi) < 0.05, (phase, phi)
        # and the image is that sinusoid to within 8-bit rounding
        assert np.sqrt(np.mean(res.fun ** 2)) < 2.5 / 255 / 0.5 / 0.9
    stim.close()


def test_grating_drift_advances_phase_per_frame(display, geom):
    ctx = ctx_for(geom)
    stim = KINDS["grating"](ctx, {"mask": "none"})
    sf = geom.px_per_deg_at(0) / 29.0
    tf = 7.0
    phases = []
    for n in range(4):
        img = render(display, stim, {"ori_deg": 0.0, "sf_cpd": sf, "tf_hz": tf}, frame=n)
        phases.append(fit_grating(img, ctx.center_px)[2])
    steps = np.diff(np.unwrap(phases))
    assert np.allclose(steps, 2 * np.pi * tf / 200.0, atol=0.01)
    stim.close()


def test_square_wave_and_circle_mask(display, geom):
    ctx = ctx_for(geom)
    stim = KINDS["grating"](ctx, {"mask": "circle", "wave": "square"})
    img = render(display, stim, {"sf_cpd": 0.5, "diameter_deg": 10.0, "contrast": 1.0,
                                 "bg_lum": 0.25})
    cx, cy = ctx.center_px
    r_px = geom.size_to_px(10.0) / 2
    yy, xx = np.mgrid[0:H, 0:W]
    dist = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy)
    inside = img[dist < r_px - 1.5]
    outside = img[dist > r_px + 1.5]
    assert set(np.unique(inside)) <= {0.0, 255.0}  # square wave: black and white only
    assert np.all(outside == round(0.25 * 255))
    stim.close()


def test_bar_position_orientation_and_motion(display, geom):
    ctx = ctx_for(geom)
    stim = KINDS["bar"](ctx, {})
    params = {"x_deg": 3.0, "y_deg": -2.0, "ori_deg": 30.0, "length_deg": 8.0,
              "width_deg": 1.0, "bar_lum": 1.0, "bg_lum": 0.0, "speed_dps": 0.0}
    img = render(display, stim, params)
    wgt = img / 255.0
    yy, xx = np.mgrid[0:H, 0:W]
    cx = (wgt * (xx + 0.5)).sum() / wgt.sum()
    cy = (wgt * (yy + 0.5)).sum() / wgt.sum()
    ex, ey = ctx.pos_px(3.0, -2.0)
    assert abs(cx - ex) < 0.2 and abs(cy - ey) < 0.2
    cov = np.cov(np.vstack([(xx + 0.5 - cx).ravel(), (yy + 0.5 - cy).ravel()]),
                 aweights=wgt.ravel())
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, 1]
    ori = math.degrees(math.atan2(major[1], major[0])) % 180
    assert abs(ori - 30.0) < 1.0
    length_px = math.sqrt(12 * evals[1])  # uniform bar: variance = L^2 / 12
    assert abs(length_px / (geom.size_to_px(8.0, math.hypot(3, 2))) - 1) < 0.02

    # moving: the centre steps speed/R degrees per refresh towards ori + 90
    moving = {**params, "x_deg": 0.0, "y_deg": 0.0, "speed_dps": 40.0}
    centres = []
    for n in (0, 10):
        img = render(display, stim, moving, frame=n, n_frames=21) / 255.0
        centres.append(((img * (xx + 0.5)).sum() / img.sum(), (img * (yy + 0.5)).sum() / img.sum()))
    step = np.subtract(centres[1], centres[0])
    expect_px = 40.0 * 10 / 200.0 * geom.px_per_deg_at(0)
    direction = math.radians(120.0)
    assert np.allclose(step, [expect_px * math.cos(direction), expect_px * math.sin(direction)],
                       atol=0.3)
    # the sweep is centred: the middle refresh has the bar at (x_deg, y_deg)
    img = render(display, stim, moving, frame=10, n_frames=21) / 255.0
    mid = ((img * (xx + 0.5)).sum() / img.sum(), (img * (yy + 0.5)).sum() / img.sum())
    assert np.allclose(mid, ctx.center_px, atol=0.2)
    stim.close()


def cell_centres(ctx, geom, nx, ny, width_deg, height_deg):
    """Window pixel of each cell centre, indexed [yi, xi] (yi from the bottom)."""
    w = geom.size_to_px(width_deg)
    h = geom.size_to_px(height_deg)
    cx, cy = ctx.center_px
    out = np.zeros((ny, nx, 2), int)
    for yi in range(ny):
        for xi in range(nx):
            out[yi, xi] = (int(cx - w / 2 + (xi + 0.5) * w / nx),
                           int(cy - h / 2 + (yi + 0.5) * h / ny))
    return out


def test_sparse_noise_single_cell_where_the_table_says(display, geom):
    ctx = ctx_for(geom)
    stim = KINDS["sparse_noise"](ctx, {"n_cells_x": 4, "n_cells_y": 3})
    centres = cell_centres(ctx, geom, 4, 3, 20.0, 15.0)
    for xi, yi, lum in [(1, 2, 1.0), (3, 0, 0.0), (0, 1, 1.0)]:
        img = render(display, stim, {"xi": xi, "yi": yi, "spot_lum": lum, "width_deg": 20.0,
                                     "height_deg": 15.0, "bg_lum": 0.5})
        for y in range(3):
            for x in range(4):
                px, py = centres[y, x]
                want = lum if (x, y) == (xi, yi) else 0.5
                assert img[py, px] == round(want * 255), (x, y)
    stim.close()


def test_sparse_noise_multi_spot_patterns_from_seed(display, geom):
    ctx = ctx_for(geom, seed=1234)
    stim = KINDS["sparse_noise"](ctx, {"n_cells_x": 5, "n_cells_y": 4, "n_spots": 3})
    centres = cell_centres(ctx, geom, 5, 4, 25.0, 20.0)
    for k in (0, 7):
        pat = pattern(1234, k, 5, 4, 3)  # rows top-down
        assert np.count_nonzero(pat) == 3
        img = render(display, stim, {"pattern_i": k, "width_deg": 25.0, "height_deg": 20.0,
                                     "spot_lum": 1.0, "dark_lum": 0.0, "bg_lum": 0.5})
        seen = np.array([[img[centres[y, x][1], centres[y, x][0]] for x in range(5)]
                         for y in range(4)])
        want = np.flipud(np.where(pat > 0, 255, np.where(pat < 0, 0, 128)))
        assert np.array_equal(seen, want)
    assert not np.array_equal(pattern(1234, 0, 5, 4, 3), pattern(1235, 0, 5, 4, 3))
    stim.close()


@pytest.mark.parametrize("order", range(2, 17))
def test_lfsr_sequences_are_maximal(order):
    seq = lfsr_sequence(order)
    n = 2 ** order - 1
    assert seq.size == n
    assert seq.sum() == 2 ** (order - 1)  # an m-sequence has one more 1 than 0s
    # two-level autocorrelation: every non-zero shift agrees in exactly (n - 1) / 2 places
    s = 2.0 * seq - 1
    for shift in (1, 2, n // 3):
        assert np.dot(s, np.roll(s, shift)) == -1


def test_lfsr_bad_taps_refused():
    with pytest.raises(ValueError, match="maximal"):
        lfsr_sequence(4, (4, 2))


def test_msequence_frames_equal_the_lfsr_sequence(display, geom):
    ctx = ctx_for(geom)
    stim = KINDS["msequence"](ctx, {"order": 6, "n_cells_x": 3, "n_cells_y": 2,
                                    "refreshes_per_frame": 2})
    seq = lfsr_sequence(6)
    centres = cell_centres(ctx, geom, 3, 2, 18.0, 12.0)
    params = {"frame_i": 5, "width_deg": 18.0, "height_deg": 12.0, "bright_lum": 1.0,
              "dark_lum": 0.0}
    lag = 63 // 6
    for n in range(0, 8):
        img = render(display, stim, params, frame=n)
        t = 5 + n // 2
        for yi in range(2):
            for xi in range(3):
                k = yi * 3 + xi
                px, py = centres[yi, xi]
                assert img[py, px] == 255 * seq[(t + k * lag) % 63], (n, xi, yi)
        assert np.array_equal(frame_bits(6, None, 3, 2, t)[::-1].ravel(),
                              seq[(t + np.arange(6) * lag) % 63])
    stim.close()


def test_movie_frames_shown_raw_and_inverted(display, geom, tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, size=(4, 3, 5), dtype=np.uint8)
    path = tmp_path / "m.npy"
    np.save(path, stack)
    ctx = ctx_for(geom, gamma=2.2)  # raw: no gamma correction applied to movie pixels
    stim = KINDS["movie"](ctx, {"path": str(path), "refreshes_per_frame": 3})
    centres = cell_centres(ctx, geom, 5, 3, 25.0, 15.0)
    params = {"frame_i": 1, "width_deg": 25.0, "height_deg": 15.0}
    for n, invert in ((0, False), (3, False), (4, True)):
        img = render(display, stim, {**params, "invert": invert}, frame=n)
        frame = stack[1 + n // 3]
        frame = 255 - frame if invert else frame
        seen = np.array([[img[centres[y, x][1], centres[y, x][0]] for x in range(5)]
                         for y in range(3)])
        assert np.array_equal(seen, np.flipud(frame))
    stim.close()


def test_movie_png_folder(tmp_path):
    import pyglet

    from stimulus.stimuli.movie import load_frames

    for i in range(2):
        rgba = np.zeros((2, 3, 4), np.uint8)
        rgba[..., :3] = 40 * (i + 1)
        rgba[0, 0, :3] = 250  # top-left pixel of the picture (row 0 = top in our frames)
        rgba[..., 3] = 255
        img = pyglet.image.ImageData(3, 2, "RGBA", np.flipud(rgba).tobytes())
        img.save(str(tmp_path / f"f{i:03d}.png"))
    frames = load_frames(tmp_path)
    assert frames.shape == (2, 2, 3)
    assert frames[1, 1, 1] == 80 and frames[0, 0, 0] == 250


def test_gamma_correction_follows_inverse_power_law(display, geom):
    gamma = 2.2
    ctx = ctx_for(geom, gamma=gamma)
    d2 = display
    old = d2.gamma
    d2.gamma = gamma
    try:
        for lum in (0.0, 0.1, 0.25, 0.5, 0.8, 1.0):
            d2.clear(lum)
            assert d2.read_pixels(10, 10, 1, 1)[0, 0] == round(255 * lum ** (1 / gamma))
        # the shader path: a grating's drive values are (lum) ** (1/gamma) pixel by pixel
        stim = KINDS["grating"](ctx, {"mask": "none"})
        p = {**stim.defaults(), "sf_cpd": geom.px_per_deg_at(0) / 40.0, "contrast": 0.8,
             "tf_hz": 0.0}
        stim.begin_sweep(p, 10)
        stim.draw(0)
        img = d2.read_pixels().astype(float)
        yy, xx = np.mgrid[0:H, 0:W]
        lum = 0.5 * (1 + 0.8 * np.sin(2 * np.pi * stim.sf_cpp * (xx + 0.5 - W / 2)))
        want = 255 * lum ** (1 / gamma)
        assert np.max(np.abs(img - want)) <= 1.0
        stim.close()
    finally:
        d2.gamma = old


def test_photodiode_patch_alternates(display):
    x, y, s = display.photodiode_rect()
    assert (x, y, s) == (W - 16, 0, 16)
    for on in (True, False, True):
        display.clear(0.5)
        display.photodiode(on)
        patch = display.read_pixels(x, y, s, s)
        assert np.all(patch == (255 if on else 0))
        assert display.read_pixels(x - 2, y, 1, 1)[0, 0] == 128
