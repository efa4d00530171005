"""Spatial whitening (``[preprocess] whiten``): the local mix decorrelates neighbouring
channels' noise and keeps each channel's noise level, its noise estimate leaves spikes out, the
offline sort stores and applies it, and the online sorter applies the sort's mix with labels
identical to the causal reference (any block sizes)."""

from __future__ import annotations

import numpy as np
import pytest
from test_online_sorter import FS, _random_blocks, synthetic_session, write_sort_folder

from oe_plugin.online.match_model import SortModelError, load_sort_model
from oe_plugin.online.sorter_driver import OnlineSorter
from oe_plugin.probe import Probe, neighbour_lists
from offline.online_match import causal_sort
from offline.sort.sortfile import load_sort, save_sort
from offline.sort.whitening import (
    Whitening,
    local_whitening,
    noise_correlation,
    spike_free,
)


def _two_columns(n_rows: int) -> np.ndarray:
    """(2 n_rows, 2) µm: two columns 32 µm apart, rows 20 µm apart."""
    return np.array([(x, 20.0 * r) for r in range(n_rows) for x in (0.0, 32.0)])


def _correlated_noise(pos, noise_uv, decay_um, n, seed):
    """(C, n) Gaussian noise with covariance exp(-d / decay_um) scaled by ``noise_uv``."""
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    cov = np.exp(-d / decay_um) * np.outer(noise_uv, noise_uv)
    return np.linalg.cholesky(cov) @ np.random.default_rng(seed).standard_normal((len(pos), n))


def _neighbours(pos, radius_um):
    return neighbour_lists(Probe("t", pos, np.zeros(len(pos), np.int64)), radius_um)


def test_local_whitening_decorrelates_neighbours_and_keeps_noise_levels():
    pos = _two_columns(12)
    noise = np.random.default_rng(0).uniform(4, 8, len(pos))
    x = _correlated_noise(pos, noise, 20.0, 200_000, 1)
    corr, used = noise_correlation([(x / noise[:, None]).astype(np.float32)], np.inf, 0)
    assert used == x.shape[1]
    near = np.abs(np.linalg.norm(pos[:, None] - pos[None], axis=2) - 20.0) < 1e-6
    assert np.abs(corr[near] - np.exp(-1.0)).max() < 0.02  # the estimate: exp(-20 / 20)
    for radius, worst in ((60.0, 0.12), (1000.0, 0.02)):
        w = local_whitening(corr, _neighbours(pos, radius), noise.astype(np.float32), 0.0)
        m = w.dense()
        cov = np.exp(-np.linalg.norm(pos[:, None] - pos[None], axis=2) / 20.0) \
            * np.outer(noise, noise)
        out = m @ cov @ m.T
        np.testing.assert_allclose(np.sqrt(np.diag(out)), noise, rtol=0.02)
        r = out / np.outer(np.sqrt(np.diag(out)), np.sqrt(np.diag(out)))
        assert np.abs(r[near]).max() < worst, (radius, np.abs(r[near]).max())
        assert (np.count_nonzero(w.weight, axis=1) <= np.diff(_neighbours(pos, radius)[0])).all()


def test_whitening_applies_the_same_mix_as_its_dense_matrix():
    pos = _two_columns(4)
    noise = np.full(len(pos), 5.0)
    x = _correlated_noise(pos, noise, 25.0, 20_000, 2).astype(np.float32)
    corr, _ = noise_correlation([x / 5.0], np.inf, 0)
    w = local_whitening(corr, _neighbours(pos, 50.0), noise.astype(np.float32))
    np.testing.assert_allclose(w.apply(x), w.dense() @ x, rtol=1e-4, atol=1e-3)


