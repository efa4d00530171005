"""Cluster split and template rebuild (offline.sort.cluster / offline.sort.templates)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from offline.sort.cluster import cluster_snippets, core_points, dense_root_cluster, split_bimodal
from offline.sort.settings import SortSettings
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


def _group_with_hidden_pair(rng):
    """One peak channel's snippets (n, 1, 60): six big units far apart along e0..e5 and one
    cloud holding two small units (at 3 e6) that differ only along e7, by +-2 noise SDs: the
    seven clouds' means take the group's first six components."""
    d = 60
    big = [np.eye(d)[i] * 12.0 for i in range(6)]
    parts, truth = [], []
    for i, m in enumerate(big):
        parts.append(rng.standard_normal((250, d)) + m)
        truth += [i] * 250
    for sign, label in ((1.0, 6), (-1.0, 7)):
        parts.append(rng.standard_normal((250, d)) + 3.0 * np.eye(d)[6] + sign * 2.0 * np.eye(d)[7])
        truth += [label] * 250
    x = np.concatenate(parts).astype(np.float32)
    return x[:, None, :], np.asarray(truth)


def test_split_in_the_clusters_own_components_finds_a_pair_the_group_hides():
    rng = np.random.default_rng(3)
    snippets, truth = _group_with_hidden_pair(rng)
    snippet_c = np.zeros(len(truth), np.int32)
    snip_nb = (np.array([0, 1], np.int32), np.array([0], np.int32))

    def pair_split(local):
        s = replace(SortSettings(), split_pca_components=local)
        clusters = cluster_snippets(snippets, snippet_c, snip_nb, s, 0)
        of_pair = [cl for cl in clusters if np.isin(truth[cl.members], (6, 7)).mean() > 0.9]
        return [np.bincount(truth[cl.members], minlength=8)[6:] for cl in of_pair]

    # in the group's 6 components the pair is one cloud (its difference is the 8th direction)
    assert len(pair_split(0)) == 1
    # in the cluster's own components it is two, each (almost) one unit
    parts = pair_split(10)
    assert len(parts) == 2
    for counts in parts:
        assert counts.max() >= 0.9 * counts.sum() and counts.sum() >= 200


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


def test_merge_test_keeps_two_units_with_near_identical_means_apart():
    """Two units at one place, one 12 % larger (template distance 0.014 < merge_distance 0.1):
    their spikes form two clouds, so the merge test keeps them apart; two clusters of one
    unit are still merged, and without the test (trough 0) the two units are merged too."""
    from offline.sort.cluster import Cluster
    from offline.sort.templates import build_templates

    rng = np.random.default_rng(5)
    w = 30
    t = np.arange(w)
    shape = -np.exp(-0.5 * ((t - 10) / 2.0) ** 2) + 0.4 * np.exp(-0.5 * ((t - 16) / 3.0) ** 2)
    rows = np.array([1.0, 0.6, 0.3])[:, None] * shape[None, :] * 20.0  # (3, w)
    n = 300
    a = rows[None] + rng.standard_normal((n, 3, w))
    b = 1.12 * rows[None] + rng.standard_normal((n, 3, w))
    snippets = np.concatenate([a, b]).astype(np.float32)
    snip_nb = (np.array([0, 3, 6, 9], np.int32), np.array([0, 1, 2] * 3, np.int32))
    halves = [Cluster(0, np.arange(0, 150)), Cluster(0, np.arange(150, 300))]  # unit a, twice
    unit_b = [Cluster(0, np.arange(300, 600))]

    def n_templates(clusters, trough):
        return build_templates(clusters, snippets, snip_nb, 3, 10, 0.1, 2, trough).n_units

    assert n_templates(halves + unit_b, 0.1) == 2  # a's halves merged, b kept apart
    assert n_templates(halves + unit_b, 0.0) == 1  # the distance alone merges all three
    assert n_templates(halves, 0.1) == 1


def test_fisher_merge_test_keeps_apart_two_units_whose_spread_hides_them_on_the_mean_line():
    """Two units at one place (template distance ~0.01 < merge_distance 0.1) whose spikes vary
    strongly in size (+-30 %, as bursting or drifting cells do): their means differ a little in
    size and in the second phase's timing. On the line between the means the size spread
    fills the gap (one mode: the plain test merges them); along their Fisher direction in the
    snippets' top principal components they are two clouds, so the Fisher test keeps them apart.
    Two random halves of one unit are still merged by it."""
    from offline.sort.cluster import Cluster
    from offline.sort.templates import build_templates

    w = 30
    t = np.arange(w)

    def wave(late):
        return -np.exp(-0.5 * ((t - 10) / 2.0) ** 2) + 0.4 * np.exp(-0.5 * ((t - late) / 3.0) ** 2)

    spread = np.array([1.0, 0.6, 0.3])[:, None]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        n = 300
        size_a = 20.0 * rng.normal(1.0, 0.3, n)
        size_b = 21.0 * rng.normal(1.0, 0.3, n)
        a = size_a[:, None, None] * (spread * wave(16.0))[None] + rng.standard_normal((n, 3, w))
        b = size_b[:, None, None] * (spread * wave(18.0))[None] + rng.standard_normal((n, 3, w))
        snippets = np.concatenate([a, b]).astype(np.float32)
        snip_nb = (np.array([0, 3, 6, 9], np.int32), np.array([0, 1, 2] * 3, np.int32))
        halves = [Cluster(0, np.arange(0, 150)), Cluster(0, np.arange(150, 300))]
        unit_b = [Cluster(0, np.arange(300, 600))]

        def n_templates(clusters, components, snippets=snippets, snip_nb=snip_nb):
            return build_templates(clusters, snippets, snip_nb, 3, 10, 0.1, 2, 0.1,
                                   components).n_units

        assert n_templates(halves + unit_b, 10) == 2  # a's halves merged, b kept apart
        assert n_templates(halves + unit_b, 0) == 1  # the mean line sees one cloud
        assert n_templates(halves, 10) == 1


def test_pairs_kept_apart_are_never_merged_again():
    """merge_dense's ``apart`` (what the merge test decided, carried by TemplateSet.apart into
    the rebuild's merge): identical templates stay two; a third one merged into either stays
    apart from the other."""
    from offline.sort.templates import merge_dense

    dense = np.zeros((3, 2, 20))
    dense[:, 0, 8] = -10.0
    known = np.ones((3, 2), bool)
    counts = np.array([10, 10, 10])
    apart = np.zeros((3, 3), bool)
    assert len(merge_dense(dense, known, counts, 0.1, 2)[0]) == 1
    apart[0, 1] = apart[1, 0] = True
    left, _, _, still = merge_dense(dense, known, counts, 0.1, 2, apart=apart)
    assert len(left) == 2 and still[0, 1] and still[1, 0]


def _bursting_cell_beside_a_smaller_one(rng, with_smaller=True):
    """One peak channel's snippets (n, 4, 30): cell A spread over the 4 rows, its amplitude
    shrinking within bursts (x 0.8 per spike, 4 levels); cell B, 2/3 of A's first spike, on
    the first row only, so A's late spikes fill the amplitude gap between them."""
    k, w = 4, 30
    wave = -np.exp(-0.5 * ((np.arange(w) - 10) / 2.0) ** 2)
    fa = np.array([1.0, 0.8, 0.6, 0.3])[:, None] * wave
    fb = np.array([1.0, 0.4, 0.15, 0.05])[:, None] * wave
    scale_a = 12.0 * 0.8 ** rng.integers(0, 4, 600) * rng.normal(1, 0.05, 600)
    parts, truth = [scale_a[:, None, None] * fa + rng.standard_normal((600, k, w))], [0] * 600
    if with_smaller:
        scale_b = 8.0 * rng.normal(1, 0.05, 500)
        parts.append(scale_b[:, None, None] * fb + rng.standard_normal((500, k, w)))
        truth += [1] * 500
    return np.concatenate(parts).astype(np.float32), np.asarray(truth)


