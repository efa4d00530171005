"""Online statistics per stimulus experiment (oe_plugin.online.stats) and the statistics file
(oe_plugin.outputs.stats_file): tables against an independent reference, any cut of frames and
spikes into calls, folding beyond max_experiments, a full column pool, old file versions."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from oe_plugin.online.stats import SIG_LEN, OnlineStats
from oe_plugin.outputs.stats_file import (
    ExperimentStats,
    StatsFileWriter,
    StatsFormatError,
    pick_experiment,
    read_stats,
    write_stats,
)
from oe_plugin.protocol.spec import (
    CODE_END,
    CODE_START,
    EXPERIMENT_END,
    EXPERIMENT_START,
    GAP,
    SWEEP_NONE,
)
from offline.monitor import collapse

FS = 30000.0
PERIOD = 150  # samples per refresh at 200 Hz
GAP_SAMPLES = 1.5 * PERIOD


def frame_stream(rng, n_experiments, n_conditions, frames_per_exp=300, pre_frames=20):
    """Decoded-refresh records of ``pre_frames`` refreshes without markers, then
    ``n_experiments`` experiments (3 START refreshes, sweeps of 5-30 refreshes drawn from
    ``n_conditions[k]`` conditions with blanks, 3 END refreshes), a pause between experiments.
    Returns (sample, sweep, flags, experiment number per refresh, shown sweeps per experiment).
    """
    s, w, f, e = [], [], [], []
    t = 1000
    for _ in range(pre_frames):
        s.append(t)
        w.append(4)
        f.append(0)
        e.append(0)
        t += PERIOD
    shown = {}
    for k in range(1, n_experiments + 1):
        t += int(rng.integers(20, 200)) * PERIOD  # a pause: the stimulus computer restarts
        body = []
        while len(body) < frames_per_exp:
            idx = SWEEP_NONE if rng.random() < 0.15 else int(rng.integers(0, n_conditions[k - 1]))
            body += [idx] * int(rng.integers(5, 30))
        codes = [CODE_START] * 3 + body[:frames_per_exp] + [CODE_END] * 3
        shown[k] = collapse(body[:frames_per_exp])
        for j, c in enumerate(codes):
            s.append(t)
            if c == CODE_START:
                w.append(SWEEP_NONE)
                f.append(EXPERIMENT_START | (GAP if j == 0 else 0))
            elif c == CODE_END:
                w.append(SWEEP_NONE)
                f.append(EXPERIMENT_END)
            else:
                w.append(c)
                f.append(0)
            e.append(k)
            t += PERIOD
    return (np.array(s, np.int64), np.array(w, np.int32), np.array(f, np.uint32),
            np.array(e, np.int64), shown)


def reference(fr_s, fr_w, fr_e, spk_t, spk_row, n_rows, n_exp, max_sweeps=4096):
    """Per experiment number: (counts (R, max_sweeps), none (R,), frames (max_sweeps,)), by
    direct lookup: the refresh at or before each spike (more than 1.5 refreshes after it: no
    sweep; before every refresh: experiment 0)."""
    out = {k: [np.zeros((n_rows, max_sweeps), np.int64), np.zeros(n_rows, np.int64),
               np.zeros(max_sweeps, np.int64)] for k in range(n_exp + 1)}
    for w, k in zip(fr_w, fr_e, strict=True):
        if 0 <= w < max_sweeps:
            out[k][2][w] += 1
    for t, r in zip(spk_t, spk_row, strict=True):
        j = np.searchsorted(fr_s, t, side="right") - 1
        if j < 0:
            out[0][1][r] += 1
            continue
        k, w = fr_e[j], fr_w[j]
        if t - fr_s[j] <= GAP_SAMPLES and 0 <= w < max_sweeps:
            out[k][0][r, w] += 1
        else:
            out[k][1][r] += 1
    return out


def feed(stats, fr, spk_t, spk_u, rng, block_max):
    """Frames and spikes as the pipeline hands them over: block by block, each block's frames
    (decoded about one refresh late) before its spikes; random block sizes."""
    fr_s, fr_w, fr_f = fr
    end = int(max(fr_s[-1], spk_t[-1])) + 3 * PERIOD
    now = 0
    fi = si = 0
    while now < end:
        now += int(rng.integers(1, block_max))
        decoded_to = now - PERIOD - 20  # the decoder confirms a frame one refresh later
        fj = np.searchsorted(fr_s, decoded_to, side="right")
        if fj > fi:
            stats.add_frames(fr_s[fi:fj], fr_w[fi:fj], fr_f[fi:fj], fj - fi)
            fi = fj
        sj = np.searchsorted(spk_t, now, side="left")
        stats.update_online(spk_t[si:sj].copy(), spk_u[si:sj].copy(), sj - si, now)
        si = sj
    if fi < fr_s.size:
        stats.add_frames(fr_s[fi:], fr_w[fi:], fr_f[fi:], fr_s.size - fi)
    stats.flush()


def spikes_for(rng, fr_s, n_units, n=4000):
    t = np.sort(rng.integers(0, int(fr_s[-1]) + 5 * PERIOD, n)).astype(np.int64)
    u = rng.integers(-1, n_units, n).astype(np.int32)
    return t, u, np.where(u >= 0, u, n_units)


def written(stats, tmp_path, name="s"):
    w = StatsFileWriter(tmp_path / name / "online_stats.bin", stats.n_units + 1,
                        stats.time_counts.shape[1], stats.experiments.shape[0],
                        stats.sweep_counts.shape[1], SIG_LEN, {"n_units": stats.n_units},
                        FS, 200.0)
    stats.write_start(w, 12345)
    w.close()
    return read_stats(w.path)


@pytest.mark.parametrize("seed", [1, 2])
def test_two_sessions_with_overlapping_indices_get_separate_tables(seed, tmp_path):
    """Experiment 1 shows sweep indices 0..11, experiment 2 indices 0..7 (overlapping): each
    gets its own table, equal to the reference, however frames and spikes are cut into calls."""
    rng = np.random.default_rng(seed)
    n_units = 3
    fr_s, fr_w, fr_f, fr_e, shown = frame_stream(rng, 2, [12, 8])
    spk_t, spk_u, spk_row = spikes_for(rng, fr_s, n_units)
    want = reference(fr_s, fr_w, fr_e, spk_t, spk_row, n_units + 1, 2)
    tables = []
    for block_max in (50, 3000):
        stats = OnlineStats(n_units, FS, bin_s=0.5)
        feed(stats, (fr_s, fr_w, fr_f), spk_t, spk_u, rng, block_max)
        arrays, meta = written(stats, tmp_path, f"b{block_max}")
        assert meta["experiments_seen"] == 2 and meta["experiments_folded"] == 0
        exps = arrays["experiments"]
        assert [e.number for e in exps] == [0, 1, 2]
        for e in exps:
            counts, none, frames = want[e.number]
            ns = e.sweep_counts.shape[1]
            assert counts[:, ns:].sum() == 0 and frames[ns:].sum() == 0
            np.testing.assert_array_equal(e.sweep_counts, counts[:, :ns])
            np.testing.assert_array_equal(e.no_sweep_counts, none)
            np.testing.assert_array_equal(e.sweep_frames, frames[:ns])
            assert e.n_frames == int(np.sum(fr_e == e.number))
            assert e.start_sample == fr_s[fr_e == e.number][0]
            assert e.last_sample == fr_s[fr_e == e.number][-1]
            if e.number:
                np.testing.assert_array_equal(e.signature, shown[e.number][:SIG_LEN])
        # overlapping indices really are shown (and spiked in) in both experiments
        assert exps[1].sweep_counts[:, :8].sum() > 0 and exps[2].sweep_counts[:, :8].sum() > 0
        assert exps[1].sweep_counts.shape[1] == shown[1].max() + 1 > 8
        assert exps[2].sweep_counts.shape[1] == shown[2].max() + 1 <= 8
        total = sum(e.sweep_counts.sum() + e.no_sweep_counts.sum() for e in exps)
        assert total == spk_t.size == arrays["time_counts"].sum()
        tables.append([(e.sweep_counts, e.no_sweep_counts, e.sweep_frames) for e in exps])
    for a, b in zip(*tables, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_more_experiments_than_slots_fold_into_the_last(tmp_path):
    """max_experiments = 3 and 7 experiments: 1..2 keep their own tables, 3..7 are counted
    together in slot 3 (flagged), the note is set once, nothing raises."""
    rng = np.random.default_rng(7)
    n_units = 2
    fr_s, fr_w, fr_f, fr_e, _ = frame_stream(rng, 7, [6] * 7, frames_per_exp=120)
    spk_t, spk_u, spk_row = spikes_for(rng, fr_s, n_units, 3000)
    want = reference(fr_s, fr_w, fr_e, spk_t, spk_row, n_units + 1, 7)
    stats = OnlineStats(n_units, FS, max_experiments=3)
    notes = []
    orig = stats._check_limits

    def spy():
        orig()
        if stats.note is not None:
            notes.append(stats.note)
            stats.note = None

    stats._check_limits = spy
    feed(stats, (fr_s, fr_w, fr_f), spk_t, spk_u, rng, 700)
    assert len(notes) == 1 and "max_experiments" in notes[0] and "experiment 4" in notes[0]
    arrays, meta = written(stats, tmp_path)
    assert meta["experiments_seen"] == 7 and meta["experiments_folded"] == 4
    exps = arrays["experiments"]
    assert [(e.number, e.n_merged) for e in exps] == [(0, 1), (1, 1), (2, 1), (3, 5)]
    last = exps[3]
    assert last.folded and "3-7 (folded)" in last.label and list(last.numbers) == [3, 4, 5, 6, 7]
    ns = last.sweep_counts.shape[1]
    np.testing.assert_array_equal(last.sweep_counts,
                                  sum(want[k][0] for k in range(3, 8))[:, :ns])
    np.testing.assert_array_equal(last.no_sweep_counts, sum(want[k][1] for k in range(3, 8)))
    np.testing.assert_array_equal(last.sweep_frames, sum(want[k][2] for k in range(3, 8))[:ns])
    assert last.start_sample == fr_s[fr_e == 3][0] and last.last_sample == fr_s[-1]
    ns2 = exps[2].sweep_counts.shape[1]
    np.testing.assert_array_equal(exps[2].sweep_counts, want[2][0][:, :ns2])
    assert pick_experiment(exps, 6) is last and pick_experiment(exps, 2) is exps[2]
    assert pick_experiment(exps) is last
    with pytest.raises(ValueError, match="no experiment 8"):
        pick_experiment(exps, 8)


def test_full_column_pool_counts_as_no_sweep(tmp_path):
    """max_conditions = 10 for 12 + 8 conditions: the first 10 (experiment, sweep) pairs shown
    get columns; the rest are counted as frames without a column, their spikes as no sweep;
    all spikes are still counted once."""
    rng = np.random.default_rng(3)
    fr_s, fr_w, fr_f, fr_e, _ = frame_stream(rng, 2, [12, 8])
    spk_t, spk_u, _ = spikes_for(rng, fr_s, 1)
    stats = OnlineStats(1, FS, max_conditions=10)
    feed(stats, (fr_s, fr_w, fr_f), spk_t, spk_u, rng, 500)
    assert stats.n_columns == 10 and stats.note is not None and "max_conditions" in stats.note
    arrays, meta = written(stats, tmp_path)
    exps = arrays["experiments"]
    assert meta["frames_without_column"] == sum(e.frames_without_column for e in exps) > 0
    assert sum(int((e.sweep_frames > 0).sum()) for e in exps) == 10
    assert sum(e.sweep_counts.sum() + e.no_sweep_counts.sum() for e in exps) == spk_t.size
    for e in exps:
        assert e.n_frames == e.sweep_frames.sum() + e.none_frames


def test_write_stats_round_trip(tmp_path):
    exps = [ExperimentStats(0, np.zeros((3, 0), np.int64), np.zeros(0, np.int64),
                            np.array([4, 0, 1])),
            ExperimentStats(1, np.array([[1, 0, 3], [0, 0, 0], [2, 0, 1]]),
                            np.array([10, 0, 30]), np.array([0, 1, 0]), n_frames=45,
                            none_frames=5, start_sample=900, last_sample=8000,
                            signature=np.array([2, 0, 2]))]
    arrays = {"time_counts": np.arange(12).reshape(3, 4), "bin_s": 1.0, "experiments": exps}
    path = tmp_path / "x" / "online_stats.bin"
    write_stats(path, arrays, {"sample_rate_hz": FS, "samples_processed": 7})
    got, meta = read_stats(path)
    assert meta["samples_processed"] == 7 and meta["experiments_seen"] == 1
    np.testing.assert_array_equal(got["time_counts"], arrays["time_counts"])
    for a, b in zip(exps, got["experiments"], strict=True):
        np.testing.assert_array_equal(a.sweep_counts, b.sweep_counts)
        np.testing.assert_array_equal(a.sweep_frames, b.sweep_frames)
        np.testing.assert_array_equal(a.no_sweep_counts, b.no_sweep_counts)
        np.testing.assert_array_equal(a.signature, b.signature)
        assert (a.number, a.n_frames, a.none_frames, a.start_sample, a.last_sample) == (
            b.number, b.n_frames, b.none_frames, b.start_sample, b.last_sample)
    assert got["experiments"][1].start_s == pytest.approx(900 / FS)


def test_old_format_version_is_a_clear_error(tmp_path):
    """A version-2 file (one sweep table for the whole acquisition) is refused at once, with a
    message that names its version; no retrying."""
    d = tmp_path / "sweepsort"
    d.mkdir()
    (d / "online_stats.json").write_text(json.dumps({
        "format": "sweepsort-online-stats", "format_version": 2, "token": 1,
        "sample_rate_hz": FS}))
    head = np.zeros(16, np.int64)
    head[0] = int.from_bytes(b"SWSTATS\x02", "little", signed=True)
    head[1] = 2
    (d / "online_stats.bin").write_bytes(head.tobytes())
    t0 = time.perf_counter()
    with pytest.raises(StatsFormatError, match="format version 2; this sweepsort reads "
                                               "versions 4 and 5"):
        read_stats(tmp_path)
    assert time.perf_counter() - t0 < 0.5