def test_noise_correlation_leaves_spikes_out():
    """Large spikes shared by neighbouring channels would add their own correlation; the
    estimate leaves every sample within the exclusion window of one out."""
    pos = _two_columns(6)
    rng = np.random.default_rng(3)
    x = _correlated_noise(pos, np.ones(len(pos)), 20.0, 100_000, 4)
    truth, _ = noise_correlation([x.astype(np.float32)], np.inf, 0)
    spiky = x.copy()
    for t in rng.integers(100, 99_900, 400):
        spiky[:4, t - 10:t + 20] += 25.0 * np.hanning(30)  # on channels 0-3 at once
    naive, _ = noise_correlation([spiky.astype(np.float32)], np.inf, 0)
    kept, used = noise_correlation([spiky.astype(np.float32)], 4.0, 30)
    assert np.abs(naive - truth).max() > 0.3
    assert np.abs(kept - truth).max() < 0.03
    assert 0.5 * x.shape[1] < used < x.shape[1]
    hot = np.zeros((2, 200), np.float32)
    hot[1, 100] = 9.0
    keep = spike_free(hot, 4.0, 10)
    assert not keep[90:111].any() and keep[:90].all() and keep[111:].all()


def test_dead_channel_is_copied_not_mixed():
    pos = _two_columns(3)
    noise = np.full(len(pos), 5.0, np.float32)
    noise[2] = np.inf
    corr = np.exp(-np.linalg.norm(pos[:, None] - pos[None], axis=2) / 20.0)
    w = local_whitening(corr, _neighbours(pos, 80.0), noise)
    m = w.dense()
    assert m[2, 2] == 1.0 and np.count_nonzero(m[2]) == 1
    assert m[:, 2].sum() == 1.0  # no live channel reads it
    assert np.all(np.isfinite(m))


@pytest.fixture(scope="module")
def whitened_sort(tmp_path_factory):
    """The online sorter's synthetic session with correlated noise added, and a sort folder
    that whitens it (templates from the whitened causal traces)."""
    root = tmp_path_factory.mktemp("whitened")
    data, truth, pos = synthetic_session(duration_s=3.0, seed=4)
    data = data + _correlated_noise(pos, np.full(len(pos), 8.0), 30.0, data.shape[1],
                                    5).astype(np.float32)
    plain = write_sort_folder(root / "plain.sort", data, truth, pos)
    noise = load_sort(plain).arrays["noise_uv"]
    corr, _ = noise_correlation([data[:, :30000] / noise[:, None]], np.inf, 0)
    w = local_whitening(corr, _neighbours(pos, 60.0), noise)
    folder = write_sort_folder(root / "white.sort", w.apply(data), truth, pos)
    res = load_sort(folder)
    res.arrays.update(whiten_index=w.index, whiten_weight=w.weight)
    save_sort(folder, res)
    return dict(data=np.ascontiguousarray(data, np.float32), folder=folder, whitening=w)


@pytest.mark.parametrize("white_detect", [False, True])
def test_online_whitening_equals_the_causal_reference(whitened_sort, white_detect):
    """Both modes: detection and matching on the whitened samples (the default), or detection
    on the plain ones and matching on the whitened ones (``whiten_detection = false``)."""
    from dataclasses import replace

    data, folder = whitened_sort["data"], whitened_sort["folder"]
    model = replace(load_sort_model(folder, data.shape[0], FS), whiten_detection=white_detect)
    assert model.whitening is not None
    want = causal_sort(data, FS, model)
    want = want[np.argsort(want["sample_index"], kind="stable")]
    assert (want["unit"] >= 0).sum() > 100
    for seed in (0, 1):
        got = _random_blocks(OnlineSorter(data.shape[0], FS, model), data, seed)
        for f in got.dtype.names:
            np.testing.assert_array_equal(got[f], want[f])
    # what is detected where: the unsorted rows (event time, channel, detection amplitude)
    # are detections of the plain samples by default, of the whitened ones with white_detect
    def detections(x):
        ev = causal_sort(x, FS, replace(model, whitening=None, unit_lut=np.array([-1])))
        return set(zip(ev["sample_index"].tolist(), ev["channel_index"].tolist(),
                       ev["amplitude_uv"].tolist(), strict=True))

    plain, white = detections(data), detections(whitened_sort["whitening"].apply(data))
    assert plain != white
    left = want[want["unit"] < 0]
    rows = set(zip(left["sample_index"].tolist(), left["channel_index"].tolist(),
                   left["amplitude_uv"].tolist(), strict=True))
    assert len(rows) >= 3 and rows <= (white if white_detect else plain)
    # and the labels follow the whitened samples: the mix left out, they change
    bare = causal_sort(data, FS, replace(model, whitening=None))
    assert len(bare) != len(want) or not np.array_equal(bare["unit"], want["unit"])
    if white_detect:  # the whole path on pre-whitened samples gives the same spikes
        pre = causal_sort(whitened_sort["whitening"].apply(data), FS,
                          replace(model, whitening=None))
        pre = pre[np.argsort(pre["sample_index"], kind="stable")]
        for f in want.dtype.names:
            np.testing.assert_array_equal(pre[f], want[f])


