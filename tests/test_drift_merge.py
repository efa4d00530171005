"""Units split in time by drift (offline.sort.drift_merge): joined when their templates are
similar, they take turns in time and never fire within 1 ms of each other; tested as groups."""

from __future__ import annotations

import numpy as np
import pytest

from oe_plugin.waveforms import biphasic_spike
from offline.sort.drift_merge import (
    coincidences,
    drift_groups,
    profile_overlap,
    shape_distance,
    split_groups,
)
from offline.sort.settings import SortSettings

FS = 30000.0
DURATION_S = 120.0
C, W = 6, 40
S = SortSettings()


def _template(depth_rows, width_ms=0.12, peak=100.0):
    """(C, W) template: a biphasic spike centred on (fractional) row ``depth_rows``."""
    t = (np.arange(W) - 12) / FS * 1e3
    shape = biphasic_spike(t, width_ms)
    rows = np.exp(-np.abs(np.arange(C) - depth_rows) / 1.2)
    return peak * rows[:, None] * shape[None, :]


def _train(rng, start_s, stop_s, rate_hz=8.0):
    n = rng.poisson(rate_hz * (stop_s - start_s))
    t = np.sort(rng.uniform(start_s, stop_s, n))
    t = t[np.concatenate([[True], np.diff(t) > 2e-3])]  # refractory
    return (t * FS).astype(np.int64)


def _groups(templates, trains, positions=None, ends=None):
    t = np.concatenate(trains)
    unit = np.concatenate([np.full(len(x), u, np.int32) for u, x in enumerate(trains)])
    order = np.argsort(t, kind="stable")
    pos = np.zeros((len(templates), 2)) if positions is None else np.asarray(positions, float)
    return drift_groups(t[order], unit[order], np.stack(templates), pos, FS, DURATION_S,
                        S.drift_merge_max_distance, S.drift_merge_max_overlap,
                        end_depths_um=ends,
                        end_max_distance=S.drift_merge_end_max_distance).tolist()


def test_a_unit_split_in_time_is_joined():
    rng = np.random.default_rng(0)
    # the same cell before and after a 10 µm step the correction missed: its template moved
    tpls = [_template(2.0), _template(2.4)]
    assert shape_distance(tpls[0], tpls[1]) < S.drift_merge_max_distance
    assert _groups(tpls, [_train(rng, 0, 70), _train(rng, 70, 120)]) == [0, 0]


def test_cells_firing_at_the_same_time_stay_apart():
    rng = np.random.default_rng(1)
    tpls = [_template(2.0), _template(2.4)]
    assert _groups(tpls, [_train(rng, 0, 120), _train(rng, 0, 120)]) == [0, 1]


def test_coincident_spikes_keep_units_apart():
    """Taking turns, but some spikes of one within 0.5 ms of the other's: two cells."""
    rng = np.random.default_rng(2)
    a, b = _train(rng, 0, 60), _train(rng, 60, 120)
    sync = a[rng.random(len(a)) < 0.1] + 12
    tpls = [_template(2.0), _template(2.4)]
    assert _groups(tpls, [a, np.sort(np.concatenate([b, sync]))]) == [0, 1]


def test_joins_are_tested_between_groups():
    """Cell 1 = A (0-40 s) + B (80-120 s), cell 2 = C (40-80 s) + D (0-40 s). B and C alone
    take turns, but their groups overlap in time (0-40 s): no join across."""
    rng = np.random.default_rng(3)
    tpls = [_template(2.0), _template(2.1), _template(2.6), _template(2.75)]
    trains = [_train(rng, 0, 40), _train(rng, 80, 120), _train(rng, 40, 80), _train(rng, 0, 40)]
    # distances order the tries: A-B, C-D, then B-C
    assert shape_distance(tpls[0], tpls[1]) < shape_distance(tpls[2], tpls[3])
    assert shape_distance(tpls[1], tpls[2]) < S.drift_merge_max_distance
    assert _groups(tpls, trains) == [0, 0, 2, 2]


def test_other_shapes_and_far_units_are_not_joined():
    rng = np.random.default_rng(4)
    trains = [_train(rng, 0, 60), _train(rng, 60, 120)]
    assert _groups([_template(2.0), _template(2.0, width_ms=0.3)], trains) == [0, 1]
    assert _groups([_template(2.0), _template(2.4)], trains,
                   positions=[[0, 0], [0, 200]]) == [0, 1]


