"""Overlap resolution in the matching kernel (resolve_overlap): 2-, 3- and 4-spike overlaps
against a brute-force reference that tries every set of k (unit, time) spikes."""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest

from oe_plugin.kernels.match import make_params, match_events, match_tables
from oe_plugin.waveforms import biphasic_spike

PRE, WIDTH, N_CH, WINDOW = 8, 24, 6, 12


def _templates():
    """Four units with distinct waveforms and overlapping footprints on a 6-channel line."""
    w = np.arange(WIDTH) - PRE
    shapes = [
        biphasic_spike(w, 1.5, 0.35, 5, 2.5),
        biphasic_spike(w, 3.0, 0.2, 8, 3.0),
        biphasic_spike(w, 2.0, 0.6, 3, 1.5, trough_at=-1),
        biphasic_spike(w, 1.8, 0.5, -2, 1.5, trough_at=1),
    ]
    chans = np.array([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 2, 3, 5]], np.int32)
    gains = np.array([[1.0, 0.7, 0.4, 0.2], [0.5, 1.0, 0.6, 0.3], [0.3, 0.6, 1.0, 0.7],
                      [0.8, 1.0, 0.5, 0.4]])
    amp = [14.0, 11.0, 12.0, 10.0]
    tpl = np.stack([gains[u][:, None] * shapes[u] * amp[u] for u in range(4)]).astype(np.float32)
    return tpl, chans


@numba.njit(cache=True)
def _best_subset(b, gram, k):
    """Indices of the k candidates minimising |x - sum T_i|^2 = const - 2 sum b_i + sum G_ij."""
    n = b.shape[0]
    idx = np.arange(k)
    best = np.inf
    out = idx.copy()
    while True:
        cost = 0.0
        for i in range(k):
            cost -= 2.0 * b[idx[i]]
            for j in range(k):
                cost += gram[idx[i], idx[j]]
        if cost < best:
            best = cost
            out[:] = idx
        # next combination in lexicographic order
        i = k - 1
        while i >= 0 and idx[i] == n - k + i:
            i -= 1
        if i < 0:
            break
        idx[i] += 1
        for j in range(i + 1, k):
            idx[j] = idx[j - 1] + 1
    return out


def _brute_force(x, tpl, chans, t_lo, t_hi, k):
    """The set of k (unit, time) spikes, scale 1, that explains x best (every subset tried)."""
    cands = [(u, t) for u in range(len(tpl)) for t in range(t_lo, t_hi + 1)]
    full = np.zeros((len(cands), x.shape[0], N_CH))
    for n, (u, t) in enumerate(cands):
        full[n, t - PRE : t - PRE + WIDTH][:, chans[u]] += tpl[u].T
    flat = full.reshape(len(cands), -1)
    b = flat @ x.ravel().astype(np.float64)
    gram = flat @ flat.T
    return sorted(cands[i] for i in _best_subset(b, gram, k))


def _scene(k, seed):
    rng = np.random.default_rng([k, seed])
    tpl, chans = _templates()
    n = 200
    x = (0.5 * rng.standard_normal((n, N_CH))).astype(np.float32)
    units = rng.choice(4, size=k, replace=k > 4)
    t0 = 100
    while True:  # all within WINDOW - 2 of each other, at least 3 samples apart
        times = sorted([t0] + (t0 + rng.integers(0, WINDOW - 1, size=k - 1)).tolist())
        if np.all(np.diff(times) >= 3):
            break
    truth = sorted(zip(units.tolist(), times, strict=True))
    for u, t in truth:
        x[t - PRE : t - PRE + WIDTH, chans[u]] += tpl[u].T
    return x, tpl, chans, truth