def test_bad_whitening_tables_fail_at_load(whitened_sort, tmp_path):
    res = load_sort(whitened_sort["folder"])
    bad = dict(res.arrays, whiten_index=res.arrays["whiten_index"] + 100)
    save_sort(tmp_path / "bad", type(res)(bad, res.meta))
    with pytest.raises(SortModelError, match="whitening mix names channels"):
        load_sort_model(tmp_path / "bad", whitened_sort["data"].shape[0], FS)
    odd = dict(res.arrays, whiten_weight=res.arrays["whiten_weight"][:, :1])
    save_sort(tmp_path / "odd", type(res)(odd, res.meta))
    with pytest.raises(SortModelError, match="whiten_index / whiten_weight"):
        load_sort_model(tmp_path / "odd", whitened_sort["data"].shape[0], FS)


def test_whitening_dataclass_tables_shapes():
    w = Whitening(np.array([[0, 1], [1, 0]], np.int32), np.array([[1, -0.5], [1, 0]],
                                                                 np.float32))
    index, weight, rows = w.tables()
    assert index.shape == (2, 1, 2) and weight.shape == (2, 1, 2) and rows.shape == (2,)
    x = np.array([[1.0, 2.0], [4.0, 8.0]], np.float32)
    np.testing.assert_allclose(w.apply(x), [[-1.0, -2.0], [4.0, 8.0]])