def test_at_the_probe_end_a_truncated_phase_template_is_joined():
    """A cell at the probe's end: in one drift phase its corrected template lost the rows past
    the end (zeroed here), so the two phase templates are far apart (> drift_merge_max_distance)
    but within drift_merge_end_max_distance; joined there, not in the probe's middle, and not
    when the two fire together."""
    rng = np.random.default_rng(5)
    whole = _template(1.5)
    cut = whole.copy()
    cut[:2] = 0.0  # rows 0-1 read the field beyond the end: masked
    d = shape_distance(whole, cut)
    assert S.drift_merge_max_distance < d < S.drift_merge_end_max_distance
    turns = [_train(rng, 0, 60), _train(rng, 60, 120)]
    ends = (0.0, 620.0)
    at_end = [[32.0, 0.0], [32.0, 20.0]]
    assert _groups([whole, cut], turns, positions=at_end, ends=ends) == [0, 0]
    assert _groups([whole, cut], turns, positions=at_end) == [0, 1]  # no ends given
    middle = [[32.0, 300.0], [32.0, 320.0]]
    assert _groups([whole, cut], turns, positions=middle, ends=ends) == [0, 1]
    other_end = [[32.0, 0.0], [32.0, 600.0]]  # one near each end (and > RADIUS_UM apart)
    assert _groups([whole, cut], turns, positions=other_end, ends=ends) == [0, 1]
    together = [_train(rng, 0, 120), _train(rng, 0, 120)]
    assert _groups([whole, cut], together, positions=at_end, ends=ends) == [0, 1]


def test_helpers():
    x = _template(2.0)
    assert shape_distance(x, x) == 0.0
    assert shape_distance(x, np.zeros_like(x)) == np.inf
    assert profile_overlap(np.array([1.0, 0, 0]), np.array([0, 0, 5.0])) == 0.0
    assert profile_overlap(np.array([1.0, 1, 0]), np.array([2.0, 2, 0])) == pytest.approx(1.0)
    a = np.arange(0, 300000, 3000, dtype=np.int64)
    assert coincidences(a, a + 15, FS, 10.0)[0] == 1.0  # 0.5 ms apart
    assert coincidences(a, a + 150, FS, 10.0)[0] == 0.0  # 5 ms apart


def test_settings_validate_the_drift_join():
    with pytest.raises(ValueError, match="drift_merge_max_overlap"):
        SortSettings(drift_merge_max_overlap=1.5).check()
    with pytest.raises(ValueError, match="drift_merge_max_distance"):
        SortSettings(drift_merge_max_distance=-1).check()
    with pytest.raises(ValueError, match="drift_merge_end_max_distance"):
        SortSettings(drift_merge_end_max_distance=-1).check()


def _split(templates, trains):
    t = np.concatenate(trains)
    unit = np.concatenate([np.full(len(x), u, np.int32) for u, x in enumerate(trains)])
    order = np.argsort(t, kind="stable")
    return split_groups(t[order], unit[order], np.stack(templates), np.zeros((len(templates), 2)),
                        FS, DURATION_S, S.merge_distance).tolist()


def test_one_cell_in_two_templates_is_joined_two_cells_are_not():
    """The merge test's partner (split_groups): one refractory cell whose spikes went to two
    near-identical templates at random is joined; two independent cells with the same
    templates are not (their spikes coincide at chance), nor two cells too sparse to tell."""
    rng = np.random.default_rng(5)
    tpls = [_template(2.0, peak=120.0), _template(2.0, peak=105.0)]
    assert shape_distance(tpls[0], tpls[1]) < S.merge_distance
    cell = _train(rng, 0, 120, rate_hz=15.0)
    half = rng.random(len(cell)) < 0.5
    assert _split(tpls, [cell[half], cell[~half]]) == [0, 0]
    assert _split(tpls, [_train(rng, 0, 120, 15.0), _train(rng, 0, 120, 15.0)]) == [0, 1]
    # 0.5 Hz each: chance gives ~0.1 coincidence, so no evidence either way: kept apart
    assert _split(tpls, [_train(rng, 0, 120, 0.5), _train(rng, 0, 120, 0.5)]) == [0, 1]
    # different shapes are never joined, however refractory
    other = [_template(2.0, peak=120.0), _template(2.0, width_ms=0.3, peak=120.0)]
    assert _split(other, [cell[half], cell[~half]]) == [0, 1]
