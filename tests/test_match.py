"""Template-matching kernel (oe_plugin.kernels.match): njit and cfunc ways, arrays and rings."""

from __future__ import annotations

import numpy as np
import pytest

from oe_plugin.kernels._entry import ArgTable, entry_caller
from oe_plugin.kernels.match import (
    make_params,
    match_entry,
    match_events,
    match_tables,
)
from oe_plugin.waveforms import biphasic_spike

PRE, WIDTH, N_CH = 10, 30, 6


def _templates():
    """Two units: unit 0 on channels 0-2, unit 1 on channels 2-4 (K = 3 rows each)."""
    w = np.arange(WIDTH) - PRE
    shape = biphasic_spike(w, 2.0, 0.3, 6, 3.0)
    t = np.zeros((2, 3, WIDTH), dtype=np.float32)
    t[0] = np.array([1.0, 0.6, 0.3])[:, None] * shape * 12
    t[1] = np.array([0.4, 1.0, 0.5])[:, None] * shape[::-1] * 10  # a different waveform
    chans = np.array([[0, 1, 2], [2, 3, 4]], dtype=np.int32)
    return t, chans


def _scene(seed=0, n=4000, overlap=True):
    rng = np.random.default_rng(seed)
    tpl, chans = _templates()
    x = rng.standard_normal((n, N_CH)).astype(np.float32)  # time-major, unit noise
    truth = [(200 + 300 * i, i % 2) for i in range(12)]
    if overlap:
        truth.append((3800, 0))
        truth.append((3804, 1))  # overlaps the previous spike
    for t, u in truth:
        x[t - PRE : t - PRE + WIDTH, chans[u]] += tpl[u].T
    return x, tpl, chans, truth


NO_MASK = np.zeros((1, 0), np.int32)  # match_entry's argument 22: no channel mask


def _run(src, ev_t, ev_c, tpl, chans, params, thresholds):
    cand_ptr = np.array([0, 1, 2, 4, 5, 6, 6], dtype=np.int32)  # channel 2 sees both units
    cand_idx = np.array([0, 0, 0, 1, 1, 1], dtype=np.int32)
    norms, tpl_rows, work, iwork = match_tables(tpl, cand_ptr, src.shape[1], params)
    n = len(ev_t)
    outs = [np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.float32),
            np.zeros(n, np.float32), np.zeros(n, np.int32)]
    pair_outs = [np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.float32),
                 np.zeros(n, np.float32)]
    args = [src, ev_t, ev_c, tpl, chans, norms, tpl_rows, cand_ptr, cand_idx, thresholds, params,
            work, iwork, *outs, *pair_outs]
    return args, outs


def test_events_go_to_their_template_with_unit_error_and_peeling():
    x, tpl, chans, truth = _scene()
    # events as a detector gives them: jittered by a sample, on the peak channel
    ev_t = np.array([t + (1 if k % 3 == 0 else 0) for k, (t, _) in enumerate(truth)], np.int64)
    ev_c = np.array([chans[u][np.argmax(np.abs(tpl[u]).max(1))] for _, u in truth], np.int32)
    thresholds = np.full(2, 3.0, dtype=np.float32)
    params = make_params(PRE, max_shift=2, row_offset=0, subtract=True)
    src = x.copy()
    args, (unit, shift, amp, err, ok) = _run(src, ev_t, ev_c, tpl, chans, params, thresholds)
    n_ok = match_events(*args)
    assert n_ok == len(truth)
    assert list(unit) == [u for _, u in truth]
    assert np.array_equal(ev_t + shift, [t for t, _ in truth])  # exact spike times recovered
    assert np.all(np.abs(amp - 1) < 0.1)
    assert np.all(err < 1.6)  # unit noise: ~1 per sample
    # peeling: after subtraction only noise remains where the spikes were
    assert np.abs(src[3780:3840]).max() < 5.5


