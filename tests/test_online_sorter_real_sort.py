"""The online sorter against a real ``sweepsort sort`` (not a hand-written sort folder): sort a
small synthetic Open Ephys Binary recording with the offline pipeline (causal filter, no
upsampling, as docs/plugin.md tells a lab to), load that folder online, and check the module's
labels against the offline causal matcher on the same recording, for random block sizes."""

from __future__ import annotations

import numpy as np
import pytest
from test_online_sorter import FS, MODULE, assert_same, synthetic_session

from oe_plugin.host.blocks import RandomBlocks
from oe_plugin.host.session import run_session
from oe_plugin.host.sources import RecordingSource as HostSource
from oe_plugin.online.match_model import load_sort_model
from oe_plugin.probe import Probe
from oe_plugin.protocol.oe_binary_events import write_binary_recording
from offline import read_online_spikes
from offline.online_match import causal_sort
from offline.sort import RecordingSource, load_sort, settings_from_table, sort_recording

pytestmark = pytest.mark.slow  # a real offline sort loaded online

C = 8


@pytest.fixture(scope="module")
def sorted_session(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_sort")
    data, truth, pos = synthetic_session(duration_s=8.0, seed=11)
    rec = root / "rec" / "Record Node 101" / "experiment1" / "recording1"
    write_binary_recording(rec, sample_rate_hz=FS, n_samples=data.shape[1], n_channels=C,
                           data_uv=data)
    settings = settings_from_table({"preprocess": {"filter": "causal", "upsample_factor": 1}})
    out = root / "first.sort"
    sort_recording(RecordingSource(str(root / "rec")), out, settings,
                   Probe("test-linear", pos, np.zeros(C, int)))
    played = HostSource(root / "rec").read_uv(0, data.shape[1])
    want = causal_sort(played, FS, out)
    want = want[np.argsort(want["sample_index"], kind="stable")]
    config = root / "online_sorter.toml"
    config.write_text(f'[match]\nsort_dir = "{out}"\n')
    return dict(root=root, rec=root / "rec", sort_dir=out, truth=truth, want=want,
                config=config, played=played)


def test_online_sorter_loads_a_real_sort_folder(sorted_session):
    model = load_sort_model(sorted_session["sort_dir"], C, FS)
    res = load_sort(sorted_session["sort_dir"])
    assert model.n_units == res.arrays["templates_uv"].shape[0] >= 4
    assert model.preprocess_filter == "causal"
    assert model.pre == res.meta["template_pre_samples"]
    np.testing.assert_array_equal(model.channels, res.arrays["template_channels"])
    # the causal reference labels most events, and mostly as the offline sort did
    want = sorted_session["want"]
    assert (want["unit"] >= 0).mean() > 0.8
    st, su = res.arrays["spike_index"], res.arrays["spike_unit"]
    ok = su >= 0
    st, su = st[ok], su[ok]
    hit = same = 0
    for t, u in zip(want["sample_index"], want["unit"], strict=True):
        if u < 0:
            continue
        j = np.searchsorted(st, t)
        near = [k for k in (j - 1, j) if 0 <= k < len(st) and abs(int(st[k]) - int(t)) <= 3]
        if near:
            hit += 1
            same += any(su[k] == u for k in near)
    assert hit > 0.8 * (want["unit"] >= 0).sum() and same > 0.9 * hit


@pytest.mark.parametrize("seed", [1, 2])
def test_online_module_equals_causal_sort_on_a_real_sort(sorted_session, tmp_path, seed):
    run_session(MODULE, HostSource(sorted_session["rec"]),
                RandomBlocks(seed=seed, max_size=3000, p_one=0.01), recording_dir=tmp_path,
                config_path=sorted_session["config"])
    assert_same(read_online_spikes(tmp_path), sorted_session["want"])
