"""pynapple interop: Sort.to_tsgroup / Experiment.to_intervalset round trip against our tuning.

A synthetic experiment on the sample clock (30 kHz, 200 Hz display: 150 samples a refresh):
drifting-grating directions in shuffled runs with blanks, refreshes cut into presentations by
the model itself, and a direction-tuned unit whose spikes are sample numbers (as every sort's
are), including spikes put exactly on presentation edges, where a closed pynapple interval and
our half-open window could disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from oe_plugin.protocol.spec import SWEEP_NONE
from offline.analysis.adapters import SortData
from offline.analysis.fits import von_mises_direction
from offline.analysis.interop import to_intervalset, to_tsgroup
from offline.analysis.model import Experiment, Sort
from offline.analysis.psth import spikes_in_windows
from offline.analysis.tuning import compute_tuning

FS = 30000.0
REFRESH_HZ = 200.0
SPR = int(FS / REFRESH_HZ)  # samples per refresh (150)
SWEEP_FRAMES = 100  # 0.5 s
FIRST = 12345
PREF = 120.0
DIRS = np.arange(0, 360, 30.0)


@pytest.fixture
def nap():
    # pynapple is in the test extra (a plain import: a missing extra fails, never skips); the
    # ImportError test needs no pynapple
    import pynapple

    return pynapple


def _refresh_dtype():
    return np.dtype([("sample_number", "<i8"), ("frame_number", "<i8"), ("sweep_index", "<i4"),
                     ("flags", "<u4")])


def make_experiment(seed: int = 0, jitter: bool = False, n_runs: int = 6,
                    edge_spikes: bool = False):
    """(Sort, Experiment, truth): refreshes on a 150-sample grid (+-1 sample TTL jitter when
    ``jitter``), presentations of SWEEP_FRAMES refreshes, a blank after every 5th sweep.
    ``edge_spikes``: unit 7 also fires exactly on every presentation's edges."""
    rng = np.random.default_rng(seed)
    conditions = [dict(ori_deg=float(d), contrast=1.0, sweep_s=SWEEP_FRAMES / REFRESH_HZ,
                       postsweep_s=0.0) for d in DIRS]
    order = []
    for _ in range(n_runs):
        for k, c in enumerate(rng.permutation(len(DIRS))):
            order.append(int(c))
            if k % 5 == 4:
                order.append(SWEEP_NONE)
    codes = np.repeat(np.array(order, np.int64), SWEEP_FRAMES)
    n = codes.size
    samples = FIRST + 3000 + np.arange(n, dtype=np.int64) * SPR
    if jitter:
        samples = samples + rng.integers(-1, 2, n)
    refreshes = np.zeros(n, _refresh_dtype())
    refreshes["sample_number"] = samples
    refreshes["frame_number"] = np.arange(n)
    refreshes["sweep_index"] = codes
    session = {"path": Path("synthetic.session.json"), "conditions": conditions,
               "refresh_hz": REFRESH_HZ, "blank_s": SWEEP_FRAMES / REFRESH_HZ,
               "stimulus": "grating"}
    exp = Experiment(None, 0, session, refreshes, FS)

    # unit 7: direction tuned, spikes drawn per refresh on screen one refresh after its TTL edge
    ori = np.array([conditions[c]["ori_deg"] if c != SWEEP_NONE else np.nan for c in codes])
    rate = np.where(np.isnan(ori), 4.0,
                    von_mises_direction(np.nan_to_num(ori), 4.0, 50.0, 15.0, 2.5, PREF))
    k = rng.poisson(rate / REFRESH_HZ)
    onscreen = samples + SPR
    u7 = np.repeat(onscreen, k) + rng.integers(0, SPR, k.sum())
    pres = exp.presentations()
    edges_on = np.round(pres.onset_s * FS).astype(np.int64)
    edges_off = np.round(pres.offset_s * FS).astype(np.int64)
    if edge_spikes:
        # a spike exactly on every presentation's first on-screen sample and one exactly on the
        # sample after its last refresh (the next presentation's onset, or the end)
        u7 = np.concatenate([u7, edges_on, edges_off])
    else:
        u7 = u7[~np.isin(u7, np.r_[edges_on, edges_off])]
    u7 = np.unique(u7)
    u3 = np.unique(rng.integers(FIRST, samples[-1] + 2 * SPR, 3000))  # untuned, ~10 Hz
    n_samples = int(samples[-1] + 2 * SPR + 3000 - FIRST)
    pos = np.column_stack([np.zeros(4), np.arange(4) * 25.0])
    metrics = {3: {"unit": 3, "snr": 5.5, "firing_rate_hz": 9.9, "group": "mua"},
               7: {"unit": 7, "snr": 11.0, "firing_rate_hz": 20.0, "group": "good"}}
    data = SortData("offline", Path("sort1"), FS, [3, 7], {3: u3, 7: u7},
                    peak_channel={3: 1, 7: 2}, channel_positions_um=pos, metrics=metrics,
                    meta={"n_samples": n_samples, "first_sample_number": FIRST})
    sort = Sort("sort1", "offline", Path("sort1"), lambda: data)
    return sort, exp, {"order": order, "samples": samples, "n_samples": n_samples}