def test_cfunc_equals_njit_and_ring_equals_array():
    x, tpl, chans, truth = _scene(seed=1)
    ev_t = np.array([t for t, _ in truth], np.int64)
    ev_c = np.array([0 if u == 0 else 3 for _, u in truth], np.int32)
    thr = np.full(2, 3.0, dtype=np.float32)
    # njit over a plain array whose row 0 is stream index 100
    base = np.ascontiguousarray(x[100:])
    a_args, a_out = _run(base.copy(), ev_t, ev_c, tpl, chans, make_params(PRE, 2, row_offset=100),
                         thr)
    match_events(*a_args)
    # cfunc over a ring of 8192 rows (row of stream index t = t & 8191)
    ring = np.zeros((8192, N_CH), dtype=np.float32)
    ring[100 : len(x)] = x[100:]
    r_args, r_out = _run(ring, ev_t, ev_c, tpl, chans, make_params(PRE, 2, mask=8191), thr)
    n = ArgTable([*r_args, NO_MASK]).call(entry_caller(match_entry))
    assert n == int(a_out[4].sum()) == len(truth)
    for a, b in zip(a_out, r_out, strict=True):
        assert np.array_equal(a, b)


def test_threshold_rejects_and_bad_inputs_never_raise():
    x, tpl, chans, truth = _scene(seed=2, overlap=False)
    # a noise-only event, a bad channel, a window past the end, one before the start
    ev_t = np.array([truth[0][0], 2050, truth[1][0], 3995, 2], np.int64)
    ev_c = np.array([0, 0, 99, 0, 0], np.int32)
    thr = np.full(2, 3.0, dtype=np.float32)
    args, (unit, shift, amp, err, ok) = _run(x.copy(), ev_t, ev_c, tpl, chans,
                                             make_params(PRE, 2), thr)
    match_events(*args)
    assert ok[0] == 1 and unit[0] == 0
    assert ok[1] == 0  # noise: no acceptable fit
    assert list(unit[2:]) == [-1, -1, -1] and not ok[2:].any()
    # an impossible threshold accepts nothing but still reports the best unit
    args, (unit, _, _, err, ok) = _run(x.copy(), ev_t[:1], ev_c[:1], tpl, chans,
                                       make_params(PRE, 2), np.zeros(2, np.float32))
    assert match_events(*args) == 0 and unit[0] == 0 and err[0] > 0


def _pair_scene(seed, gap):
    """Unit 0 at 2000 and unit 1 ``gap`` samples later, both large on channel 2; one event."""
    rng = np.random.default_rng(seed)
    tpl, chans = _templates()
    w = np.arange(WIDTH) - PRE
    shape = biphasic_spike(w, 2.0, 0.3, 6, 3.0)
    tpl[0] = np.array([0.3, 0.6, 1.0])[:, None] * shape * 10  # both peak on channel 2
    tpl[1] = np.array([1.0, 0.6, 0.3])[:, None] * shape[::-1] * 9
    x = rng.standard_normal((4000, N_CH)).astype(np.float32)
    for t, u in ((2000, 0), (2000 + gap, 1)):
        x[t - PRE : t - PRE + WIDTH, chans[u]] += tpl[u].T
    return x, tpl, chans


