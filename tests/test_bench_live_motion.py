"""The per-window scoring of benchmarks/bench_live_motion.py (issue 16's benchmark), on known
spike trains: windows, per-window well-detected counts, ratios and the target verdict."""

import sys

import numpy as np
import pytest
from paths import ROOT

pytest.importorskip("spikeinterface")
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_live_motion as blm  # noqa: E402

FS = 30000.0


def test_windows_cover_the_online_part_and_keep_a_real_last_window():
    w = blm.windows_of(120.0, 1800.0, 300.0)
    assert w[0] == (120.0, 420.0) and w[-1] == (1620.0, 1800.0) and len(w) == 6
    assert all(a2 == b1 for (_, b1), (a2, _) in zip(w[:-1], w[1:], strict=True))
    # a 10 s stub is merged into the window before it, not scored on its own
    assert blm.windows_of(0.0, 610.0, 300.0) == [(0.0, 300.0), (300.0, 610.0)]
    with pytest.raises(ValueError):
        blm.windows_of(10.0, 10.0, 5.0)


def _trains():
    """3 ground-truth units firing every 100 ms (phases 0, 31, 67 ms) for 30 s."""
    times, units = [], []
    for u, phase in enumerate((0.000, 0.031, 0.067)):
        t = np.round((np.arange(300) * 0.1 + phase + 0.005) * FS).astype(np.int64)
        times.append(t)
        units.append(np.full(len(t), u))
    t, u = np.concatenate(times), np.concatenate(units)
    order = np.argsort(t, kind="stable")
    return t[order], u[order]


def test_per_window_counts_follow_what_the_sorter_lost():
    gt_t, gt_u = _trains()
    label = np.array([7, 5, 6])  # the sorter's own ids for GT units 0, 1, 2
    t, u = gt_t.copy(), label[gt_u]
    w1 = (gt_t >= 10 * FS) & (gt_t < 20 * FS)
    w2 = gt_t >= 20 * FS
    keep = ~(w1 & (gt_u == 1))  # window 2: unit 1 missed entirely
    t = t + np.where(w2 & (gt_u == 2), int(0.002 * FS), 0)  # window 3: unit 2 2 ms late
    half = w2 & (gt_u == 0) & (np.cumsum(gt_u == 0) % 2 == 0)
    keep &= ~half  # window 3: unit 0 keeps half its spikes (accuracy 0.5)
    t, u = t[keep], u[keep]
    order = np.argsort(t, kind="stable")
    t, u = t[order], u[order]
    wins = blm.windows_of(0.0, 30.0, 10.0)
    s = blm.window_scores(gt_t, gt_u, 3, t, u, np.array([5, 6, 7, 9]), wins, FS)
    assert [w["well_detected"] for w in s] == [3, 2, 1]
    assert [w["gt_units"] for w in s] == [3, 3, 3]
    assert [w["gt_spikes"] for w in s] == [300, 300, 300]
    assert s[0]["spikes"] == 300 and s[1]["spikes"] == 200
    assert s[0]["accuracy"] == 1.0
    assert s[2]["unit_accuracy"][1] == 1.0 and s[2]["unit_accuracy"][0] == pytest.approx(0.5,
                                                                                           abs=0.02)
    assert blm.ratios(s) == [1.0, 0.667, 0.333]
    assert not blm.meets_target(s)
    # the first two windows alone: 2/3 < 0.9 of the first
    assert not blm.meets_target(s[:2]) and blm.meets_target(s[:1])


def test_windows_are_scored_in_their_own_time():
    """A sorter that is perfect in window 2 only (nothing elsewhere) scores 0 then 3: the window
    shift applies to both trains, and spikes outside a window do not count in it."""
    gt_t, gt_u = _trains()
    inside = (gt_t >= 10 * FS) & (gt_t < 20 * FS)
    s = blm.window_scores(gt_t, gt_u, 3, gt_t[inside], gt_u[inside], np.arange(3),
                          blm.windows_of(0.0, 30.0, 10.0), FS)
    assert [w["well_detected"] for w in s] == [0, 3, 0]
    assert blm.ratios(s) == [None, None, None]  # no first-window count to compare with
    assert not blm.meets_target(s)
