"""The matching kernel's channel mask (``valid``): template rows on channels whose drift
correction is extrapolated are left out of the fit, the norm and the error."""

from __future__ import annotations

import numpy as np

from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.drift import (
    ONLINE_VALID_MIN_SUM,
    VALID_MIN_SUM,
    drift_tables,
    valid_bins,
)
from oe_plugin.kernels.match import (
    MIN_KEPT_ENERGY,
    make_params,
    match_entry,
    match_events,
    match_tables,
)
from oe_plugin.waveforms import biphasic_spike

PRE, WIDTH, N_CH = 10, 30, 8


def _templates():
    """Unit 0 near the probe's end (channels 0-3, peak on 2), unit 1 further in (3-6), unit 2
    mostly on channels 0-1 (it leaves the probe when they are masked)."""
    w = np.arange(WIDTH) - PRE
    a = biphasic_spike(w, 2.0, 0.3, 6, 3.0)
    b = biphasic_spike(w, 3.0, 0.2, 8, 3.0)
    c = biphasic_spike(w, 1.5, 0.5, 3, 1.5, trough_at=-1)
    tpl = np.zeros((3, 4, WIDTH), np.float32)
    tpl[0] = np.array([0.5, 0.8, 1.0, 0.6])[:, None] * a * 12
    tpl[1] = np.array([0.4, 1.0, 0.7, 0.3])[:, None] * b * 11
    tpl[2] = np.array([1.0, 0.9, 0.3, 0.1])[:, None] * c * 10
    chans = np.array([[0, 1, 2, 3], [3, 4, 5, 6], [0, 1, 2, 3]], np.int32)
    return tpl, chans


def _candidates():
    """Every template is a candidate of every channel."""
    n = 3
    ptr = np.arange(0, n * (N_CH + 1), n, dtype=np.int32)
    idx = np.tile(np.arange(n, dtype=np.int32), N_CH)
    return ptr, idx


def _match(src, ev_t, ev_c, params, thr, valid=None, extra=2):
    tpl, chans = _templates()
    ptr, idx = _candidates()
    norms, rows, work, iwork = match_tables(tpl, ptr, N_CH, params)
    n = len(ev_t)
    outs = [np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.float32),
            np.zeros(n, np.float32), np.zeros(n, np.int32),
            np.zeros(n * extra, np.int32), np.zeros(n * extra, np.int32),
            np.zeros(n * extra, np.float32), np.zeros(n * extra, np.float32)]
    args = [src, np.asarray(ev_t, np.int64), np.asarray(ev_c, np.int32), tpl, chans, norms, rows,
            ptr, idx, thr, params, work, iwork, *outs]
    if valid is None:
        n_ok = match_events(*args)
    else:
        n_ok = match_events(*args, valid)
    return n_ok, outs, args


def _edge_scene(seed=0, n=6000, atten=0.15):
    """Unit 0's spikes whose rows on channels 0-1 are what kriging extrapolation leaves: a small
    fraction of the field (the probe has moved; those channels' positions are off its end)."""
    rng = np.random.default_rng(seed)
    tpl, chans = _templates()
    x = rng.standard_normal((n, N_CH)).astype(np.float32)
    times = [300 + 400 * i for i in range(14)]
    for t in times:
        w = tpl[0].copy()
        w[:2] *= atten
        x[t - PRE:t - PRE + WIDTH, chans[0]] += w.T
    return x, times


def test_edge_unit_rejected_without_mask_accepted_with_it():
    x, times = _edge_scene()
    thr = np.full(3, 2.0, np.float32)
    params = make_params(PRE, 2)
    n_ok, outs, _ = _match(x.copy(), times, [2] * len(times), params, thr)
    assert n_ok == 0 and np.all(outs[3] > thr[0])  # residual of the extrapolated rows
    mask = np.ones((1, N_CH), np.int32)
    mask[0, :2] = 0
    n_ok, outs, _ = _match(x.copy(), times, [2] * len(times), params, thr, mask)
    unit, shift, amp, err, ok = outs[:5]
    assert n_ok == len(times) and np.all(ok == 1) and np.all(unit == 0)
    assert np.all(shift == 0) and np.all(np.abs(amp - 1) < 0.15) and np.all(err < 1.6)


def test_template_keeping_a_quarter_of_its_energy_is_still_a_candidate():
    """Unit 0 (rows 0.5, 0.8, 1.0, 0.6 on channels 0-3) with channels 1-2 masked keeps 27 % of
    its energy (a unit leaving the probe, seen on its outer rows): still found."""
    rng = np.random.default_rng(4)
    tpl, chans = _templates()
    x = rng.standard_normal((3000, N_CH)).astype(np.float32)
    t = 1000
    x[t - PRE:t - PRE + WIDTH, chans[0]] += tpl[0].T
    energy = (tpl[0].astype(np.float64) ** 2).sum(1)
    assert MIN_KEPT_ENERGY <= (energy[0] + energy[3]) / energy.sum() < 0.5
    thr = np.full(3, 50.0, np.float32)
    params = make_params(PRE, 2, subtract=False)
    mask = np.ones((1, N_CH), np.int32)
    mask[0, 1:3] = 0
    _, outs, _ = _match(x.copy(), [t], [0], params, thr, mask)
    assert outs[0][0] == 0 and outs[1][0] == 0 and abs(outs[2][0] - 1) < 0.2


