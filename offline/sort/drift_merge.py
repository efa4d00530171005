"""Units split in time by probe drift, joined after matching.

When motion correction leaves part of the drift, a unit's waveform on the probe changes as it
moves and clustering gives it a template per drift phase: several units with similar waveforms
on nearby channels that **take turns** in time (one fires while the other is silent) and never
fire within a refractory period of each other. Measured on the tuning seeds of the drifting
benchmark cases (mono64, zigzag64, nonrigid64 seeds 1–2): such pairs had time profiles
overlapping by 0.03–0.16 (below), shape distances 0.13–0.84 and no coincidences within 1 ms;
pairs of different cells overlapped by 0.5–0.9 except a few (0.09–0.28, with larger shape
distances or coincidences).

Candidates are unit pairs whose peak channels are within ``RADIUS_UM``, each with at least
``MIN_SPIKES`` spikes, whose templates are within ``max_distance`` (``|x - y|^2 /
min(|x|^2, |y|^2)`` at the best of ±``MAX_SHIFT`` samples; the template merge's distance). They
are tried from the most similar up, **as groups** (a join is tested between everything joined so
far on either side):

* **time profiles** (spike counts in ``BIN_S`` bins, each normalised to sum 1): overlap
  ``sum(min(p, q))`` at most ``max_overlap`` (1 = the same profile, 0 = never at the same time);
* **refractory**: spikes of one group within ``REFRACTORY_MS`` of the other's are fewer than
  half the chance count + ``REFRACTORY_SLACK``.

Only sorts that corrected motion use it (:mod:`offline.sort.pipeline`): on a still probe, two
cells with similar waveforms that answer different stimulus blocks would also take turns.

**At the probe's ends** the shape test is loosened (``end_max_distance``, the setting
``drift_merge_end_max_distance``, for pairs whose peak channels both lie within ``END_UM`` of
the same end). There the corrected traces of a cell read the field beyond the last contact in
part of the drift cycle (masked in matching, extrapolated in the templates), so its drift-phase
templates differ far more than inside the probe. On the drifting tuning seeds (mono64,
zigzag64, nonrigid64 seeds 1-2, each join checked against the ground truth) with no distance
limit at all, every join of two templates further apart than ``max_distance`` (0.76-3.26) was
such an end pair of one cell, and one join mixed a cell with a noise unit, at 7.47; hence 4.
"""

from __future__ import annotations

import numpy as np

from offline.sort.templates import template_distance

RADIUS_UM = 60.0
END_UM = 40.0
MIN_SPIKES = 20
MAX_SHIFT = 3
BIN_S = 5.0
REFRACTORY_MS = 1.0
REFRACTORY_SLACK = 0.001


def shape_distance(x: np.ndarray, y: np.ndarray, max_shift: int = MAX_SHIFT) -> float:
    """min over shifts ``s`` in ±max_shift of ``|x - shift(y, s)|^2 / min(|x|^2, |y|^2)``;
    x, y (C, W) dense templates (the template merge's distance on every channel)."""
    every = np.ones(x.shape[0], bool)
    return float(template_distance(x, y, every, every, max_shift)[0])


def profile_overlap(p: np.ndarray, q: np.ndarray) -> float:
    """``sum(min(p / sum p, q / sum q))``: 1 for the same time profile, 0 for disjoint ones."""
    sp, sq = float(p.sum()), float(q.sum())
    if sp <= 0 or sq <= 0:
        return 0.0
    return float(np.minimum(p / sp, q / sq).sum())


def coincidences(a: np.ndarray, b: np.ndarray, sample_rate_hz: float,
                 duration_s: float) -> tuple[float, float]:
    """(fraction of ``b``'s spikes within REFRACTORY_MS of one of ``a``'s, its chance value);
    sorted sample indices."""
    if len(a) == 0 or len(b) == 0:
        return 0.0, 0.0
    j = np.searchsorted(a, b)
    near = np.full(len(b), np.inf)
    for jj in (j - 1, j):
        ok = (jj >= 0) & (jj < len(a))
        near[ok] = np.minimum(near[ok], np.abs(a[jj[ok]] - b[ok]))
    frac = float(np.mean(near / sample_rate_hz * 1e3 < REFRACTORY_MS))
    return frac, len(a) / max(duration_s, 1e-9) * 2 * REFRACTORY_MS * 1e-3


