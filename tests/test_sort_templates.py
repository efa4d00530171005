"""Cluster split and template rebuild (offline.sort.cluster / offline.sort.templates)."""

from __future__ import annotations

import numpy as np

from offline.sort.cluster import split_bimodal
from offline.sort.templates import TemplateSet, rebuild_templates


def test_bimodal_cluster_splits_and_unimodal_does_not():
    rng = np.random.default_rng(0)
    one = rng.standard_normal((600, 6))
    two = np.concatenate([rng.standard_normal((400, 6)),
                          rng.standard_normal((200, 6)) + [5, 2, 0, 0, 0, 0]])
    assert len(split_bimodal(one, np.arange(600), 25, 0.5, rng)) == 1
    parts = split_bimodal(two, np.arange(600), 25, 0.5, rng)
    assert len(parts) == 2
    sizes = sorted(len(p) for p in parts)
    assert abs(sizes[0] - 200) <= 6 and abs(sizes[1] - 400) <= 6
    small = min(parts, key=len)
    assert (small >= 400).mean() > 0.97  # the right members
    assert len(split_bimodal(two, np.arange(600), 25, 0.0, rng)) == 1  # 0 = off


def test_rebuild_covers_the_whole_footprint_and_keeps_thin_templates():
    w = 20
    shape = -np.exp(-0.5 * ((np.arange(w) - 6) / 2.0) ** 2)
    # unit 0 was clustered on channels 0-1 only; its true footprint is channels 0-3
    t0 = np.zeros((2, 3, w), np.float32)
    t0[0, :2] = np.array([8.0, 5.0])[:, None] * shape
    t0[1, :2] = np.array([6.0, 6.0])[:, None] * shape[::-1]
    tpl = TemplateSet(t0, np.array([[0, 1, -1], [6, 7, -1]], np.int32),
                      np.array([0, 6], np.int32), np.array([50, 40]), 6)
    wide = np.array([[0, 1, 2, 3, 4], [5, 6, 7, -1, -1]], np.int32)
    truth = np.array([8.0, 5.0, 3.0, 2.5, 0.2])[:, None] * shape
    sums = np.zeros((2, 5, w))
    sums[0] = 100 * truth
    counts = np.array([100, 3])  # unit 1: too few spikes -> keeps its cluster mean
    out = rebuild_templates(tpl, wide, sums, counts, 8, min_spikes=13, row_min=1.5,
                            merge_distance=0.2, max_shift=2)
    assert out.n_units == 2
    u0 = int(np.flatnonzero(out.peak_channel == 0)[0])
    rows = out.channels[u0][out.channels[u0] >= 0]
    assert rows.tolist() == [0, 1, 2, 3]  # channel 4 (0.2 < row_min) left out
    for k, ch in enumerate(out.channels[u0][:4]):
        assert np.allclose(out.waveforms[u0, k], truth[ch], atol=1e-5)
    u1 = 1 - u0
    assert out.channels[u1][out.channels[u1] >= 0].tolist() == [6, 7]
    assert np.allclose(out.waveforms[u1, :2], t0[1, :2])


def test_rebuild_keeps_a_template_whose_matches_were_something_else():
    w = 20
    shape = -np.exp(-0.5 * ((np.arange(w) - 6) / 2.0) ** 2)
    t0 = np.zeros((1, 2, w), np.float32)
    t0[0] = np.array([4.0, 2.0])[:, None] * shape
    tpl = TemplateSet(t0, np.array([[3, 4]], np.int32), np.array([3], np.int32),
                      np.array([50]), 6)
    wide = np.array([[2, 3, 4, 5]], np.int32)
    big = np.array([20.0, 1.0, 6.0, 1.0])[:, None] * shape  # a big neighbour peaking on 2
    out = rebuild_templates(tpl, wide, 100 * big[None], np.array([100]), 8, min_spikes=13,
                            row_min=1.5, merge_distance=0.2, max_shift=2)
    assert out.channels[0][out.channels[0] >= 0].tolist() == [3, 4]
    assert np.allclose(out.waveforms[0, :2], t0[0])
