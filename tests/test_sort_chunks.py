"""Chunking and executors change nothing: chunked preprocessing and detection equal one
whole-file call; the local pool and a Dask cluster on loopback give the serial result."""

from __future__ import annotations

import numpy as np
import pytest
from synth import make_recording

from oe_plugin.probe import Probe, neighbour_lists
from offline.recording import open_flat_binary
from offline.sort import RecordingSource, settings_from_table, sort_recording
from offline.sort.detection import detect_chunk
from offline.sort.executor import DaskExecutor, LocalPoolExecutor
from offline.sort.job import SortJob
from offline.sort.preprocess import Preprocessor

N_CH = 6
FS = 30000.0


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunks")
    pos = np.zeros((N_CH, 2))
    pos[:, 1] = 30.0 * np.arange(N_CH)
    data, truth = make_recording(n_channels=N_CH, duration_s=3.0, rate_hz=8.0, snr=8.0,
                                 positions_um=pos, decay_um=30.0, seed=11)
    np.round(data.T / 0.195).astype("<i2").tofile(root / "raw.dat")
    spec = {"dtype": "int16", "n_channels": N_CH, "sample_rate_hz": FS, "gain_uv": 0.195}
    return {"source": RecordingSource(str(root / "raw.dat"), kind="flat", flat=spec),
            "probe": Probe("lin", pos, np.zeros(N_CH, int)), "root": root}


@pytest.mark.parametrize("table", [
    {},
    {"filter": "causal", "common_reference": "median"},
    {"upsample_factor": 2, "sh_tick_us": 1.0},
])
def test_chunked_traces_equal_whole_file(flat, table):
    rec = flat["source"].open()
    s = settings_from_table({"preprocess": {**table, "chunk_s": 0.25}}).preprocess
    prep = Preprocessor(rec, s)
    prep.estimate_noise()
    n = prep.geometry.n_samples
    whole = prep.traces(0, n)
    assert whole.shape == (N_CH, n)
    for a, b in [(0, 7000), (7000, 7001), (12345, 50000), (n - 3000, n)]:
        assert np.array_equal(prep.traces(a, b), whole[:, a:b]), (a, b)


def _events(flat, chunk_s):
    s = settings_from_table({"preprocess": {"chunk_s": chunk_s}})
    rec = flat["source"].open()
    prep = Preprocessor(rec, s.preprocess)
    job = SortJob(flat["source"], s, prep.estimate_noise(),
                  neighbour_lists(flat["probe"], 175), neighbour_lists(flat["probe"], 60))
    parts = [detect_chunk(job, i) for i in range(prep.geometry.n_chunks)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("t", "c", "amplitude_uv")}


@pytest.mark.slow
def test_chunked_detection_equals_whole_file(flat):
    whole = _events(flat, 3.0)  # one chunk: the whole file
    assert len(whole["t"]) > 100
    for chunk_s in (0.1, 0.37, 1.0):
        got = _events(flat, chunk_s)
        for k in whole:
            assert np.array_equal(got[k], whole[k]), (chunk_s, k)


@pytest.mark.slow
def test_local_pool_and_dask_equal_serial(flat, tmp_path):
    settings = settings_from_table({"preprocess": {"chunk_s": 0.5},
                                    "sort": {"min_cluster_size": 10, "min_unit_spikes": 10}})
    serial = sort_recording(flat["source"], tmp_path / "serial", settings, flat["probe"])
    assert serial.n_units >= 3
    with LocalPoolExecutor(2) as pool:
        pooled = sort_recording(flat["source"], tmp_path / "pool", settings, flat["probe"], pool)
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with DaskExecutor(cluster.scheduler_address) as dask_ex:
            dasked = sort_recording(flat["source"], tmp_path / "dask", settings, flat["probe"],
                                    dask_ex)
    for k, v in serial.arrays.items():
        assert np.array_equal(pooled.arrays[k], v), k
        assert np.array_equal(dasked.arrays[k], v), k
    assert dasked.meta["executor"] == "dask" and pooled.meta["executor"] == "local-pool"


def test_no_units_is_a_valid_sort(flat, tmp_path):
    settings = settings_from_table({"sort": {"min_cluster_size": 500}})
    res = sort_recording(flat["source"], tmp_path / "none", settings, flat["probe"])
    assert res.n_units == 0 and (res.arrays["spike_unit"] == -1).all()
    assert (tmp_path / "none" / "phy" / "params.py").is_file()


def test_flat_recording_helper_is_what_the_source_opens(flat):
    rec = flat["source"].open()
    same = open_flat_binary(flat["root"] / "raw.dat", "int16", N_CH, FS, 0.195)
    assert np.array_equal(rec.read_uv(100, 200), same.read_uv(100, 200))