def test_overlap_no_single_template_fits_is_resolved_as_a_pair():
    thr = np.full(2, 2.0, dtype=np.float32)
    ev_t, ev_c = np.array([2000], np.int64), np.array([2], np.int32)
    for seed, gap in ((3, 4), (4, -6), (5, 9)):
        x, tpl, chans = _pair_scene(seed, gap)
        # without pair resolution the event is rejected and nothing is subtracted
        src = x.copy()
        args, (unit, shift, amp, err, ok) = _run(src, ev_t, ev_c, tpl, chans,
                                                 make_params(PRE, 2, pair_window=0), thr)
        assert match_events(*args) == 0 and ok[0] == 0 and err[0] > thr[0]
        assert np.array_equal(src, x)
        # with it: both spikes, exact times, scale ~1, each error ~ noise
        src = x.copy()
        args, (unit, shift, amp, err, ok) = _run(src, ev_t, ev_c, tpl, chans,
                                                 make_params(PRE, 2, pair_window=12), thr)
        assert match_events(*args) == 2 and ok[0] == 2
        unit2, shift2, amp2, err2 = args[18:]
        got = sorted([(int(ev_t[0] + shift[0]), int(unit[0])),
                      (int(ev_t[0] + shift2[0]), int(unit2[0]))])
        assert got == sorted([(2000, 0), (2000 + gap, 1)]), (gap, got)
        assert abs(amp[0] - 1) < 0.15 and abs(amp2[0] - 1) < 0.15
        assert err[0] < 1.6 and err2[0] < 1.6
        assert np.abs(src[1980:2030]).max() < 5.0  # both subtracted: noise only


def _pairs_scene(n_pairs=10, spacing=300, gap=5, seed=11):
    """``n_pairs`` overlaps like :func:`_pair_scene`'s, ``spacing`` samples apart; one event
    each (unit 0's time, channel 2)."""
    rng = np.random.default_rng(seed)
    tpl, chans = _pair_scene(seed, gap)[1:]
    n = 600 + n_pairs * spacing
    x = rng.standard_normal((n, N_CH)).astype(np.float32)
    ev_t = 300 + spacing * np.arange(n_pairs, dtype=np.int64)
    for t in ev_t:
        for tt, u in ((t, 0), (t + gap, 1)):
            x[tt - PRE : tt - PRE + WIDTH, chans[u]] += tpl[u].T
    return x, tpl, chans, ev_t, np.full(n_pairs, 2, np.int32)


def test_online_overlap_effort_still_resolves_pairs():
    """One pursuit cycle, no coordinate descent, every second shift (the online effort): the
    pair scenes come out with the offline effort's units, within a sample of its times."""
    thr = np.full(2, 2.0, dtype=np.float32)
    ev_t, ev_c = np.array([2000], np.int64), np.array([2], np.int32)
    for seed, gap in ((3, 4), (4, -6), (5, 9), (7, 7)):
        x, tpl, chans = _pair_scene(seed, gap)
        found = []
        for params in (make_params(PRE, 2, pair_window=12),
                       make_params(PRE, 2, pair_window=12, refit_rounds=0, overlap_rounds=1,
                                   pursuit_step=2)):
            args, (unit, shift, _, _, ok) = _run(x.copy(), ev_t, ev_c, tpl, chans, params, thr)
            match_events(*args)
            found.append((int(ok[0]), sorted([(int(shift[0]), int(unit[0])),
                                               (int(args[19][0]), int(args[18][0]))])))
        assert found[0] == (2, sorted([(0, 0), (gap, 1)])), (gap, found)
        # the online effort: the same units, times within a sample (no coordinate descent)
        assert found[1][0] == 2, (gap, found)
        got = sorted(found[1][1], key=lambda p: p[1])
        assert [u for _, u in got] == [0, 1] and abs(got[0][0]) <= 1 and abs(got[1][0] - gap) <= 1