def drift_groups(t: np.ndarray, unit: np.ndarray, dense: np.ndarray, peak_pos_um: np.ndarray,
                 sample_rate_hz: float, duration_s: float, max_distance: float,
                 max_overlap: float, refractory_ratio: float = 0.5,
                 refractory_slack: float = REFRACTORY_SLACK,
                 min_expected: float = 0.0, end_depths_um: tuple[float, float] | None = None,
                 end_max_distance: float = 0.0) -> np.ndarray:
    """(U,) int: the group of each unit (the smallest unit index in it; units alone keep their
    own), joining units split in time (module docstring).

    t (N,) int64 spike sample indices; unit (N,) int32 unit of each spike (-1 unsorted);
    dense (U, C, W) templates on every channel (any one scale); peak_pos_um (U, 2).
    The refractory test: coincidences at most ``refractory_ratio`` x the chance count +
    ``refractory_slack`` (fractions of the smaller group's spikes), and only for pairs whose
    chance count is at least ``min_expected`` spikes (else no join: too few to tell);
    ``max_overlap`` 1 switches the time-profile test off (:func:`split_groups`).
    ``end_depths_um`` (the probe's first and last contact depths) with ``end_max_distance``: a
    pair whose peak channels both lie within ``END_UM`` of the same end may be up to
    ``end_max_distance`` apart (see the module doc, "At the probe's ends")."""
    n_u = dense.shape[0]
    group = np.arange(n_u)
    if n_u < 2 or max_distance <= 0:
        return group
    trains = [np.sort(t[unit == u]).astype(np.int64) for u in range(n_u)]
    edges = np.arange(0.0, duration_s + BIN_S, BIN_S)
    profile = np.array([np.histogram(tr / sample_rate_hz, edges)[0] for tr in trains], float)
    pairs = []
    for x in range(n_u):
        if len(trains[x]) < MIN_SPIKES:
            continue
        for y in range(x + 1, n_u):
            if (len(trains[y]) < MIN_SPIKES
                    or np.linalg.norm(peak_pos_um[x] - peak_pos_um[y]) > RADIUS_UM):
                continue
            d = shape_distance(dense[x], dense[y])
            if d <= max_distance or (d <= end_max_distance
                                     and _same_end(peak_pos_um[x], peak_pos_um[y], end_depths_um)):
                pairs.append((d, x, y))
    members = {u: [u] for u in range(n_u)}
    for _, x, y in sorted(pairs):
        gx, gy = group[x], group[y]
        if gx == gy:
            continue
        if profile_overlap(profile[members[gx]].sum(0), profile[members[gy]].sum(0)) \
                > max_overlap:
            continue
        a = np.sort(np.concatenate([trains[u] for u in members[gx]]))
        b = np.sort(np.concatenate([trains[u] for u in members[gy]]))
        frac, chance = coincidences(a, b, sample_rate_hz, duration_s)
        if chance * len(b) < min_expected or frac > refractory_ratio * chance + refractory_slack:
            continue
        keep, gone = min(gx, gy), max(gx, gy)
        for u in members[gone]:
            group[u] = keep
        members[keep] += members.pop(gone)
    return group


def _same_end(a_um, b_um, end_depths_um) -> bool:
    """Both peak positions within ``END_UM`` (in depth) of the same end of the probe."""
    if end_depths_um is None:
        return False
    return any(abs(a_um[1] - e) <= END_UM and abs(b_um[1] - e) <= END_UM for e in end_depths_um)


SPLIT_REFRACTORY_RATIO = 0.2
SPLIT_MIN_EXPECTED = 2.0


def split_groups(t: np.ndarray, unit: np.ndarray, dense: np.ndarray, peak_pos_um: np.ndarray,
                 sample_rate_hz: float, duration_s: float, max_distance: float) -> np.ndarray:
    """(U,) int groups as :func:`drift_groups`, for **one cell in two templates** on any probe:
    near-identical templates (distance <= ``max_distance``, the template merge's) whose spikes
    almost never fall within ``REFRACTORY_MS`` of each other (at most ``SPLIT_REFRACTORY_RATIO``
    of chance, no slack) while chance would give at least ``SPLIT_MIN_EXPECTED`` such spikes.

    The merge test (``[sort] merge_test_trough``) keeps apart two clusters whose snippets form
    two modes; that separates two cells at one site, but also the two modes of one cell (a cell
    between contacts, bursts). After matching the spike trains tell them apart: on the tuning
    seeds, such single-cell pairs had 0 coincidences where chance gave 2.9-11, pairs of
    distinct cells 44-92 % of chance (the matching recovers most overlaps)."""
    return drift_groups(t, unit, dense, peak_pos_um, sample_rate_hz, duration_s, max_distance,
                        max_overlap=1.0, refractory_ratio=SPLIT_REFRACTORY_RATIO,
                        refractory_slack=0.0, min_expected=SPLIT_MIN_EXPECTED)
