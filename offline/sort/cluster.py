"""Clustering of event snippets: PCA per peak-channel neighbourhood, then HDBSCAN.

As the seed's spyke did (its "/" split), events are first split by peak channel; the events of
one channel share one channel set (that channel's neighbourhood), so their snippets are directly
comparable. Each group is reduced by PCA (SVD of the centred, flattened snippets) to
``pca_components`` dimensions and clustered by scikit-learn's HDBSCAN (density-based: the
number of units is not given, sparse events stay unassigned as noise, label -1). A unit seen
on two adjacent peak channels gives two clusters; :mod:`offline.sort.templates` merges them.

The input is the *random, temporally unbiased* subsample drawn per chunk by the detection
task (the seed insisted on random sampling: the first minutes are not the whole recording).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Cluster:
    channel: int  # the peak channel whose neighbourhood the snippets cover
    members: np.ndarray  # indices into the subsample


def pca_features(x: np.ndarray, n_components: int) -> np.ndarray:
    """(n, d) -> (n, k) principal-component scores, k = min(n_components, n - 1, d).
    Component signs are arbitrary (clustering does not care)."""
    x = x - x.mean(axis=0, keepdims=True)
    k = max(1, min(n_components, x.shape[0] - 1, x.shape[1]))
    # eigenvectors of the (d, d) scatter matrix: much cheaper than an SVD of (n, d) here
    _, vecs = np.linalg.eigh(x.T @ x)
    return x @ vecs[:, ::-1][:, :k]


def cluster_snippets(snippets, snippet_c, snip_nb, settings, rng) -> list[Cluster]:
    """Clusters of the subsample.

    snippets : (n, K, W) float32 noise units, rows = neighbourhood of the event's channel.
    snippet_c : (n,) int32 peak channel. snip_nb : CSR neighbourhoods.
    """
    from sklearn.cluster import HDBSCAN

    nb_ptr = snip_nb[0]
    clusters = []
    for ch in np.unique(snippet_c):
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
        for lab in np.unique(labels):
            if lab >= 0:
                clusters.append(Cluster(int(ch), idx[labels == lab]))
    return clusters