def test_shape_split_separates_a_bursting_cell_from_a_smaller_neighbour():
    snip_nb = (np.array([0, 4], np.int32), np.arange(4, dtype=np.int32))

    def clusters(snippets, shape, core=0.0):
        # on the centre line (the Fisher direction alone already cuts this pair), on all
        # snippets (the split on the core snippets alone cuts it by size too: below)
        s = replace(SortSettings(), split_shape=shape, split_fisher=False, split_core=core)
        return cluster_snippets(snippets, np.zeros(len(snippets), np.int32), snip_nb, s, 0)

    for seed in range(3):
        snippets, truth = _bursting_cell_beside_a_smaller_one(np.random.default_rng(seed))
        # by size the two cells are one cloud; by shape, two clusters, each one cell
        assert len(clusters(snippets, False)) == 1
        parts = [np.bincount(truth[cl.members], minlength=2) for cl in clusters(snippets, True)]
        assert len(parts) == 2
        assert sorted(int(c.argmax()) for c in parts) == [0, 1]
        for counts in parts:
            assert counts.max() >= 0.98 * counts.sum() and counts.sum() >= 400
        # the bursting cell alone: the shape test cuts nothing more than the size test did
        alone, _ = _bursting_cell_beside_a_smaller_one(np.random.default_rng(seed), False)
        by_size = sorted(len(cl.members) for cl in clusters(alone, False))
        assert sorted(len(cl.members) for cl in clusters(alone, True)) == by_size
        # trimmed to 80 % (session 18's default): the size split alone separates the pair (the
        # bursting cell may come in parts, one per burst position, which burst_merge joins
        # into one unit), and leaves the bursting cell alone whole (on all snippets it cut 2
        # of these 3 seeds; the default 95 % relies on the shape split for this pair: below)
        parts = [np.bincount(truth[cl.members], minlength=2)
                 for cl in clusters(snippets, False, 0.8)]
        assert {int(c.argmax()) for c in parts} == {0, 1}
        assert all(c.max() >= 0.98 * c.sum() for c in parts)
        assert len(clusters(alone, True, 0.8)) == 1