def test_median_reference_kernel_matches_numpy_both_ways_in():
    from oe_plugin.kernels._entry import ArgTable, entry_caller
    from oe_plugin.kernels.reference import median_reference, reference_entry

    for n_ch in (1, 2, 5, 8):
        x = np.random.default_rng(n_ch).standard_normal((n_ch, 300)).astype(np.float32)
        want = x - np.median(x, axis=0)
        got = x.copy()
        median_reference(got, np.zeros(n_ch, np.float32))
        np.testing.assert_allclose(got, want, atol=1e-6)
        online = x.copy()
        assert ArgTable([online, np.zeros(n_ch, np.float32)]).call(
            entry_caller(reference_entry)) == 300
        assert np.array_equal(online, got)


def test_per_channel_delay_list(flat):
    """sh_delays_us = the mux model's delays gives the mux model's traces; a permuted list
    corrects each channel by its own delay; a wrong length is a one-line settings error."""
    from oe_plugin.config import SettingsError

    rec = flat["source"].open()
    tick = 1.0
    mux = settings_from_table({"preprocess": {"upsample_factor": 2, "sh_tick_us": tick,
                                              "sh_mux_size": 4}}).preprocess
    listed = settings_from_table({"preprocess": {
        "upsample_factor": 2, "sh_delays_us": [(c % 4) * tick for c in range(N_CH)]}}).preprocess
    a, b = Preprocessor(rec, mux), Preprocessor(rec, listed)
    for p in (a, b):
        p.noise_uv = np.ones(N_CH, np.float32)
    assert np.array_equal(a.traces(1000, 9000), b.traces(1000, 9000))
    # channel 0 delayed by 20 µs (0.6 samples) differs from no correction by a real amount
    shifted = settings_from_table({"preprocess": {
        "sh_delays_us": [20.0] + [0.0] * (N_CH - 1)}}).preprocess
    none = settings_from_table({}).preprocess
    c, d = Preprocessor(rec, shifted), Preprocessor(rec, none)
    for p in (c, d):
        p.noise_uv = np.ones(N_CH, np.float32)
    x, y = c.traces(1000, 9000), d.traces(1000, 9000)
    assert np.array_equal(x[1:], y[1:])
    assert np.sqrt(np.mean((x[0] - y[0]) ** 2)) > 0.1 * np.sqrt(np.mean(y[0] ** 2))
    bad = settings_from_table({"preprocess": {"sh_delays_us": [1.0, 2.0]}}).preprocess
    with pytest.raises(SettingsError, match="sh_delays_us: 2 delays for a recording of 6"):
        Preprocessor(rec, bad)


@pytest.mark.parametrize("per_chunk,per_channel", [(5, 0.0), (5, 2.0), (10_000, 2.0)])
def test_snippet_draw_grows_with_the_channel_count(flat, per_chunk, per_channel):
    """A chunk draws max(events_per_chunk, events_per_channel x channels) of its events (all
    of them when it has fewer) for clustering."""
    s = settings_from_table({"preprocess": {"chunk_s": 1.0},
                             "sort": {"events_per_chunk": per_chunk,
                                      "events_per_channel": per_channel}})
    rec = flat["source"].open()
    prep = Preprocessor(rec, s.preprocess)
    job = SortJob(flat["source"], s, prep.estimate_noise(),
                  neighbour_lists(flat["probe"], 175), neighbour_lists(flat["probe"], 60))
    part = detect_chunk(job, 0)
    want = min(len(part["t"]), max(per_chunk, round(per_channel * N_CH)))
    assert len(part["t"]) > max(5, 2 * N_CH)  # enough events that the draw size shows
    assert len(part["snippet_t"]) == want


def test_noise_windows_read_on_threads_give_the_same_noise(flat):
    """The sort reads the noise windows on as many threads as it has workers: the same
    levels and windows, bit for bit, as one thread; an error in a window is raised."""
    s = settings_from_table({"preprocess": {"noise_windows": 5, "noise_window_s": 0.2}})
    rec = flat["source"].open()
    one = Preprocessor(rec, s.preprocess).estimate_noise(1)
    prep = Preprocessor(rec, s.preprocess)
    np.testing.assert_array_equal(prep.estimate_noise(3), one)
    spans = prep.noise_windows()
    got = prep.windows(spans, 2)
    for (a, b), x in zip(spans, got, strict=True):
        np.testing.assert_array_equal(x, prep.traces(a, b))
    from offline.sort.preprocess import in_threads

    def fails(i):
        if i == 2:
            raise ValueError("window 2")

    with pytest.raises(ValueError, match="window 2"):
        in_threads(fails, 4, 2)
