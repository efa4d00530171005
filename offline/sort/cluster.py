"""Clustering of event snippets: PCA per peak-channel neighbourhood, then HDBSCAN.

As the seed's spyke did (its "/" split), events are first split by peak channel; the events of
one channel share one channel set (that channel's neighbourhood), so their snippets are directly
comparable. Each group is reduced by PCA (SVD of the centred, flattened snippets) to
``pca_components`` dimensions and clustered by scikit-learn's HDBSCAN (density-based: the
number of units is not given, sparse events stay unassigned as noise, label -1). A unit seen
on two adjacent peak channels gives two clusters; :mod:`offline.sort.templates` merges them.

HDBSCAN keeps two units together when their clouds touch (e.g. a small unit and a larger one
whose amplitude ratio differs only on some channels). Each cluster is therefore tested for a
**bimodal split** (:func:`split_bimodal`, as ISO-SPLIT does it): 2-means, projection onto the
line through the two centres (or, ``split_fisher``, on the halves' Fisher direction: two units
whose noise is stretched along another direction overlap on the centre line but not across the
stretch), split when the smoothed histogram of that projection has a trough below
``split_trough`` of the smaller of its two modes; recursively. Each test runs in the
cluster's **own** principal components (``split_pca_components`` of them, from its members'
snippets): the group's leading components describe how its *big* units differ, and two similar
units inside one cluster differ along directions those barely weigh (dense64 tuning seed 1: a
cluster holding three units within 25 µm of each other splits in its own 10 components, not in
the group's 6, nor in its own 10 taken within the group's first 30). A unit split in two
this way (its peak jitters between samples) gives two near-identical means, which
:func:`offline.sort.templates.merge_dense` joins again.

The input is the *random, temporally unbiased* subsample drawn per chunk by the detection
task (the seed insisted on random sampling: the first minutes are not the whole recording).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d


@dataclass
class Cluster:
    channel: int  # the peak channel whose neighbourhood the snippets cover
    members: np.ndarray  # indices into the subsample


def pca_features(x: np.ndarray, n_components: int) -> np.ndarray:
    """(n, d) -> (n, k) principal-component scores, k = min(n_components, n - 1, d).
    Component signs are arbitrary (clustering does not care)."""
    x = x - x.mean(axis=0, keepdims=True)
    k = max(1, min(n_components, x.shape[0] - 1, x.shape[1]))
    return x @ _top_eigenvectors(x.T @ x, k)


def _top_eigenvectors(scatter: np.ndarray, k: int) -> np.ndarray:
    """(d, k) eigenvectors of the k largest eigenvalues of a symmetric (d, d) matrix, largest
    first. Only those k are computed (LAPACK ``evr`` with an index range): for d ~ 650 (a
    12-channel neighbourhood x 54 samples) that is ~10x faster than the full decomposition."""
    from scipy.linalg import eigh

    d = scatter.shape[0]
    _, vecs = eigh(scatter, subset_by_index=[d - k, d - 1], driver="evr")
    return vecs[:, ::-1]


def cluster_snippets(snippets, snippet_c, snip_nb, settings, seed: int = 0) -> list[Cluster]:
    """Clusters of the subsample, in the order of their peak channels.

    snippets : (n, K, W) float32 noise units, rows = neighbourhood of the event's channel.
    snippet_c : (n,) int32 peak channel. snip_nb : CSR neighbourhoods.
    seed : each channel draws from its own generator, ``default_rng([seed, channel])``, so a
        channel's clusters do not depend on which other channels are clustered with it (the
        pipeline clusters groups of channels in parallel: :func:`cluster_task`).
    """
    from sklearn.cluster import HDBSCAN

    nb_ptr = snip_nb[0]
    clusters = []
    for ch in np.unique(snippet_c):
        rng = np.random.default_rng([int(seed), int(ch)])
        idx = np.flatnonzero(snippet_c == ch)
        if len(idx) > settings.max_events_per_channel:
            idx = np.sort(rng.choice(idx, settings.max_events_per_channel, replace=False))
        if len(idx) < settings.min_cluster_size:
            continue
        rows = int(nb_ptr[ch + 1] - nb_ptr[ch])
        x = snippets[idx, :rows, :].reshape(len(idx), -1).astype(np.float64)
        feats = pca_features(x, settings.pca_components)
        labels = HDBSCAN(
            min_cluster_size=settings.min_cluster_size,
            min_samples=min(settings.min_samples, settings.min_cluster_size),
            allow_single_cluster=True,
            copy=True,
        ).fit_predict(feats)
        labels = dense_root_cluster(labels, feats, settings.min_cluster_size,
                                    min(settings.min_samples, settings.min_cluster_size),
                                    settings.root_cluster_quantile)
        local = settings.split_pca_components
        by_size = x if local else feats
        by_shape = None
        if settings.split_shape:  # each snippet over its own norm
            by_shape = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
            if not local:
                by_shape = pca_features(by_shape, settings.pca_components)
        for lab in np.unique(labels):
            if lab < 0:
                continue
            members = np.flatnonzero(labels == lab)
            parts = split_bimodal(by_size, members, settings.min_cluster_size,
                                  settings.split_trough, rng, local_components=local,
                                  fisher=settings.split_fisher, core=settings.split_core,
                                  fallback=settings.split_core_fallback)
            if by_shape is not None:
                parts = [q for part in parts
                         for q in split_bimodal(by_shape, part, settings.min_cluster_size,
                                                settings.split_trough, rng,
                                                local_components=local,
                                                fisher=settings.split_fisher,
                                                core=settings.split_core,
                                                fallback=settings.split_core_fallback)]
            clusters.extend(Cluster(int(ch), idx[part]) for part in parts)
    return clusters


def cluster_task(snippets, snippet_c, index, snip_nb, settings, seed: int) -> dict:
    """:func:`cluster_snippets` of a part of the subsample (the snippets of some peak
    channels; ``index`` their rows in the whole), as a chunk-task result: ``channel`` (m,)
    int32, ``ptr`` (m + 1,) int64 and ``members`` (rows of the whole subsample), cluster ``i``
    being ``members[ptr[i]:ptr[i + 1]]``. One BLAS thread (the decompositions are small, and a
    threaded BLAS on a busy machine spins instead of computing)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        found = cluster_snippets(snippets, snippet_c, snip_nb, settings, seed)
    sizes = [len(c.members) for c in found]
    return {"channel": np.array([c.channel for c in found], np.int32),
            "ptr": np.r_[0, np.cumsum(sizes)].astype(np.int64),
            "members": (np.concatenate([np.asarray(index)[c.members] for c in found])
                        if found else np.zeros(0, np.int64)).astype(np.int64)}