def _busy_cell_with_a_minority(seed):
    """260 points of one cloud and 60 of another 7 SDs away along e0 (10 dimensions): the
    cluster of dense64 tuning seed 3's 71 µV and 51 µV cells. Returns (x, members, rng)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((260, 10))
    b = rng.standard_normal((60, 10))
    b[:, 0] += 7.0
    x = np.vstack([a, b])
    return x, np.arange(len(x)), rng


def test_default_trimming_keeps_a_smaller_cell_that_shares_a_cluster():
    """dense64 tuning seed 3: 61 snippets of a 51 µV cell among 261 of a busier 71 µV cell.
    Trimmed to 80 % the 2-means starts from the busy cell alone and finds no dip; the default
    (95 %, about the share of overlap snippets the trimming is for) splits the pair, and the
    default clustering still separates a bursting cell from a smaller neighbour."""
    core = SortSettings().split_core
    for seed in range(4):
        x, members, rng = _busy_cell_with_a_minority(seed)
        assert len(split_bimodal(x, members, 25, 0.5, rng, core=0.8, fisher=True)) == 1
        parts = split_bimodal(x, members, 25, 0.5, rng, core=core, fisher=True)
        assert len(parts) >= 2
        big = max(parts, key=len)
        assert len(big) >= 255 and (big < 260).mean() >= 0.99  # the busy cell stays whole
        assert all((p >= 260).mean() >= 0.95 for p in parts if p is not big)
    snip_nb = (np.array([0, 4], np.int32), np.arange(4, dtype=np.int32))
    for seed in range(4):
        snippets, truth = _bursting_cell_beside_a_smaller_one(np.random.default_rng(seed))
        found = cluster_snippets(snippets, np.zeros(len(snippets), np.int32), snip_nb,
                                 SortSettings(), 0)
        parts = [np.bincount(truth[cl.members], minlength=2) for cl in found]
        assert {int(c.argmax()) for c in parts} == {0, 1}
        assert all(c.max() >= 0.98 * c.sum() for c in parts)


def _elongated_pair(rng, two=True, n=400, d=10):
    """Two clouds 6 apart along e0 whose noise is stretched (variance 1 + 4) along (e0 + e1):
    on the line between their centres they overlap, across the stretch they do not."""
    v = np.zeros(d)
    v[:2] = 1 / np.sqrt(2)
    cov = np.eye(d) + 4.0 * np.outer(v, v)
    a = rng.multivariate_normal(np.zeros(d), cov, n)
    if not two:
        return a, np.zeros(n, int)
    b = rng.multivariate_normal(6.0 * np.eye(d)[0], cov, n)
    return np.vstack([a, b]), np.r_[np.zeros(n, int), np.ones(n, int)]


def test_fisher_split_separates_clouds_the_centre_line_mixes():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x, truth = _elongated_pair(rng)
        members = np.arange(len(x))
        assert len(split_bimodal(x, members, 25, 0.5, rng)) == 1
        parts = split_bimodal(x, members, 25, 0.5, rng, fisher=True)
        assert len(parts) == 2
        for p in parts:
            assert np.bincount(truth[p], minlength=2).max() >= 0.93 * len(p)
        # one stretched cloud: any projection of it is unimodal, so no cut
        one, _ = _elongated_pair(rng, two=False, n=800)
        assert len(split_bimodal(one, np.arange(len(one)), 25, 0.5, rng, fisher=True)) == 1


def _pair_with_overlap_tail(rng, n_big=250, n_small=50, tail=0.15, d=60):
    """Two cells' snippets in d dimensions (unit noise; d ~ a band-limited snippet's effective
    dimension), their means 5 noise SDs apart along e0, and a heavy tail: ``tail`` of each
    cell's snippets hold a second spike of one of two neighbours (a fixed direction each,
    at 2-3x the noise's norm). The shape of dense64 seed 6's 253 + 51 pair on one channel:
    means ~4-5 SDs apart along their line, 5 % of snippets at twice the median norm."""
    neighbours = rng.standard_normal((2, d))
    neighbours[:, 0] = 0.0
    neighbours *= np.sqrt(d) / np.linalg.norm(neighbours, axis=1, keepdims=True)
    x, truth = [], []
    for label, n, shift in ((0, n_big, 0.0), (1, n_small, 5.0)):
        pts = rng.standard_normal((n, d))
        pts[:, 0] += shift
        hit = np.flatnonzero(rng.random(n) < tail)
        which = rng.integers(0, 2, len(hit))
        pts[hit] += neighbours[which] * rng.uniform(2.0, 3.0, (len(hit), 1))
        x.append(pts)
        truth += [label] * n
    return np.concatenate(x), np.asarray(truth)


def test_split_finds_the_pair_a_tail_of_overlaps_hides_from_2_means():
    def separated(x, truth, core, rng):
        parts = split_bimodal(x, np.arange(len(x)), 25, 0.5, rng, local_components=10,
                              fisher=True, core=core)
        pure = all(np.bincount(truth[p], minlength=2).max() >= 0.85 * len(p) for p in parts)
        # the smaller cell in parts of its own (one, or pieces the merge test rejoins)
        of_small = sum(np.sum(truth[p] == 1) for p in parts if np.mean(truth[p] == 1) > 0.5)
        return pure and of_small >= 0.85 * 50

    trimmed = every = 0
    for seed in range(8):
        x, truth = _pair_with_overlap_tail(np.random.default_rng(seed))
        trimmed += separated(x, truth, 0.8, np.random.default_rng(0))
        every += separated(x, truth, 0.0, np.random.default_rng(0))
    # with every snippet 2-means cuts a neighbour's overlaps off instead (0 of 8 seeds);
    # trimmed it finds the pair on half of them (the rest: one of the cells' tails is cut)
    assert every <= 1 and trimmed >= 4, (every, trimmed)


def test_core_points_keeps_the_quantile_nearest_the_median():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1000, 5))
    x[:100] += 50.0  # far outliers
    keep = core_points(x, 0.8)
    assert keep.sum() == 800 and not keep[:100].any()
    assert core_points(x, 0.0).all() and core_points(x, 1.0).all()


def test_root_cluster_is_made_whole_from_its_dense_part():
    # one blob: HDBSCAN with a single cluster allowed keeps only its root's ~min_size densest
    # points; the dense half of the blob becomes the cluster instead
    from sklearn.cluster import HDBSCAN

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((800, 6))
    labels = HDBSCAN(min_cluster_size=25, min_samples=10, allow_single_cluster=True,
                     copy=True).fit_predict(feats)
    assert 0 < (labels >= 0).sum() < 50  # the labelling this is for
    made = dense_root_cluster(labels, feats, 25, 10, 0.5)
    assert set(np.unique(made)) == {-1, 0} and (made == 0).sum() == 400
    r = np.linalg.norm(feats, axis=1)
    assert np.median(r[made == 0]) < np.median(r[made == -1])  # the dense core
    assert np.array_equal(dense_root_cluster(labels, feats, 25, 10, 0.0), labels)
    # two clusters found: left alone
    two = np.where(np.arange(800) < 400, 0, 1)
    assert np.array_equal(dense_root_cluster(two, feats, 25, 10, 0.5), two)


def test_a_channel_of_two_cells_hdbscan_keeps_as_its_root_is_split():
    # two cells 8 noise SDs apart along one of 40 directions, 40 % of their snippets holding a
    # second spike (large offsets in 8 other directions): in the channel's 6 components
    # HDBSCAN finds no two clusters and labels ~25 points; the dense half of its root, the
    # tail left out, splits in its own components into the two cells
    for seed in range(3):
        rng = np.random.default_rng(seed)
        d = 40
        parts, truth = [], []
        for label, shift in ((0, -4.0), (1, 4.0)):
            pts = rng.standard_normal((400, d))
            pts[:, 20] += shift
            hit = rng.random(400) < 0.4
            pts[hit, :8] += rng.standard_normal((hit.sum(), 8)) * 8.0
            parts.append(pts)
            truth += [label] * 400
        snippets = np.concatenate(parts).astype(np.float32)[:, None, :]
        truth = np.asarray(truth)
        snippet_c = np.zeros(len(truth), np.int32)
        snip_nb = (np.array([0, 1], np.int32), np.array([0], np.int32))

        def clusters_with(q, snippets=snippets, snippet_c=snippet_c, snip_nb=snip_nb):
            s = replace(SortSettings(), root_cluster_quantile=q)
            return cluster_snippets(snippets, snippet_c, snip_nb, s, 0)

        old = clusters_with(0.0)
        assert len(old) == 1 and len(old[0].members) < 50  # HDBSCAN's root labelling
        new = [np.bincount(truth[c.members], minlength=2) for c in clusters_with(0.5)]
        assert len(new) == 2 and {int(c.argmax()) for c in new} == {0, 1}
        for counts in new:
            assert counts.max() >= 0.97 * counts.sum() and counts.sum() >= 150


def _spikes(t, unit):
    n = len(t)
    return {"t": np.asarray(t, np.int64), "unit": np.asarray(unit, np.int32),
            "accepted": np.ones(n, bool), "pass_": np.zeros(n, np.int8), "pair": np.zeros(n, bool)}


def test_robust_rebuild_sum_ignores_a_neighbours_spike_in_a_few_windows():
    """dense64 tuning seed 3: a focal 71 µV cell's template, rebuilt from 77 matched spikes on its
    wide rows, picked up a big neighbour's spikes on rows where it has none, and its own spikes
    then fitted the smaller cell next to it. The clipped sum keeps those rows near zero."""
    from offline.sort.matching import _accumulate

    rng = np.random.default_rng(4)
    width, n_ch, n_spk = 40, 6, 12
    shape = np.exp(-0.5 * ((np.arange(width) - 12) / 3.0) ** 2)
    truth = np.zeros((n_ch, width))
    truth[0] = -10 * shape  # the unit's own footprint: channels 0-1 only
    truth[1] = -4 * shape
    src = rng.standard_normal((n_spk * 200, n_ch)).astype(np.float32)
    t = 100 + 200 * np.arange(n_spk)
    for ti in t:
        src[ti:ti + width] += truth.T
    for ti in t[:2]:  # a 40-noise-unit neighbour spike on channel 4 in two windows of twelve
        src[ti + 5:ti + 5 + width, 4] += -40 * shape
    rows = np.array([[0, 1, 2, 3, 4, 5]], np.int32)
    plain = _accumulate(src, 0, 0, width, _spikes(t, [0] * n_spk), rows)
    robust = _accumulate(src, 0, 0, width, _spikes(t, [0] * n_spk), rows, clip=3.0)
    assert plain["count"][0] == robust["count"][0] == n_spk
    mean_plain = plain["sum"][0] / n_spk
    mean_robust = robust["sum"][0] / n_spk
    assert np.abs(mean_plain[4]).max() > 5.0  # the neighbour bends the plain mean by ~6.7
    assert np.abs(mean_robust[4]).max() < 1.5  # clipped: at most 2 x 3 / 12 plus noise
    # the unit's own rows are kept (the median is a fair reference for clean windows)
    assert np.abs(mean_robust[0] - truth[0]).max() < 1.2
    assert np.abs(mean_robust[1] - truth[1]).max() < 1.2


def test_robust_rebuild_sum_is_the_plain_sum_for_few_spikes_or_clip_0():
    from offline.sort.matching import CLIP_MIN_SPIKES, _accumulate

    rng = np.random.default_rng(5)
    src = rng.standard_normal((2000, 3)).astype(np.float32)
    rows = np.array([[0, 1, 2]], np.int32)
    few = _spikes(100 + 300 * np.arange(CLIP_MIN_SPIKES - 1), [0] * (CLIP_MIN_SPIKES - 1))
    a = _accumulate(src, 0, 0, 30, few, rows)
    b = _accumulate(src, 0, 0, 30, few, rows, clip=0.5)
    np.testing.assert_array_equal(a["sum"], b["sum"])
    many = _spikes(100 + 300 * np.arange(6), [0] * 6)
    c = _accumulate(src, 0, 0, 30, many, rows)
    d = _accumulate(src, 0, 0, 30, many, rows, clip=0.0)
    np.testing.assert_array_equal(c["sum"], d["sum"])
    e = _accumulate(src, 0, 0, 30, many, rows, clip=0.5)
    assert not np.array_equal(c["sum"], e["sum"])  # unit noise is clipped at 0.5


def test_split_fallback_finds_the_smaller_cell_the_trimming_leaves_out():
    """dense64 tuning seed 3: a 51 µV cell's 61 snippets shared a cluster with 261 of a busier
    71 µV cell; the trimmed 2-means (``split_core`` 0.8) starts from the 80 % nearest the median,
    which is the busy cell alone, and finds no dip. The fallback tests all the snippets."""
    for seed in range(4):
        x, members, rng = _busy_cell_with_a_minority(seed)
        trimmed = split_bimodal(x, members, 25, 0.5, rng, core=0.8, fisher=True)
        assert len(trimmed) == 1
        parts = split_bimodal(x, members, 25, 0.5, rng, core=0.8, fisher=True, fallback=True)
        assert len(parts) >= 2
        big = max(parts, key=len)
        assert len(big) >= 255 and (big < 260).mean() >= 0.99  # the busy cell stays whole
        for p in parts:
            if p is not big:
                assert (p >= 260).mean() >= 0.95  # the other parts are the smaller cell's


def test_clusters_do_not_depend_on_how_the_channels_are_grouped_into_tasks():
    """The pipeline clusters groups of peak channels as parallel tasks: any grouping gives the
    clusters of one whole-subsample call, in its order (each channel draws from its own
    generator, also when it has more than max_events_per_channel snippets)."""
    from offline.sort.cluster import channel_groups, cluster_task, clusters_of_tasks

    rng = np.random.default_rng(5)
    n_ch, rows, width = 6, 3, 20
    shapes = rng.standard_normal((n_ch, 2, rows, width)) * 4
    parts, chans = [], []
    for ch in range(n_ch):
        n = 60 + 50 * ch  # channel 5: 310 snippets, over the cap below
        unit = rng.integers(0, 2, n)
        parts.append(shapes[ch, unit] + rng.standard_normal((n, rows, width)))
        chans += [ch] * n
    order = rng.permutation(len(chans))  # channels interleaved, as chunks deliver them
    snippets = np.concatenate(parts).astype(np.float32)[order]
    snippet_c = np.asarray(chans, np.int32)[order]
    snip_nb = (np.arange(0, rows * n_ch + 1, rows, dtype=np.int32),
               np.zeros(rows * n_ch, np.int32))
    s = replace(SortSettings(), max_events_per_channel=250)
    whole = cluster_snippets(snippets, snippet_c, snip_nb, s, 7)
    assert len(whole) >= n_ch  # two units a channel, mostly split
    for k in (1, 2, 4, 8):
        groups = channel_groups(snippet_c, k)
        assert sorted(np.concatenate(groups).tolist()) == list(range(n_ch))
        results = []
        for g in groups:
            r = np.flatnonzero(np.isin(snippet_c, g))
            results.append(cluster_task(snippets[r], snippet_c[r], r, snip_nb, s, 7))
        tasks = clusters_of_tasks(results)
        assert [c.channel for c in tasks] == [c.channel for c in whole]
        for a, b in zip(tasks, whole, strict=True):
            np.testing.assert_array_equal(a.members, b.members)
    other = cluster_snippets(snippets, snippet_c, snip_nb, s, 8)  # the seed does act
    assert any(len(a.members) != len(b.members) or np.any(a.members != b.members)
               for a, b in zip(other, whole, strict=False)) or len(other) != len(whole)