def pynapple_tuning(group, iset, unit):
    """Mean rate per direction and blank baseline, computed in pynapple only."""
    counts = group.count(ep=iset)
    col = list(counts.columns).index(unit)
    rate = np.asarray(counts.values[:, col], np.float64) / (iset.end - iset.start)
    blank = np.asarray(iset.blank, bool)
    ori = np.asarray(iset.ori_deg, np.float64)
    values = np.unique(ori[~blank])
    mean = np.array([rate[~blank & (ori == v)].mean() for v in values])
    return values, mean, rate[blank].mean(), np.asarray(counts.values[:, col])


@pytest.mark.slow
def test_tuning_curve_round_trip_matches_ours(nap):
    sort, exp, _ = make_experiment(seed=1)
    group, iset = sort.to_tsgroup(), exp.to_intervalset()
    pres = exp.presentations()
    assert len(iset) == len(pres) == 6 * (len(DIRS) + 2)
    ours = compute_tuning(sort.neurons[7].times_s, pres, "ori_deg", fit=None)
    values, mean, base, counts = pynapple_tuning(group, iset, 7)
    np.testing.assert_array_equal(values, ours.values)
    np.testing.assert_allclose(mean, ours.mean_rate_hz, rtol=1e-5)
    assert base == pytest.approx(ours.baseline_hz, rel=1e-5)
    # the same spikes in the same windows
    lo, hi = spikes_in_windows(sort.neurons[7].times_s, pres.onset_s, pres.offset_s)
    np.testing.assert_array_equal(counts, hi - lo)
    # and the unit is the tuned one we made
    assert abs((ours.preferred - PREF + 180) % 360 - 180) < 15
    assert values[np.argmax(mean)] == pytest.approx(PREF)


def _edge_reference(sort, pres, unit=7):
    """Spikes per presentation with onset <= t < offset, in integer samples (no float edges)."""
    s = sort.data.spike_samples[unit]
    on = np.round(pres.onset_s * FS).astype(np.int64)
    off = np.round(pres.offset_s * FS).astype(np.int64)
    return np.searchsorted(s, off, "left") - np.searchsorted(s, on, "left")


def test_spikes_exactly_on_edges_count_once(nap):
    # a spike on a presentation's end sample is the next presentation's first: counted once
    sort, exp, _ = make_experiment(seed=1, edge_spikes=True)
    pres = exp.presentations()
    _, _, _, counts = pynapple_tuning(sort.to_tsgroup(), exp.to_intervalset(), 7)
    want = _edge_reference(sort, pres)
    np.testing.assert_array_equal(counts, want)
    assert counts.sum() == np.sum((sort.data.spike_samples[7] >= round(pres.onset_s[0] * FS))
                                  & (sort.data.spike_samples[7] < round(pres.offset_s[-1] * FS)))


def test_our_windows_count_edge_spikes_once():
    """A spike exactly on an edge sample is counted in one presentation (our float windows,
    ``onset_s = sample / fs + lag``, used to take it on either side by rounding)."""
    sort, exp, _ = make_experiment(seed=1, edge_spikes=True)
    pres = exp.presentations()
    lo, hi = spikes_in_windows(sort.neurons[7].times_s, pres.onset_s, pres.offset_s)
    np.testing.assert_array_equal(hi - lo, _edge_reference(sort, pres))


def test_jittered_edges_clip_overlaps_and_keep_metadata(nap, recwarn):
    sort, exp, _ = make_experiment(seed=2, jitter=True)
    pres = exp.presentations()
    gap = pres.onset_s[1:] - pres.offset_s[:-1]
    assert (gap < 0).any() and (np.abs(gap) < 1e-9).any()  # the data do overlap and touch
    iset = exp.to_intervalset()
    # pynapple neither joined epochs, dropped the metadata, nor moved ends itself
    assert not [w for w in recwarn if any(k in str(w.message) for k in (
        "Joining", "metadata", "Removing", "not sorted"))]
    half = 0.5 / FS
    np.testing.assert_allclose(iset.start, pres.onset_s - half, atol=1e-9)
    clipped = np.r_[gap <= 1e-9, False]
    np.testing.assert_allclose(iset.end[~clipped], pres.offset_s[~clipped] - half, atol=1e-9)
    assert np.all(iset.end[:-1] < iset.start[1:])
    # a clipped end is 1 us before the next start (pynapple's own rule for touching epochs)
    np.testing.assert_allclose(iset.end[clipped], iset.start[1:][clipped[:-1]] - 1e-6,
                               atol=1e-9)
    assert np.all(pres.offset_s[clipped] - half - iset.end[clipped] <= 2.0 / FS + 2e-6)
    # per presentation: the spikes with onset <= t < min(offset, next onset), in samples
    sort, exp, _ = make_experiment(seed=2, jitter=True, edge_spikes=True)
    pres = exp.presentations()
    iset = exp.to_intervalset()
    s = sort.data.spike_samples[7]
    on = np.round(pres.onset_s * FS).astype(np.int64)
    off = np.round(pres.offset_s * FS).astype(np.int64)
    off[:-1] = np.minimum(off[:-1], on[1:])
    want = np.searchsorted(s, off, "left") - np.searchsorted(s, on, "left")
    _, _, _, counts = pynapple_tuning(sort.to_tsgroup(), iset, 7)
    np.testing.assert_array_equal(counts, want)
    # without edge spikes, only the overlapping samples (in both of our windows) and the
    # one-sample-shorter clipped durations separate the curves
    sort, exp, _ = make_experiment(seed=2, jitter=True)
    _, mean, _, _ = pynapple_tuning(sort.to_tsgroup(), exp.to_intervalset(), 7)
    ours = compute_tuning(sort.neurons[7].times_s, exp.presentations(), "ori_deg", fit=None)
    np.testing.assert_allclose(mean, ours.mean_rate_hz, rtol=0.02)


