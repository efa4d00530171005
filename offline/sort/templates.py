"""Templates: mean waveforms of clusters, merged when near-identical, in matching layout.

A :class:`TemplateSet` holds, per unit ``u``, a waveform on up to K channels
(``waveforms[u, k]`` is channel ``channels[u, k]``, -1 = unused row), W samples with sample
``pre`` at the spike's peak, in **noise units** (µV / noise_uv of the channel). This is the
layout :func:`oe_plugin.kernels.match.match_events` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oe_plugin.kernels.candidates import MIN_FRACTION, candidates
from offline.sort.cluster import Cluster, bimodal_cut, fisher_direction, pca_features
from offline.sort.sortfile import dense_templates


@dataclass
class TemplateSet:
    waveforms: np.ndarray  # (U, K, W) float32, noise units
    channels: np.ndarray  # (U, K) int32, -1 unused
    peak_channel: np.ndarray  # (U,) int32
    n_members: np.ndarray  # (U,) int64 cluster size it was built from
    pre: int
    apart: np.ndarray | None = None  # (U, U) bool: pairs a merge test kept apart (never merged)

    @property
    def n_units(self) -> int:
        return int(self.waveforms.shape[0])

    def dense(self, n_channels: int, noise_uv: np.ndarray | None = None) -> np.ndarray:
        """(U, C, W) float32; in µV when ``noise_uv`` is given, else noise units."""
        out = dense_templates(self.waveforms, self.channels, n_channels, np.float32)
        if noise_uv is not None:
            out *= np.where(np.isfinite(noise_uv), noise_uv, 0)[None, :, None]
        return out

    def candidates(self, n_channels: int, min_fraction: float = MIN_FRACTION):
        """CSR lists (cand_ptr (C+1,), cand_idx) int32: the templates an event peaking on
        channel c may belong to (the rule shared with the online sorter,
        :func:`oe_plugin.kernels.candidates.candidates`)."""
        return candidates(self.waveforms, self.channels, n_channels, min_fraction)


def build_templates(clusters: list[Cluster], snippets, snip_nb, n_channels, pre,
                    merge_distance, max_shift, merge_test_trough: float = 0.0,
                    fisher_components: int = 0) -> TemplateSet:
    """Mean waveform per cluster, then merge near-identical ones (see :func:`merge_dense`).

    ``merge_test_trough`` > 0: two templates closer than ``merge_distance`` are still kept apart
    when their clusters' snippets, projected on the line between the two means, form two modes
    (:func:`offline.sort.cluster.bimodal_cut`, the split test's criterion): two units at one
    place whose waveforms differ by ~10 % in size are near-identical *means*, but their spikes
    form two clouds; a unit split in two by peak jitter forms one.

    ``fisher_components`` > 0: the two clouds are looked for along the two sides' Fisher
    direction in the pooled snippets' top principal components (this many), not along the line
    between the means (see :func:`_two_clouds`)."""
    nb_ptr, nb_idx = snip_nb
    k_max = int(np.diff(nb_ptr).max())
    width = snippets.shape[2]
    dense = np.zeros((len(clusters), n_channels, width), np.float64)
    known = np.zeros((len(clusters), n_channels), bool)
    counts = np.zeros(len(clusters), np.int64)
    for i, cl in enumerate(clusters):
        rows = nb_idx[nb_ptr[cl.channel] : nb_ptr[cl.channel + 1]]
        dense[i, rows] = snippets[cl.members, : len(rows)].mean(axis=0)
        known[i, rows] = True
        counts[i] = len(cl.members)
    separable = None
    if merge_test_trough > 0:
        def separable(group_u, group_v, shift):
            return _two_clouds(clusters, snippets, snip_nb, group_u, group_v, shift,
                               merge_test_trough, fisher_components)
    dense, known, counts, apart = merge_dense(dense, known, counts, merge_distance, max_shift,
                                              separable=separable)
    return _to_rows(dense, known, counts, k_max, pre, apart)


MERGE_TEST_MAX = 1000  # snippets per side in the merge test (a random-free, even subsample)


def _two_clouds(clusters, snippets, snip_nb, group_u, group_v, shift, trough,
                fisher_components: int = 0) -> bool:
    """Whether the snippets of clusters ``group_u`` and ``group_v`` (indices into ``clusters``)
    form two modes along the line between their means, on the channels every one of those
    clusters' neighbourhoods holds (``group_v``'s aligned by ``shift`` samples, as in
    :func:`template_distance`).

    ``fisher_components`` > 0: along the two sides' Fisher direction
    (:func:`offline.sort.cluster.fisher_direction`) in the top ``fisher_components`` principal
    components of both sides' snippets together. Two cells at one site with ~100 µV spikes
    whose means differ by less than ``merge_distance`` (dense64 tuning seed 3: 95 and 99 µV,
    5 µm apart) overlap on the line between the means, whose noise is stretched along other
    directions, but not across the stretch; the few components keep the direction from fitting
    the noise of ~500-dimensional snippets (on the tuning seeds it kept apart fewer parts of one
    cell than the line does)."""
    nb_ptr, nb_idx = snip_nb
    hoods = [nb_idx[nb_ptr[clusters[i].channel]:nb_ptr[clusters[i].channel + 1]].tolist()
             for i in (*group_u, *group_v)]
    common = sorted(set(hoods[0]).intersection(*hoods[1:]))
    if not common:
        return False

    def side(group, hood_of):
        parts = []
        for i in group:
            rows = [hood_of[i].index(ch) for ch in common]
            parts.append(snippets[clusters[i].members][:, rows, :])
        x = np.concatenate(parts).astype(np.float64)
        step = max(1, len(x) // MERGE_TEST_MAX)
        return x[::step]

    hood_of = dict(zip((*group_u, *group_v), hoods, strict=True))
    xu, xv = side(group_u, hood_of), side(group_v, hood_of)
    if shift:
        ys = np.zeros_like(xv)
        if shift > 0:
            ys[:, :, : -shift] = xv[:, :, shift:]
        else:
            ys[:, :, -shift:] = xv[:, :, :shift]
        xv = ys
    x = np.concatenate([xu, xv]).reshape(len(xu) + len(xv), -1)
    if fisher_components > 0:
        x = pca_features(x, fisher_components)
        axis = fisher_direction(x[: len(xu)], x[len(xu):])
    else:
        axis = x[len(xu):].mean(axis=0) - x[: len(xu)].mean(axis=0)
    norm = float(np.linalg.norm(axis))
    if norm <= 0:
        return False
    axis = axis / norm
    mu = x[: len(xu)].mean(axis=0)
    far = float((x[len(xu):].mean(axis=0) - mu) @ axis)
    if far <= 0:
        return False
    return bimodal_cut((x - mu) @ axis, far, trough) is not None


def template_distance(a, b, ka, kb, max_shift):
    """min over shifts of |a - shift(b)|^2 / min(|a|^2, |b|^2) on their common channels."""
    common = ka & kb
    if not common.any():
        return np.inf, 0
    x, y = a[common], b[common]
    ex, ey = (x**2).sum(), (y**2).sum()
    if min(ex, ey) <= 0:
        return np.inf, 0
    best, best_s = np.inf, 0
    w = x.shape[1]
    for s in range(-max_shift, max_shift + 1):
        ys = np.zeros_like(y)
        if s >= 0:
            ys[:, : w - s] = y[:, s:]
        else:
            ys[:, -s:] = y[:, : w + s]
        d = ((x - ys) ** 2).sum() / min(ex, ey)
        if d < best:
            best, best_s = d, s
    return best, best_s


def merge_dense(dense, known, counts, merge_distance, max_shift, separable=None, apart=None):
    """Merge templates whose peak channels are known to each other and whose distance is below
    ``merge_distance``; repeated until nothing merges. The merged waveform is the count-weighted
    mean (per channel, over the templates that know it), the second aligned to the first.

    ``apart`` (n, n) bool: pairs never merged (and a merged template is kept apart from what
    either part was). ``separable(group_u, group_v, shift)``, given the input indices each side
    holds, may refuse a merge (the pair is then kept apart). Returns ``(dense, known, counts,
    apart)`` of the templates left."""
    dense, known, counts = dense.copy(), known.copy(), counts.copy()
    n = len(dense)
    apart = np.zeros((n, n), bool) if apart is None else np.asarray(apart, bool).copy()
    groups = {u: [u] for u in range(n)}
    alive = list(range(n))

    def peak(u):
        return int(np.argmax(np.abs(dense[u]).max(axis=1)))

    def distance(u, v):
        if apart[u, v] or not (known[v, peak(u)] and known[u, peak(v)]):
            return np.inf, 0
        return template_distance(dense[u], dense[v], known[u], known[v], max_shift)

    pairs = {(u, v): distance(u, v) for i, u in enumerate(alive) for v in alive[i + 1 :]}
    while pairs:
        (u, v), (d, s) = min(pairs.items(), key=lambda kv: kv[1][0])
        if d >= merge_distance:
            break
        if separable is not None and separable(groups[u], groups[v], s):
            apart[u, v] = apart[v, u] = True
            pairs[(u, v)] = (np.inf, 0)
            continue
        shifted = np.zeros_like(dense[v])
        w = dense.shape[2]
        if s >= 0:
            shifted[:, : w - s] = dense[v][:, s:]
        else:
            shifted[:, -s:] = dense[v][:, : w + s]
        wu = counts[u] * known[u][:, None]
        wv = counts[v] * known[v][:, None]
        total = np.maximum(wu + wv, 1)
        dense[u] = (dense[u] * wu + shifted * wv) / total
        known[u] |= known[v]
        counts[u] += counts[v]
        apart[u] |= apart[v]
        apart[:, u] |= apart[:, v]
        groups[u] += groups.pop(v)
        alive.remove(v)
        pairs = {k: val for k, val in pairs.items() if v not in k and u not in k}
        for x in alive:
            if x != u:
                pairs[(min(u, x), max(u, x))] = distance(min(u, x), max(u, x))
    return dense[alive], known[alive], counts[alive], apart[np.ix_(alive, alive)]


def _to_rows(dense, known, counts, k_max, pre, apart=None) -> TemplateSet:
    u_n, _, width = dense.shape
    waveforms = np.zeros((u_n, k_max, width), np.float32)
    channels = np.full((u_n, k_max), -1, np.int32)
    peak_channel = np.zeros(u_n, np.int32)
    for u in range(u_n):
        energy = np.where(known[u], (dense[u] ** 2).sum(axis=1), -1.0)
        top = np.sort(np.argsort(energy)[::-1][:k_max])
        top = top[energy[top] >= 0]
        channels[u, : len(top)] = top
        waveforms[u, : len(top)] = dense[u, top]
        peak_channel[u] = int(np.argmax(np.abs(dense[u]).max(axis=1)))
    order = np.lexsort((-counts, peak_channel))  # by peak channel, then size
    return TemplateSet(waveforms[order], channels[order], peak_channel[order],
                       counts[order].astype(np.int64), int(pre),
                       None if apart is None else apart[np.ix_(order, order)])


def rebuild_templates(templates: TemplateSet, wide_rows, sums, counts, n_channels,
                      min_spikes, row_min, merge_distance, max_shift,
                      max_change: float = 0.5) -> TemplateSet:
    """Templates re-estimated from matched spikes (``sums`` / ``counts`` over ``wide_rows``,
    see :func:`offline.sort.matching.match_chunk`), on every channel of ``wide_rows`` whose peak
    reaches ``row_min`` noise units (the unit's whole footprint, not just the clustering
    neighbourhood), then merged again below ``merge_distance`` (0: not merged; the pipeline's
    ``rebuild_merge`` setting).
    A template with fewer than ``min_spikes`` matched spikes, or whose new mean on its old rows
    differs from the old one by more than ``max_change`` (squared difference / old energy: its
    matches were dominated by something else), keeps its cluster mean."""
    u_n, k2 = wide_rows.shape
    width = templates.waveforms.shape[2]
    dense = np.zeros((u_n, n_channels, width), np.float64)
    known = np.zeros((u_n, n_channels), bool)
    n = np.asarray(templates.n_members, np.int64).copy()
    for u in range(u_n):
        rows = wide_rows[u]
        ok = rows >= 0
        mean = sums[u][ok] / max(int(counts[u]), 1)
        if counts[u] >= min_spikes and _change(templates, u, rows[ok], mean) <= max_change:
            strong = np.abs(mean).max(axis=1) >= row_min
            strong[np.argmax(np.abs(mean).max(axis=1))] = True
            dense[u, rows[ok][strong]] = mean[strong]
            known[u, rows[ok][strong]] = True
            n[u] = counts[u]
        else:
            ok = templates.channels[u] >= 0
            dense[u, templates.channels[u][ok]] = templates.waveforms[u][ok]
            known[u, templates.channels[u][ok]] = True
    apart = templates.apart
    if merge_distance > 0:  # (0: not even the pair distances)
        dense, known, n, apart = merge_dense(dense, known, n, merge_distance, max_shift,
                                             apart=apart)
    return _to_rows(dense, known, n, max(k2, templates.waveforms.shape[1]), templates.pre,
                    apart)


def _change(templates: TemplateSet, u, rows, mean) -> float:
    """|new - old|^2 / |old|^2 on the template's old rows."""
    pos = {int(ch): i for i, ch in enumerate(rows)}
    num = den = 0.0
    for k, ch in enumerate(templates.channels[u]):
        if ch < 0:
            continue
        old = templates.waveforms[u, k].astype(np.float64)
        new = mean[pos[int(ch)]] if int(ch) in pos else np.zeros_like(old)
        num += float(((new - old) ** 2).sum())
        den += float((old**2).sum())
    return num / den if den > 0 else np.inf


def wide_rows_of(templates: TemplateSet, wide_nb) -> np.ndarray:
    """(U, K2) int32: channels within the wide neighbourhood of each template's peak channel,
    plus its current rows (-1 padded)."""
    ptr, idx = wide_nb
    sets = [sorted(set(idx[ptr[p] : ptr[p + 1]].tolist())
                   | set(templates.channels[u][templates.channels[u] >= 0].tolist()))
            for u, p in enumerate(templates.peak_channel)]
    out = np.full((templates.n_units, max([len(s) for s in sets] or [1])), -1, np.int32)
    for u, s in enumerate(sets):
        out[u, : len(s)] = s
    return out