def test_template_keeping_less_than_a_quarter_of_its_energy_is_no_candidate():
    rng = np.random.default_rng(3)
    tpl, chans = _templates()
    x = rng.standard_normal((3000, N_CH)).astype(np.float32)
    t = 1000
    x[t - PRE:t - PRE + WIDTH, chans[2]] += tpl[2].T
    thr = np.full(3, 50.0, np.float32)  # anything that fits is accepted
    params = make_params(PRE, 2, subtract=False)
    _, outs, _ = _match(x.copy(), [t], [0], params, thr)
    assert outs[0][0] == 2
    mask = np.ones((1, N_CH), np.int32)
    mask[0, :2] = 0
    _, outs, _ = _match(x.copy(), [t], [0], params, thr, mask)
    assert outs[0][0] != 2


def test_mask_row_per_interpolation_bin():
    x, times = _edge_scene(seed=1)
    thr = np.full(3, 2.0, np.float32)
    valid = np.ones((3, N_CH), np.int32)
    valid[1, :2] = 0  # only samples 2000..3999 are masked
    params = make_params(PRE, 2, valid_bin_n=2000)
    _, outs, _ = _match(x.copy(), times, [2] * len(times), params, thr, valid)
    inside = (np.array(times) >= 2000) & (np.array(times) < 4000)
    assert np.array_equal(outs[4] == 1, inside)
    # a mask of bins 1..2 only (row 0 = bin 1): earlier events clip to row 0, later to row 1
    params = make_params(PRE, 2, valid_bin_n=2000, valid_bin0=1)
    _, outs, _ = _match(x.copy(), times, [2] * len(times), params, thr, valid[1:])
    assert np.array_equal(outs[4] == 1, np.array(times) < 4000)


def _busy_scene(seed):
    """All three units, overlapping spikes included (for the all-valid identity)."""
    rng = np.random.default_rng(seed)
    tpl, chans = _templates()
    x = rng.standard_normal((8000, N_CH)).astype(np.float32)
    ev_t, ev_c = [], []
    t = 100
    while t < 7800:
        u = int(rng.integers(3))
        x[t - PRE:t - PRE + WIDTH, chans[u]] += (rng.uniform(0.8, 1.2) * tpl[u]).T
        ev_t.append(t)
        ev_c.append(int(chans[u][np.argmax(np.abs(tpl[u]).max(1))]))
        t += int(rng.integers(3, 120))
    order = np.argsort(ev_t, kind="stable")
    return x, np.array(ev_t)[order], np.array(ev_c)[order]


def test_all_valid_mask_is_bit_identical_to_no_mask():
    for seed in range(3):
        x, ev_t, ev_c = _busy_scene(seed)
        thr = np.full(3, 1.6, np.float32)
        params = make_params(PRE, 2, pair_window=12, max_spikes=3, partial=True,
                             valid_bin_n=1000)
        ref_n, ref, ref_args = _match(x.copy(), ev_t, ev_c, params, thr)
        assert ref_n > 0
        for valid in (np.ones((1, N_CH), np.int32), np.ones((9, N_CH), np.int32),
                      np.zeros((1, 0), np.int32), np.zeros((0, N_CH), np.int32)):
            n, got, args = _match(x.copy(), ev_t, ev_c, params, thr, valid)
            assert n == ref_n
            assert np.array_equal(args[0], ref_args[0])  # the peeled traces too
            for a, b in zip(ref, got, strict=True):
                assert np.array_equal(a, b)


def test_cfunc_with_mask_equals_njit():
    x, ev_t, ev_c = _busy_scene(7)
    thr = np.full(3, 1.6, np.float32)
    valid = np.ones((4, N_CH), np.int32)
    valid[1, :2] = 0
    valid[3, 6:] = 0
    params = make_params(PRE, 2, pair_window=12, valid_bin_n=2000)
    n_a, a_out, _ = _match(x.copy(), ev_t, ev_c, params, thr, valid)
    _, r_out, r_args = _match(x.copy(), ev_t, ev_c, params, thr, None)
    for o in r_out:
        o[:] = 0
    r_args[0] = x.copy()
    n_r = ArgTable([*r_args, valid]).call(entry_caller(match_entry))
    assert n_r == n_a
    for a, b in zip(a_out, r_out, strict=True):
        assert np.array_equal(a, b)


def test_drift_tables_valid_flags():
    pos = np.stack([np.zeros(16), np.arange(16) * 20.0], axis=1)
    tabs = drift_tables(pos, max_um=60, step_um=1.0)
    g0 = int(tabs.grid_index(0.0))
    g = int(tabs.grid_index(50.0))
    for min_sum in (VALID_MIN_SUM, ONLINE_VALID_MIN_SUM):
        valid = tabs.valid(min_sum)
        assert valid.shape == tabs.weight.shape[:2] and np.all(valid[:, g0] == 1)
        assert np.array_equal(valid[:, g],
                              (tabs.weight[:, g].astype(np.float64).sum(1) >= min_sum))
        rows = np.array([[g0] * 16, [g] * 16], np.int32)
        out = np.zeros((2, 16), np.int32)
        valid_bins(rows, tabs.weight, min_sum, out)
        assert np.array_equal(out, valid[np.arange(16), rows])
    # moved by +50 µm: the top channels read the field above the probe's end, 10, 30 and 50 µm
    # past it (weights summing to ~exp(-distance / 20 µm)): the one 10 µm past still counts as
    # interpolated at a limit of 0.5, not at 0.9; the others at neither
    assert np.all(tabs.valid(0.5)[:-2, g] == 1) and np.all(tabs.valid(0.5)[-2:, g] == 0)
    strict = tabs.valid(0.9)
    assert np.all(strict[:-3, g] == 1) and np.all(strict[-3:, g] == 0)
    assert strict[-1, int(tabs.grid_index(1.0))] == 1
    assert strict[-1, int(tabs.grid_index(3.0))] == 0