def test_intervalset_metadata_is_the_sweep_table(nap):
    sort, exp, truth = make_experiment(seed=3)
    iset = exp.to_intervalset()
    pres = exp.presentations()
    order = np.array(truth["order"])
    np.testing.assert_array_equal(np.asarray(iset.sweep_index), order)
    np.testing.assert_array_equal(np.asarray(iset.blank), order == SWEEP_NONE)
    ori = np.asarray(iset.ori_deg, np.float64)
    np.testing.assert_array_equal(ori[order != SWEEP_NONE], DIRS[order[order != SWEEP_NONE]])
    assert np.isnan(ori[order == SWEEP_NONE]).all()
    assert set(iset.metadata_columns) >= {"sweep_index", "blank", "ori_deg", "contrast",
                                          "sweep_s", "postsweep_s"}
    # edges: half a sample early, durations kept (touching presentations lose 1 us)
    np.testing.assert_allclose(iset.start, pres.onset_s - 0.5 / FS, atol=1e-9)
    np.testing.assert_allclose(iset.end - iset.start, pres.duration_s, atol=2e-6)
    # selecting by metadata: the 120 deg presentations
    sel = iset[np.asarray(iset.ori_deg) == PREF]
    assert len(sel) == 6 and np.all(np.asarray(sel.sweep_index) == 4)
    # the function form and the Presentations method agree; without fs the edges are kept
    np.testing.assert_array_equal(to_intervalset(pres, FS).start, iset.start)
    raw = pres.to_intervalset()
    np.testing.assert_allclose(raw.start, pres.onset_s, atol=1e-9)


def test_tsgroup_times_and_unit_metadata(nap):
    sort, _, truth = make_experiment(seed=4)
    group = sort.to_tsgroup()
    assert list(group.keys()) == [3, 7]
    for u in (3, 7):
        np.testing.assert_allclose(group[u].t, sort.neurons[u].times_s, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(group.peak_channel), [1, 2])
    np.testing.assert_array_equal(np.asarray(group.y_um), [25.0, 50.0])
    np.testing.assert_array_equal(np.asarray(group.snr), [5.5, 11.0])
    assert list(group.group) == ["mua", "good"]
    np.testing.assert_array_equal(np.asarray(group.n_spikes),
                                  [sort.neurons[3].n_spikes, sort.neurons[7].n_spikes])
    # time support = the recording; pynapple's rate = spikes / recording duration
    ts = group.time_support
    assert ts.start[0] == pytest.approx(FIRST / FS) and ts.end[0] == pytest.approx(
        (FIRST + truth["n_samples"]) / FS)
    dur = truth["n_samples"] / FS
    np.testing.assert_allclose(np.asarray(group.rate),
                               [sort.neurons[3].n_spikes / dur, sort.neurons[7].n_spikes / dur])
    one = to_tsgroup(sort.data, units=[7])
    assert list(one.keys()) == [7] and list(one.group) == ["good"]
    with pytest.raises(KeyError, match="no units"):
        sort.to_tsgroup(units=[5])
    # a unit without spikes is kept; a sort without spikes or span needs a time support
    empty = SortData("online", Path("x"), FS, [5], {5: np.zeros(0, np.int64)})
    with pytest.raises(ValueError, match="time_support"):
        to_tsgroup(empty)
    g = to_tsgroup(empty, time_support=(0.0, 10.0))
    assert list(g.keys()) == [5] and g[5].t.size == 0 and list(g.n_spikes) == [0]


def test_missing_pynapple_names_the_extra(monkeypatch):
    sort, exp, _ = make_experiment(seed=5, n_runs=1)
    monkeypatch.setitem(sys.modules, "pynapple", None)
    with pytest.raises(ImportError, match=r"pip install 'sweepsort\[pynapple\]'"):
        sort.to_tsgroup()
    with pytest.raises(ImportError, match=r"sweepsort\[pynapple\]"):
        exp.to_intervalset()
    with pytest.raises(ImportError, match=r"sweepsort\[pynapple\]"):
        exp.presentations().to_intervalset(FS)