def _resolve(x, tpl, chans, event_t, event_c, k_max):
    cand_ptr = np.array([0, 2, 5, 8, 11, 13, 15], np.int32)  # units with rows on each channel
    cand_idx = np.array([0, 3, 0, 1, 3, 0, 1, 2, 1, 2, 3, 1, 2, 2, 3], np.int32)
    params = make_params(PRE, 2, 0.75, 1.33, pair_window=WINDOW, max_spikes=k_max)
    norms, rows, work, iwork = match_tables(tpl, cand_ptr, N_CH, params)
    thr = np.full(len(tpl), 1.0, np.float32)  # noise variance 0.25 here: 4x its own error
    ev_t = np.array([event_t], np.int64)
    ev_c = np.array([event_c], np.int32)
    out = [np.zeros(1, np.int32), np.zeros(1, np.int32), np.zeros(1, np.float32),
           np.zeros(1, np.float32), np.zeros(1, np.int32)]
    extra = [np.zeros(k_max - 1, np.int32), np.zeros(k_max - 1, np.int32),
             np.zeros(k_max - 1, np.float32), np.zeros(k_max - 1, np.float32)]
    src = x.copy()
    match_events(src, ev_t, ev_c, tpl, chans, norms, rows, cand_ptr, cand_idx, thr, params,
                 work, iwork, *out, *extra)
    n = int(out[4][0])
    found = []
    if n >= 1:
        found.append((int(out[0][0]), int(event_t + out[1][0])))
    for j in range(n - 1):
        found.append((int(extra[0][j]), int(event_t + extra[1][j])))
    return sorted(found), src


def _same(a, b):
    return len(a) == len(b) and all(ua == ub and abs(ta - tb) <= 1
                                    for (ua, ta), (ub, tb) in zip(a, b, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 3, 4])
def test_overlaps_resolved_like_brute_force(k):
    resolved = 0
    trials = 20
    for seed in range(trials):
        x, tpl, chans, truth = _scene(k, seed)
        # the event a detector reports: the largest negative peak
        u0, t0 = max(truth, key=lambda s: np.abs(tpl[s[0]]).max())
        c0 = int(chans[u0][np.argmax(np.abs(tpl[u0]).max(axis=1))])
        found, residual = _resolve(x, tpl, chans, t0, c0, k_max=4)
        times = [t for _, t in truth]
        reference = _brute_force(x, tpl, chans, min(times) - 2, max(times) + 2, k)
        assert _same(reference, truth), (reference, truth)  # the scene is resolvable
        if _same(found, reference):
            resolved += 1
            # what is left is the noise: every spike was subtracted
            assert float((residual[60:140] ** 2).mean()) < 0.25 * 1.5
    # greedy pursuit with refits is not exhaustive; it must agree on nearly every scene
    assert resolved >= trials - 2, f"{resolved}/{trials} {k}-spike overlaps resolved"


def test_single_template_events_are_not_split():
    tpl, chans = _templates()
    rng = np.random.default_rng(5)
    x = (0.5 * rng.standard_normal((200, N_CH))).astype(np.float32)
    x[100 - PRE : 100 - PRE + WIDTH, chans[1]] += tpl[1].T
    found, _ = _resolve(x, tpl, chans, 100, 2, k_max=4)
    assert found == [(1, 100)]


def test_rejected_overlap_leaves_the_data_unchanged():
    tpl, chans = _templates()
    rng = np.random.default_rng(6)
    x = (0.5 * rng.standard_normal((200, N_CH))).astype(np.float32)
    # a spike shape no template has: the kernel must not explain it away
    x[95:105, 2] += np.float32(-12.0)
    found, src = _resolve(x, tpl, chans, 100, 2, k_max=4)
    assert found == []
    np.testing.assert_allclose(src, x, atol=1e-4)


@pytest.mark.slow
def test_combinations_helper_is_exhaustive():
    b = np.array([1.0, 5.0, 2.0, 4.0])
    gram = np.eye(4)
    assert sorted(_best_subset(b, gram, 2).tolist()) == [1, 3]
    assert len(list(itertools.combinations(range(4), 2))) == 6