def test_overlap_budget_bounds_attempts_and_ignores_call_boundaries():
    """With a budget (one attempt earned per 1000 samples, two saved up at most) only the
    attempts it allows resolve pairs; matching the events one call at a time with the same
    scratch gives the same result as one call."""
    x, tpl, chans, ev_t, ev_c = _pairs_scene()
    thr = np.full(2, 2.0, dtype=np.float32)
    free = make_params(PRE, 2, pair_window=12)
    args, outs = _run(x.copy(), ev_t, ev_c, tpl, chans, free, thr)
    match_events(*args)
    assert (outs[4] == 2).all()  # every pair resolves without a budget
    budget = make_params(PRE, 2, pair_window=12, overlap_rate=1e-3, overlap_burst=2)
    args, outs = _run(x.copy(), ev_t, ev_c, tpl, chans, budget, thr)
    match_events(*args)
    allowed = 2 + int((ev_t[-1] - ev_t[0]) * 1e-3)  # 2 saved up + 2 earned over 2700 samples
    assert (outs[4] == 2).sum() == allowed
    assert list(outs[4][:2]) == [2, 2] and (outs[4][2:] < 2).any()
    # the same events one call at a time: the budget carries over in the scratch
    one_args, one_outs = _run(x.copy(), ev_t[:1], ev_c[:1], tpl, chans, budget, thr)
    ok_each = []
    for e in range(len(ev_t)):
        one_args[1], one_args[2] = ev_t[e:e + 1], ev_c[e:e + 1]
        match_events(*one_args)
        ok_each.append(int(one_outs[4][0]))
    assert ok_each == outs[4].tolist()
    np.testing.assert_array_equal(one_args[0], args[0])


def test_pair_rejected_leaves_src_unchanged_and_cfunc_agrees():
    x, tpl, chans = _pair_scene(6, 5)
    x[1900:1930, 0:3] += 8 * np.random.default_rng(1).standard_normal((30, 3)).astype(np.float32)
    ev_t = np.array([1910, 2000], np.int64)  # a junk event first, then the pair
    ev_c = np.array([0, 2], np.int32)
    thr = np.full(2, 2.0, dtype=np.float32)
    params = make_params(PRE, 2, pair_window=12)
    a_args, a_out = _run(x.copy(), ev_t, ev_c, tpl, chans, params, thr)
    match_events(*a_args)
    assert list(a_out[4]) == [0, 2]
    # the rejected junk event leaves its window as it was (up to float32 rounding)
    assert np.allclose(a_args[0][1880:1960], x[1880:1960], atol=1e-4)
    ring = np.zeros((4096, N_CH), dtype=np.float32)
    ring[: len(x)] = x
    r_args, r_out = _run(ring, ev_t, ev_c, tpl, chans, make_params(PRE, 2, mask=4095,
                                                                   pair_window=12), thr)
    assert ArgTable([*r_args, NO_MASK]).call(entry_caller(match_entry)) == 2
    for a, b in zip(a_args[13:], r_args[13:], strict=True):
        assert np.array_equal(a, b)


def _brute_force(x, t, c, tpl, chans, cand_ptr, cand_idx, pre, max_shift, amp_min, amp_max,
                 prior=0.0):
    """match_one by definition, in float64 numpy: every candidate at every shift; with
    ``prior`` l, the scale minimises ``|x - a T|^2 + l |T|^2 (a - 1)^2`` and the winner has the
    largest explained energy minus that penalty."""
    best = (0.0, -1, 0, 0.0, np.inf)
    for q in range(cand_ptr[c], cand_ptr[c + 1]):
        u = cand_idx[q]
        t_u = tpl[u].astype(np.float64)
        n2 = float((t_u ** 2).sum())
        for s in range(-max_shift, max_shift + 1):
            win = x[t + s - pre: t + s - pre + tpl.shape[2]][:, chans[u]].T.astype(np.float64)
            dot = float((win * t_u).sum())
            if dot <= 0:
                continue
            a = min(max((dot + prior * n2) / (n2 + prior * n2), amp_min), amp_max)
            fit = 2 * a * dot - a * a * n2
            gain = fit - prior * n2 * (a - 1) ** 2
            if gain > best[0]:
                best = (gain, u, s, a, (float((win ** 2).sum()) - fit) / win.size)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("prior", [0.0, 1.0])
