"""Screen geometry, gamma fitting, the rig config and the manual bar/grating."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oe_plugin.config import SettingsError
from stimulus.cli import main
from stimulus.gamma import correct, fit_gamma, read_luminance_csv
from stimulus.geometry import Geometry
from stimulus.manual import ManualController, run_manual, saved
from stimulus.rig import load_rig, update_section
from stimulus.stimuli.base import RenderContext

G = Geometry(40.0, 30.0, 800, 600, 50.0)


def test_geometry_is_exact_for_a_flat_screen():
    # 20 px/cm both ways; 10 deg right of centre is 50 * tan(10 deg) cm
    assert G.px_per_cm == 20.0
    x, y = G.pos_to_px(10.0, -5.0)
    assert x == pytest.approx(50 * math.tan(math.radians(10)) * 20)
    assert y == pytest.approx(-50 * math.tan(math.radians(5)) * 20)
    assert G.px_to_pos(x, y) == pytest.approx((10.0, -5.0))
    # an extent centred on the line of sight: 2 d tan(size / 2)
    assert G.size_to_px(30.0) == pytest.approx(2 * 50 * math.tan(math.radians(15)) * 20)
    # the small-angle formula the seed used is 2.4 % short at 30 deg
    small = 50 * math.radians(30) * 20
    assert G.size_to_px(30.0) / small == pytest.approx(1.0236, abs=1e-3)
    # the local scale grows off-axis as 1 / cos^2
    assert G.px_per_deg_at(30.0) / G.px_per_deg_at(0.0) == pytest.approx(4 / 3)
    w, h = G.screen_deg()
    assert w == pytest.approx(2 * math.degrees(math.atan(20 / 50)))
    assert G.nyquist_cpd() == pytest.approx(0.5 * 50 * 20 * math.pi / 180)


def test_gamma_fit_recovers_the_power_law(tmp_path):
    rng = np.random.default_rng(0)
    v = np.linspace(0, 1, 17)
    lum = 0.4 + 95.0 * v ** 2.35 + rng.normal(0, 0.05, v.size)
    fit = fit_gamma(v, lum)
    assert fit.gamma == pytest.approx(2.35, abs=0.01)
    assert fit.lum_min == pytest.approx(0.4, abs=0.1) and fit.lum_max == pytest.approx(95.4,
                                                                                      abs=0.2)
    # corrected drive values give luminance linear in the requested value
    req = np.linspace(0, 1, 11)
    out = fit.lum_min + (fit.lum_max - fit.lum_min) * correct(req, fit.gamma) ** fit.gamma
    assert np.allclose(out, fit.lum_min + (fit.lum_max - fit.lum_min) * req)
    # CSV with a header and 0..255 levels
    csv = tmp_path / "lum.csv"
    csv.write_text("level,cd_m2\n" + "".join(f"{int(x * 255)},{y:.4f}\n"
                                               for x, y in zip(v, lum, strict=True)))
    vv, ll = read_luminance_csv(csv)
    assert vv.max() == pytest.approx(1.0) and ll.size == 17
    with pytest.raises(ValueError):
        fit_gamma([0, 1], [1, 2])


def test_gamma_fit_command_writes_the_config_keeping_comments(tmp_path, capsys):
    cfg = tmp_path / "rig.toml"
    cfg.write_text("# my rig\n[screen]\ndistance_cm = 60.0  # measured 2026-01\ngamma = 1.0\n"
                   "\n[timing]\nphotodiode = false\n")
    v = np.linspace(0, 1, 9)
    (tmp_path / "lum.csv").write_text("".join(f"{a},{1 + 80 * a ** 2.1}\n" for a in v))
    assert main(["gamma-fit", str(tmp_path / "lum.csv"), "--config", str(cfg)]) == 0
    assert "gamma 2.100" in capsys.readouterr().out
    text = cfg.read_text()
    assert "# my rig" in text and "# measured 2026-01" in text
    rig = load_rig(cfg)
    assert rig.screen.gamma == pytest.approx(2.1, abs=1e-3)
    assert rig.screen.distance_cm == 60.0 and rig.timing.photodiode is False


def test_rig_config_errors_name_the_key(tmp_path):
    cfg = tmp_path / "rig.toml"
    cfg.write_text("[screen]\ndistnce_cm = 57\n")
    with pytest.raises(SettingsError, match=r"screen\.distnce_cm: unknown key \(did you mean "
                                            r"'distance_cm'"):
        load_rig(cfg)
    cfg.write_text("[screens]\n")
    with pytest.raises(SettingsError, match="did you mean 'screen'"):
        load_rig(cfg)
    cfg.write_text("[screen]\nrefresh_hz = 5000\n")
    with pytest.raises(SettingsError, match=r"screen\.refresh_hz"):
        load_rig(cfg)
    cfg.write_text("[protocol]\nframe_line = 0\n")  # the sync line
    with pytest.raises(SettingsError, match=r"protocol\.frame_line: line 0 is the sync line"):
        load_rig(cfg)
    cfg.write_text("[screen]\nrefresh_hz = 144.0\n[protocol]\nscheme = \"serial\"\n")
    assert load_rig(cfg).protocol.refresh_hz == 144.0  # the protocol follows the screen


def test_update_section_adds_and_replaces(tmp_path):
    cfg = tmp_path / "x.toml"
    update_section(cfg, "manual_bar", {"x_deg": 1.5, "ori_deg": 30.0})
    update_section(cfg, "manual_bar", {"x_deg": -2.0, "width_deg": 0.5})
    update_section(cfg, "screen", {"gamma": 2.2})
    rig = load_rig(cfg)
    assert rig.manual_bar == {"x_deg": -2.0, "ori_deg": 30.0, "width_deg": 0.5}
    assert rig.screen.gamma == 2.2


def bg_of(ctrl):
    return ctrl.state["bg_lum"]


def test_manual_controller_keys_mouse_and_save(tmp_path):
    ctx = RenderContext(G, 200.0)
    cfg = tmp_path / "rig.toml"
    bar = ManualController("bar", ctx, {"length_deg": 4.0}, save_to=cfg)
    bar.move_to_px(400 + 200, 300 - 100)  # right of and below the centre
    assert bar.state["x_deg"] == pytest.approx(math.degrees(math.atan(10 / 50)))
    assert bar.state["y_deg"] == pytest.approx(-math.degrees(math.atan(5 / 50)))
    bar.press("up")
    bar.update(1.0)
    bar.release("up")
    assert bar.state["length_deg"] == pytest.approx(6.0)
    bar.press("mouse_left")
    bar.update(0.5)
    bar.release("mouse_left")
    assert bar.state["ori_deg"] == pytest.approx(45.0)
    bar.scroll(+1)
    assert bar.state["ori_deg"] == 60.0
    bar.press("i")
    assert (bar.state["bar_lum"], bar.state["bg_lum"]) == (0.0, 1.0)
    bar.press("space")  # flashing at flash_hz: on for the first half of each period
    bar.update(0.25)
    assert bar.params()["bar_lum"] == 0.0 and "flashing 1.00 Hz" in bar.readout()
    bar.update(0.5)
    assert bar.params()["bar_lum"] == bg_of(bar)
    bar.press("space")
    assert bar.params()["bar_lum"] == 0.0 and "flash_hz" not in bar.params()
    bar.press("enter")
    assert "saved" in bar.message
    assert saved("bar", cfg)["ori_deg"] == 60.0
    assert saved("bar", cfg)["length_deg"] == pytest.approx(6.0)

    grating = ManualController("grating", ctx, save_to=cfg)
    grating.press("right")
    grating.update(2.0)
    assert grating.state["tf_hz"] == pytest.approx(2.0 * 1.5 ** 2)
    grating.release("right")
    phase0 = grating.phase_rad
    grating.update(0.01)
    assert grating.phase_rad - phase0 == pytest.approx(2 * math.pi * 4.5 * 0.01)
    grating.press("0")
    grating.press("escape")
    assert grating.quit and grating.state["x_deg"] == 0.0
    assert "sf 0.200" in grating.readout()


def test_manual_runs_offscreen(tmp_path):
    cfg = tmp_path / "rig.toml"
    cfg.write_text("[screen]\nwidth_px = 120\nheight_px = 90\nfullscreen = false\n"
                   "[manual_bar]\nx_deg = 2.0\n")
    for kind in ("bar", "grating"):
        assert run_manual(kind, load_rig(cfg), cfg, window=True, offscreen=True,
                          max_frames=3) == 0


def test_rig_config_with_the_old_measure_sec_still_reads(tmp_path):
    """``[timing] measure_sec`` (the name before seconds were ``_s`` everywhere) reads as
    ``measure_s``; both at once is an error naming the key."""
    from oe_plugin.config import SettingsError

    old = tmp_path / "old.toml"
    old.write_text("[timing]\nmeasure_sec = 2.5\n")
    assert load_rig(old).timing.measure_s == 2.5
    both = tmp_path / "both.toml"
    both.write_text("[timing]\nmeasure_sec = 2.5\nmeasure_s = 2.0\n")
    with pytest.raises(SettingsError, match=r"timing\.measure_sec"):
        load_rig(both)