def channel_groups(snippet_c, n_groups: int) -> list[np.ndarray]:
    """The peak channels of the subsample in ``n_groups`` (or fewer) groups of about equal
    clustering work (a channel of n snippets counted as n^1.5: HDBSCAN and the splits grow
    faster than linearly), largest channels placed first; each group's channels ascending."""
    chans, counts = np.unique(snippet_c, return_counts=True)
    n_groups = max(1, min(int(n_groups), len(chans)))
    load = np.zeros(n_groups)
    groups = [[] for _ in range(n_groups)]
    for i in np.argsort(-counts, kind="stable"):
        g = int(np.argmin(load))
        groups[g].append(int(chans[i]))
        load[g] += float(counts[i]) ** 1.5
    return [np.array(sorted(g), np.int32) for g in groups if g]


def clusters_of_tasks(results: list[dict]) -> list[Cluster]:
    """The clusters of :func:`cluster_task` results, ordered by peak channel as
    :func:`cluster_snippets` orders them for the whole subsample."""
    found = [Cluster(int(r["channel"][i]), r["members"][r["ptr"][i]:r["ptr"][i + 1]])
             for r in results for i in range(len(r["channel"]))]
    return sorted(found, key=lambda c: c.channel)  # stable: a channel's own order is kept


def dense_root_cluster(labels, feats, min_size, min_samples, quantile):
    """HDBSCAN's labels with its root cluster's dense part made members.

    With ``allow_single_cluster``, when HDBSCAN keeps the root of its condensed tree (it found
    no two clusters worth more than the whole), it labels only the points still in the root
    when it shrinks below ``min_size``: about ``min_size`` of the densest points, the rest
    noise. On a channel of two ~90 µV cells (dense64 seed 6) that left 25 of 815 snippets, a
    mixture of both, and one template for the two. Such a labelling (one cluster of fewer than
    ``2 * min_size`` among at least ``4 * min_size`` points) is taken as the root: the points
    whose distance to their ``min_samples``-th neighbour in ``feats`` (HDBSCAN's core distance)
    is within the ``quantile`` of all become its members, for :func:`split_bimodal` to divide;
    the sparse rest (mostly snippets holding a second spike) stays noise, as it would beside
    clusters HDBSCAN selects. ``quantile`` 0: the labels as given."""
    from sklearn.neighbors import NearestNeighbors

    found = labels >= 0
    if quantile <= 0 or len(labels) < 4 * min_size or not found.any():
        return labels
    if np.unique(labels[found]).size > 1 or found.sum() >= 2 * min_size:
        return labels
    k = min(min_samples + 1, len(labels))
    core = NearestNeighbors(n_neighbors=k).fit(feats).kneighbors(feats)[0][:, -1]
    return np.where(core <= np.quantile(core, quantile), 0, -1)