def test_fast_search_finds_the_brute_force_winner(prior):
    """The gathered, padded float32 search picks the unit and shift of fitting every candidate
    at every shift in float64, on many random events over 12 units with distinct waveforms;
    with and without the amplitude prior (scale pulled toward 1)."""
    from oe_plugin.kernels.candidates import candidates
    from oe_plugin.kernels.match import match_one

    rng = np.random.default_rng(7)
    n_ch, width, pre, n_units = 16, 40, 12, 12
    w = np.arange(width) - pre
    tpl = np.zeros((n_units, 4, width), np.float32)
    chans = np.zeros((n_units, 4), np.int32)
    for u in range(n_units):
        peak = rng.integers(0, n_ch - 4)
        chans[u] = np.arange(peak, peak + 4)
        shape = biphasic_spike(w, rng.uniform(1.5, 3.5), rng.uniform(0.2, 0.5),
                               rng.uniform(4, 9), 3.0)
        tpl[u] = (rng.uniform(5, 12) * rng.dirichlet(np.ones(4))[:, None] * 3 * shape)
    chans[3, 2] = -1  # an unused row
    cand_ptr, cand_idx = candidates(tpl, chans, n_ch)
    x = rng.standard_normal((6000, n_ch)).astype(np.float32)
    ev = []
    for t in range(100, 5900, 60):
        u = rng.integers(n_units)
        rows = chans[u] >= 0
        x[t - pre:t - pre + width, chans[u][rows]] += rng.uniform(0.6, 1.5) * tpl[u][rows].T
        ev.append((t + rng.integers(-2, 3), int(chans[u][np.argmax(np.abs(tpl[u]).max(1))])))
    n_found = 0
    for mask, src in ((-1, x), (8191, np.vstack([x, np.zeros((8192 - len(x), n_ch), np.float32)]))):
        params = make_params(pre, 3, 0.7, 1.4, mask=mask, pair_window=5, amp_prior=prior)
        norms, rows_tbl, work, iwork = match_tables(tpl, cand_ptr, n_ch, params)
        for t, c in ev:
            got = match_one(src, t, c, tpl, chans, norms, rows_tbl, cand_ptr, cand_idx, params,
                            work, iwork)
            gain, u, s, a, err = _brute_force(x, t, c, tpl, chans, cand_ptr, cand_idx, pre, 3,
                                              0.7, 1.4, prior)
            assert (got[0], got[1]) == (u, s)
            n_found += u >= 0
            if u >= 0:
                assert abs(got[2] - a) < 1e-5 and abs(got[3] - err) < 1e-4 * max(1.0, err)
        assert not iwork[:n_ch].any()  # slot flags reset
    assert n_found > 0.9 * 2 * len(ev)


def test_too_small_workspace_matches_nothing():
    x, tpl, chans, truth = _scene(seed=3, overlap=False)
    ev_t = np.array([t for t, _ in truth], np.int64)
    ev_c = np.array([0 if u == 0 else 3 for _, u in truth], np.int32)
    args, (unit, _, _, _, ok) = _run(x.copy(), ev_t, ev_c, tpl, chans, make_params(PRE, 2),
                                     np.full(2, 3.0, np.float32))
    assert match_events(*args) == len(truth)
    args[11] = args[11][:10].copy()  # work
    assert match_events(*args) == -1
    assert (unit == -1).all() and not ok.any()


def test_stale_slot_flags_in_the_scratch_change_nothing():
    x, tpl, chans, truth = _scene(seed=4)
    ev_t = np.array([t for t, _ in truth], np.int64)
    ev_c = np.array([0 if u == 0 else 3 for _, u in truth], np.int32)
    thr = np.full(2, 3.0, np.float32)
    args, outs = _run(x.copy(), ev_t, ev_c, tpl, chans, make_params(PRE, 2, pair_window=8), thr)
    match_events(*args)
    stale, stale_outs = _run(x.copy(), ev_t, ev_c, tpl, chans,
                             make_params(PRE, 2, pair_window=8), thr)
    stale[12][:N_CH] = [3, 1, 7, -5, 2, 99]  # iwork[:C]: garbage left by someone else
    match_events(*stale)
    for a, b in zip(outs, stale_outs, strict=True):
        assert np.array_equal(a, b)