@pytest.mark.slow
@pytest.mark.parametrize("white_detect", [True, False])
def test_real_sort_whitens_and_the_module_follows_it(tmp_path, white_detect):
    """``sweepsort sort`` with ``[preprocess] whiten = "on"`` on a recording with correlated
    noise: the sort stores its mix, its whitened traces' neighbouring noise is decorrelated, and
    the online module (host simulator, random blocks) labels every spike as the causal
    reference does with that mix."""
    from test_online_sorter import MODULE, assert_same

    from oe_plugin.host.blocks import RandomBlocks
    from oe_plugin.host.session import run_session
    from oe_plugin.host.sources import RecordingSource as HostSource
    from oe_plugin.protocol.oe_binary_events import write_binary_recording
    from offline import read_online_spikes
    from offline.sort import RecordingSource, settings_from_table, sort_recording
    from offline.sort.preprocess import Preprocessor

    data, truth, pos = synthetic_session(duration_s=6.0, seed=12)
    data = data + _correlated_noise(pos, np.full(len(pos), 16.0), 60.0, data.shape[1],
                                    13).astype(np.float32)
    rec = tmp_path / "rec" / "Record Node 101" / "experiment1" / "recording1"
    write_binary_recording(rec, sample_rate_hz=FS, n_samples=data.shape[1],
                           n_channels=data.shape[0], data_uv=data)
    settings = settings_from_table({"preprocess": {"filter": "causal", "upsample_factor": 1,
                                                   "whiten": "on", "whiten_radius_um": 60.0,
                                                   "whiten_detection": white_detect}})
    out = tmp_path / "white.sort"
    res = sort_recording(RecordingSource(str(tmp_path / "rec")), out, settings,
                         Probe("test-linear", pos, np.zeros(len(pos), int)))
    a = res.arrays
    assert a["whiten_index"].shape == a["whiten_weight"].shape == (len(pos), 5)
    assert res.n_units >= 6
    # sort.json records the settings as given (the merge tests ran at whitened_merge_scale x)
    assert res.meta["settings"]["sort"]["merge_distance"] == 0.1
    assert res.meta["settings"]["preprocess"]["whiten"] == "on"
    w = Whitening(a["whiten_index"], a["whiten_weight"])
    src = RecordingSource(str(tmp_path / "rec")).open()
    raw = Preprocessor(src, settings.preprocess).traces(30000, 150000, scaled=False)
    white = Preprocessor(src, settings.preprocess, whitening=w).traces(30000, 150000,
                                                                       scaled=False)
    np.testing.assert_allclose(white, w.apply(raw), rtol=1e-4, atol=1e-3)
    wm = np.load(out / "phy" / "whitening_mat.npy")  # Phy: whitened (n, C) = raw (n, C) @ wm
    np.testing.assert_allclose(wm, w.dense().T)
    np.testing.assert_allclose(wm @ np.load(out / "phy" / "whitening_mat_inv.npy"),
                               np.eye(len(pos)), atol=1e-9)

    def neighbour_corr(x):
        x = x[:, spike_free(x / np.median(np.abs(x), axis=1, keepdims=True) * 0.6745, 4.0, 30)]
        r = np.corrcoef(x)
        return np.mean([r[c, c + 1] for c in range(len(x) - 1)])

    assert neighbour_corr(raw) > 0.25 and abs(neighbour_corr(white)) < 0.08
    # the noise that scales the traces: the whitened ones' (MAD) when detecting on them, else
    # the plain ones' (the detection is then the unwhitened sort's)
    np.testing.assert_allclose(a["noise_uv"], np.median(np.abs(white if white_detect else raw),
                                                        axis=1) / 0.6745, rtol=0.05)
    config = tmp_path / "online_sorter.toml"
    config.write_text(f'[match]\nsort_dir = "{out}"\n')
    played = HostSource(tmp_path / "rec").read_uv(0, data.shape[1])
    want = causal_sort(played, FS, out)
    want = want[np.argsort(want["sample_index"], kind="stable")]
    assert (want["unit"] >= 0).mean() > 0.8
    run_session(MODULE, HostSource(tmp_path / "rec"),
                RandomBlocks(seed=3, max_size=3000, p_one=0.01), recording_dir=tmp_path / "on",
                config_path=config)
    assert_same(read_online_spikes(tmp_path / "on"), want)


def test_tracking_refuses_a_whitened_sort(whitened_sort):
    """The live tracker localizes peaks on the corrected (here whitened) traces and registers
    them against the sort's plain-trace peak raster: with a whitened sort the module refuses at
    load time, naming the fix, instead of tracking silently off for hours; without tracking the
    same sort loads with its mix."""
    from oe_plugin.online.motion_tracker import TrackSettings

    with pytest.raises(SortModelError, match='whiten = "off"'):
        load_sort_model(whitened_sort["folder"], whitened_sort["data"].shape[0], FS,
                        track=TrackSettings())
    model = load_sort_model(whitened_sort["folder"], whitened_sort["data"].shape[0], FS)
    assert model.whitening is not None and model.track is None


def test_whiten_setting_modes():
    """"auto" whitens only a sort that does not correct motion (on kriged traces the fixed mix
    over-splits); a bad value names the key."""
    from oe_plugin.config import SettingsError
    from offline.sort import settings_from_table
    from offline.sort.pipeline import whitens

    assert whitens("on", True) and whitens("on", False)
    assert whitens("auto", False) and not whitens("auto", True)
    assert not whitens("off", False)
    with pytest.raises(SettingsError, match="preprocess.whiten"):
        settings_from_table({"preprocess": {"whiten": "always"}})
    with pytest.raises(SettingsError, match="sort.whitened_merge_scale"):
        settings_from_table({"sort": {"whitened_merge_scale": 0.5}})