def split_bimodal(feats, members, min_size, trough, rng, depth=3,
                  local_components=0, fisher=False, core=0.0,
                  fallback=False) -> list[np.ndarray]:
    """``members`` (indices into ``feats`` (n, d)) split into unimodal parts (see the module
    doc). ``local_components`` > 0: each test (at every depth) runs in the top principal
    components of the members being tested, not in ``feats`` as given. ``fisher``: the test
    projects on the 2-means halves' Fisher direction (their pooled covariance's inverse times
    the line between the centres) instead of that line itself. ``core`` > 0: the halves are
    looked for among the points nearest the median (:func:`_two_means_trimmed`); with
    ``fallback``, a cluster that shows no dip so is tested again on all its points (a pair of
    cells whose smaller one is the ~20 % the trimming leaves out)."""
    if trough <= 0 or depth == 0 or len(members) < 2 * min_size:
        return [members]
    x = feats[members]
    if local_components > 0:
        x = pca_features(x, local_components)
    proj, cut = _split_cut(x, trough, fisher, core)
    if cut is None and core > 0 and fallback:
        proj, cut = _split_cut(x, trough, fisher, 0.0)
    if cut is None:
        return [members]
    left, right = members[proj < cut], members[proj >= cut]
    if len(left) < min_size or len(right) < min_size:
        return [members]
    return (split_bimodal(feats, left, min_size, trough, rng, depth - 1, local_components,
                          fisher, core, fallback)
            + split_bimodal(feats, right, min_size, trough, rng, depth - 1, local_components,
                            fisher, core, fallback))


def _split_cut(x, trough, fisher, core):
    """The projection of ``x`` (n, d) on the split axis of its (trimmed) 2-means halves, and
    the cut at its histogram dip (None: unimodal)."""
    centres, inner = _two_means_trimmed(x, core)
    axis = centres[1] - centres[0]
    if fisher:
        axis = _fisher_axis(x[inner], centres)
    norm = np.linalg.norm(axis)
    if norm <= 0:
        return None, None
    axis = axis / norm
    proj = (x - centres[0]) @ axis  # centre 0 at 0, centre 1 at far
    far = float((centres[1] - centres[0]) @ axis)
    return proj, bimodal_cut(proj[inner], far, trough)


def core_points(x, quantile) -> np.ndarray:
    """Mask of the points of ``x`` (n, d) within the ``quantile`` of distances from their
    coordinate-wise median (all of them for ``quantile`` 0 or 1): where
    :func:`_two_means_trimmed` starts."""
    if quantile <= 0 or quantile >= 1:
        return np.ones(len(x), bool)
    d = np.linalg.norm(x - np.median(x, axis=0), axis=1)
    return d <= np.quantile(d, quantile)


def _fisher_axis(x, centres) -> np.ndarray:
    """:func:`fisher_direction` of the two 2-means halves of ``x`` (n, d), the halves being the
    points nearer either centre."""
    side = ((x - centres[1]) ** 2).sum(axis=1) < ((x - centres[0]) ** 2).sum(axis=1)
    return fisher_direction(x[~side], x[side], centres[1] - centres[0])