def test_amplitude_prior_keeps_a_big_template_off_a_smaller_neighbours_spike():
    """A small unit's spike (its own template a little off, as a template estimated among
    overlaps is) next to a big unit with nearly its shape: with a free scale the big template
    at the range's floor explains it best; with the prior (scale pulled toward 1, which the
    big one would have to leave far behind) the spike goes to its own unit, at scale ~1."""
    from oe_plugin.kernels.match import match_one

    w = np.arange(WIDTH) - PRE
    shape = biphasic_spike(w, 2.0, 0.3, 6, 3.0)
    big = np.array([1.0, 0.7, 0.4])[:, None] * shape * 20
    true_small = 0.66 * big
    small_tpl = true_small + np.array([0.0, 0.0, 1.0])[:, None] * shape * 3.0  # a bit off
    tpl = np.ascontiguousarray(np.stack([big, small_tpl]), np.float32)
    chans = np.array([[0, 1, 2], [0, 1, 2]], np.int32)
    cand_ptr = np.array([0, 2, 2, 2, 2, 2, 2], np.int32)
    cand_idx = np.array([0, 1], np.int32)
    x = np.zeros((200, N_CH), np.float32)
    x[100 - PRE:100 - PRE + WIDTH, :3] += true_small.T.astype(np.float32)
    got = {}
    for prior in (0.0, 1.0):
        params = make_params(PRE, 2, 0.75, 1.33, amp_prior=prior)
        norms, rows_tbl, work, iwork = match_tables(tpl, cand_ptr, N_CH, params)
        got[prior] = match_one(x, 100, 0, tpl, chans, norms, rows_tbl, cand_ptr, cand_idx,
                               params, work, iwork)
    assert got[0.0][0] == 0 and abs(got[0.0][2] - 0.75) < 1e-6  # the big one, at the floor
    assert got[1.0][0] == 1 and abs(got[1.0][2] - 1.0) < 0.1


def test_partial_overlap_keeps_the_verified_spike():
    """A pair whose second spike no template fits within its threshold (its unit's template is
    off): without ``partial`` the whole overlap is rejected; with it the first unit's spike is
    kept (its error measured with the second fit removed), and only the second is put back."""
    x, tpl, chans = _pair_scene(3, 6)
    # unit 1's spike in the data gets an extra component its template does not have
    w = np.arange(WIDTH) - PRE
    x[2006 - PRE:2006 - PRE + WIDTH, 3] += (6 * biphasic_spike(w - 3, 2.0, 0.3, 6, 3.0)
                                            ).astype(np.float32)
    thr = np.array([2.0, 1.3], np.float32)
    ev_t, ev_c = np.array([2000], np.int64), np.array([2], np.int32)
    src = x.copy()
    args, (unit, shift, amp, err, ok) = _run(src, ev_t, ev_c, tpl, chans,
                                             make_params(PRE, 2, pair_window=12), thr)
    assert match_events(*args) == 0 and ok[0] == 0
    assert np.allclose(src, x, atol=1e-4)
    src = x.copy()
    args, (unit, shift, amp, err, ok) = _run(src, ev_t, ev_c, tpl, chans,
                                             make_params(PRE, 2, pair_window=12, partial=True),
                                             thr)
    assert match_events(*args) == 1 and ok[0] == 1
    assert (int(unit[0]), int(ev_t[0] + shift[0])) == (0, 2000) and abs(amp[0] - 1) < 0.15
    # unit 0's spike is gone from the data, unit 1's (and its extra part) is back
    rest = x.copy()
    rest[2000 - PRE:2000 - PRE + WIDTH, chans[0]] -= amp[0] * tpl[0].T
    assert np.allclose(src, rest, atol=1e-3)
