"""Waveform snippets around detected events."""

import numpy as np
import pytest

from oe_plugin.kernels.detector import SpikeDetector
from oe_plugin.kernels.snippets import allocate_snippets, extract_snippets, snippet_channels
from oe_plugin.probe import Probe, neighbour_lists
from oe_plugin.settings import DetectSettings, FilterSettings


@pytest.mark.slow
def test_snippets_cut_the_neighbourhood_around_each_event():
    rng = np.random.default_rng(0)
    traces = rng.standard_normal((4, 1000)).astype(np.float32)
    probe = Probe("line", np.c_[np.zeros(4), np.arange(4) * 50.0], np.zeros(4, int))
    nb_ptr, nb_idx = neighbour_lists(probe, 60.0)  # each channel and its direct neighbours
    times = np.array([5, 100, 500, 995], dtype=np.int64)
    chans = np.array([0, 1, 3, 2], dtype=np.int32)
    out = allocate_snippets(4, nb_ptr, 10, 20)
    ok = extract_snippets(traces, 0, times, chans, nb_ptr, nb_idx, 10, 20, out)
    assert ok.tolist() == [False, True, True, False]  # first and last run off the edges
    rows = snippet_channels(chans, nb_ptr, nb_idx)
    assert rows[1].tolist() == [0, 1, 2] and rows[2].tolist() == [2, 3, -1]
    np.testing.assert_array_equal(out[1, 2], traces[2, 90:120])
    np.testing.assert_array_equal(out[2, 1], traces[3, 490:520])
    assert not out[2, 2].any() and not out[0].any()
    # a chunk that starts later in the stream: indices are stream indices
    out2 = allocate_snippets(4, nb_ptr, 10, 20)
    extract_snippets(traces[:, 50:], 50, times, chans, nb_ptr, nb_idx, 10, 20, out2)
    np.testing.assert_array_equal(out2[1], out[1])


@pytest.mark.slow
def test_snippets_of_detected_events_peak_at_the_event_sample():
    fs = 30000.0
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 30000)) * 5).astype(np.float32)
    for t in (5000, 12000, 20000):
        x[1, t - 3 : t + 3] -= 150.0
    det = SpikeDetector(
        2, fs, FilterSettings(write_downstream=True), DetectSettings(threshold_uv=40)
    )
    filtered = x.copy()
    ev = det.process(filtered)  # filtered in place
    assert len(ev) >= 3
    nb = (np.arange(3, dtype=np.int32), np.arange(2, dtype=np.int32))
    out = allocate_snippets(len(ev), nb[0], 15, 30)
    ok = extract_snippets(filtered, 0, ev["sample_index"], ev["channel_index"], *nb, 15, 30, out)
    assert ok.all()
    assert (out[:, 0, :].argmin(axis=1) == 15).all()
    np.testing.assert_array_equal(out[:, 0, 15], ev["amplitude"])