def fisher_direction(a, b, delta=None) -> np.ndarray:
    """``Sw^-1 (mean(b) - mean(a))`` for two point sets (n_a, d) and (n_b, d): Sw the summed
    covariance of the two (regularised by 1e-6 of its mean variance), the direction along which
    the two sets overlap least relative to their spread. The plain line between the means when
    a set has too few points (<= d) for a covariance. ``delta``: the line to use instead of the
    difference of the means (the 2-means centres)."""
    if delta is None:
        delta = b.mean(axis=0) - a.mean(axis=0)
    d = a.shape[1]
    if len(a) <= d or len(b) <= d:
        return delta
    sw = np.cov(a.T).reshape(d, d) + np.cov(b.T).reshape(d, d)
    ridge = 1e-6 * max(float(np.trace(sw)) / d, 1e-12)
    return np.linalg.solve(sw + ridge * np.eye(d), delta)


def bimodal_cut(proj, far, trough) -> float | None:
    """Where to cut a 1-d projection whose two centres sit at 0 and ``far`` > 0: the lowest
    point of its smoothed histogram between them, when it is below ``trough`` x the smaller of
    the modes on either side; None when the projection is unimodal there."""
    lo, hi = np.percentile(proj, [1, 99])
    if hi - lo <= 0:
        return None
    bins = int(np.clip(np.sqrt(len(proj)), 15, 60))
    hist, edges = np.histogram(proj, bins=bins, range=(lo, hi))
    h = gaussian_filter1d(hist.astype(np.float64), 1.0)
    a, b = np.searchsorted(edges, [0.0, far]) - 1
    a, b = int(np.clip(a, 0, bins - 1)), int(np.clip(b, 0, bins - 1))
    if b - a < 2:
        return None
    m = a + int(np.argmin(h[a : b + 1]))
    if h[m] >= trough * min(h[: m + 1].max(), h[m:].max()):
        return None
    return float(0.5 * (edges[m] + edges[m + 1]))


def _two_means_trimmed(x, keep, iterations=30):
    """Trimmed 2-means (Cuesta-Albertos, Gordaliza & Matrán 1997): ``((2, d) centres, (n,)
    bool kept)``; each Lloyd step uses only the ``keep`` fraction of points nearest their
    centre, so points far from both (snippets holding a second spike) pull neither. Started
    from the 2-means of the points within ``keep`` of the median (:func:`core_points`); a
    small cell far from the median is then kept again once a centre sits on it. ``keep`` 0 or
    1: plain :func:`_two_means`, every point kept.

    In a dense recording a cluster's snippets have a heavy tail of overlaps (another spike in
    the window: 5 % of dense64 seed 6's snippets on one channel at twice the median norm), and
    2-means on all of them cuts a neighbour's overlaps off instead of the two cells (a 253 + 51
    pair whose means differ by 4 SDs along their line: split by the trimmed centres, 252 / 49).
    """
    if keep <= 0 or keep >= 1:
        return _two_means(x, iterations), np.ones(len(x), bool)
    kept = core_points(x, keep)
    centres = _two_means(x[kept], iterations)
    for _ in range(iterations):
        d0 = ((x - centres[0]) ** 2).sum(axis=1)
        d1 = ((x - centres[1]) ** 2).sum(axis=1)
        side = d1 < d0
        near = np.minimum(d0, d1)
        now = near <= np.quantile(near, keep)
        if not (now & side).any() or not (now & ~side).any():
            break
        new = np.stack([x[now & ~side].mean(axis=0), x[now & side].mean(axis=0)])
        kept = now
        if np.allclose(new, centres):
            break
        centres = new
    return centres, kept


def _two_means(x, iterations=20) -> np.ndarray:
    """(2, d) centres of 2-means (Lloyd), started from the halves of the first principal axis
    (deterministic; cheaper than scikit-learn's KMeans for these small groups)."""
    c = x - x.mean(axis=0)
    p = c @ _top_eigenvectors(c.T @ c, 1)[:, 0]
    side = p > np.median(p)
    centres = np.zeros((2, x.shape[1]))
    for _ in range(iterations):
        if side.all() or not side.any():
            break
        centres[0], centres[1] = x[~side].mean(axis=0), x[side].mean(axis=0)
        new = ((x - centres[1]) ** 2).sum(axis=1) < ((x - centres[0]) ** 2).sum(axis=1)
        if np.array_equal(new, side):
            break
        side = new
    return centres
