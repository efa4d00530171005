"""Probe geometry: shipped layouts, probeinterface files, neighbour masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probeinterface import Probe as PiProbe
from probeinterface import ProbeGroup, generate_linear_probe, write_probeinterface

from oe_plugin.probe import (
    Probe,
    ProbeError,
    list_probes,
    load_probe,
    neighbour_lists,
    neighbour_mask,
)

SHIPPED = {"stereotrodes16": 16, "tetrodes16": 16, "polytrode54": 54, "linear32": 32,
           "neuropixels384": 384}


def test_list_probes_names_every_shipped_layout():
    assert set(list_probes()) == {"single", *SHIPPED}


@pytest.mark.parametrize("name,n", SHIPPED.items())
def test_shipped_layout_loads(name, n):
    probe = load_probe(name, n)
    assert probe.name == name
    assert probe.n_channels == n
    assert probe.positions_um.shape == (n, 2) and probe.positions_um.dtype == np.float64
    assert probe.groups.shape == (n,)
    assert len({tuple(p) for p in probe.positions_um}) == n  # no two sites at one place
    mask = neighbour_mask(probe, 100.0)
    assert mask.dtype == np.uint8 and mask.shape == (n, n)
    assert np.array_equal(mask, mask.T) and np.all(np.diag(mask) == 1)


@pytest.mark.parametrize("name,n", SHIPPED.items())
def test_shipped_layout_has_wrong_count_error(name, n):
    with pytest.raises(ProbeError, match=rf"maps {n} contacts.*stream has {n + 1} channels"):
        load_probe(name, n + 1)


def test_stereotrode_partners_are_the_only_neighbours():
    probe = load_probe("stereotrodes16", 16)
    expected = np.zeros((16, 16), np.uint8)
    for k in range(8):
        expected[2 * k:2 * k + 2, 2 * k:2 * k + 2] = 1
    # even an enormous radius never couples different stereotrodes
    for radius in (0.0, 25.0, 1e6, np.inf):
        got = neighbour_mask(probe, radius)
        assert np.array_equal(got, expected if radius >= 20 else np.eye(16, dtype=np.uint8))
    assert len(np.unique(probe.groups)) == 8


def test_tetrodes_group_by_four():
    probe = load_probe("tetrodes16", 16)
    mask = neighbour_mask(probe, 1e6)
    assert np.array_equal(mask, np.kron(np.eye(4, dtype=np.uint8), np.ones((4, 4), np.uint8)))


def test_polytrode54_is_umap54_1b():
    probe = load_probe("polytrode54", 54)
    xs = probe.positions_um[:, 0]
    ys = probe.positions_um[:, 1]
    assert sorted(set(xs)) == [-43.0, 0.0, 43.0]
    for x in (-43.0, 0.0, 43.0):
        assert np.array_equal(np.sort(ys[xs == x]), 50.0 * np.arange(18))
    # within 50 µm: the site above/below; 43 µm: the sites beside it
    mask = neighbour_mask(probe, 50.0)
    middle = int(np.flatnonzero((xs == 0) & (ys == 400))[0])
    assert set(np.flatnonzero(mask[middle])) == set(
        np.flatnonzero((np.abs(xs) + np.abs(ys - 400) <= 50) & ((xs == 0) | (ys == 400))))
    assert mask[middle].sum() == 5


def test_linear32_pitch_and_neighbours():
    probe = load_probe("linear32", 32)
    assert np.array_equal(probe.positions_um[:, 1], 25.0 * np.arange(32))
    mask = neighbour_mask(probe, 25.0)
    assert np.array_equal(mask.sum(axis=1), [2] + [3] * 30 + [2])


def test_neuropixels384_checkerboard():
    probe = load_probe("neuropixels384", 384)
    pos = probe.positions_um
    assert np.array_equal(pos[:4], [[43, 0], [11, 0], [59, 20], [27, 20]])
    assert np.array_equal(pos[:, 1], 20.0 * (np.arange(384) // 2))
    rows = np.arange(384) // 2
    expected_x = np.where(rows % 2 == 0, np.where(np.arange(384) % 2 == 0, 43, 11),
                          np.where(np.arange(384) % 2 == 0, 59, 27))
    assert np.array_equal(pos[:, 0], expected_x)
    assert np.unique(probe.groups).size == 1


@pytest.mark.parametrize("spec", [None, "single", ""])
@pytest.mark.parametrize("n", [1, 7, 384])
def test_single_probe_has_no_spatial_coupling(spec, n):
    probe = load_probe(spec, n)
    assert probe.name == "single" and probe.n_channels == n
    assert np.array_equal(neighbour_mask(probe, 1e9), np.eye(n, dtype=np.uint8))


@pytest.mark.parametrize("bad", [0, -3, 2.5, "16", True])
def test_bad_channel_count(bad):
    with pytest.raises(ProbeError, match="n_channels"):
        load_probe("single", bad)


def test_unknown_name_lists_shipped_layouts():
    with pytest.raises(ProbeError, match="stereotrodes16") as info:
        load_probe("stereotrode16", 16)
    assert "no such shipped layout" in str(info.value)


def _write(tmp_path, probe_or_group, name="probe.json"):
    path = tmp_path / name
    write_probeinterface(path, probe_or_group)
    return path


def test_device_channel_indices_reorder_contacts(tmp_path):
    pi = generate_linear_probe(num_elec=8, ypitch=20)
    wiring = np.array([3, 0, 6, 1, 7, 2, 5, 4])
    pi.set_device_channel_indices(wiring)
    probe = load_probe(_write(tmp_path, pi), 8)
    assert probe.name == "probe"
    for contact, channel in enumerate(wiring):
        assert probe.positions_um[channel, 1] == 20.0 * contact


def test_missing_device_channel_indices_means_contact_order(tmp_path):
    group = ProbeGroup()
    for k in range(2):
        pi = generate_linear_probe(num_elec=4, ypitch=20)
        pi.move([300.0 * k, 0.0])
        group.add_probe(pi)
    probe = load_probe(_write(tmp_path, group), 8)
    assert np.array_equal(probe.positions_um[:, 0], [0] * 4 + [300] * 4)
    assert np.array_equal(probe.groups, [0] * 4 + [1] * 4)


def test_unconnected_contacts_are_skipped(tmp_path):
    pi = generate_linear_probe(num_elec=6, ypitch=20)
    pi.set_device_channel_indices([0, -1, 1, 2, -1, 3])
    probe = load_probe(_write(tmp_path, pi), 4)
    assert np.array_equal(probe.positions_um[:, 1], [0, 40, 60, 100])


def test_shanks_are_groups(tmp_path):
    pi = generate_linear_probe(num_elec=8, ypitch=20)
    pi.set_shank_ids(["a"] * 4 + ["b"] * 4)
    pi.set_device_channel_indices(np.arange(8))
    probe = load_probe(_write(tmp_path, pi), 8)
    assert probe.groups[0] == probe.groups[3] != probe.groups[4] == probe.groups[7]
    assert neighbour_mask(probe, 1e6)[0, 4] == 0


def test_duplicate_channel_error(tmp_path):
    pi = generate_linear_probe(num_elec=4)
    pi.set_device_channel_indices([0, 1, 1, 2])
    path = _write(tmp_path, pi)
    with pytest.raises(ProbeError, match=r"used by several contacts: \[1\]") as info:
        load_probe(path, 4)
    assert str(path) in str(info.value)


def test_out_of_range_channel_error(tmp_path):
    pi = generate_linear_probe(num_elec=4)
    pi.set_device_channel_indices([0, 1, 2, 9])
    with pytest.raises(ProbeError, match=r"out of range 0\.\.3: \[9\]"):
        load_probe(_write(tmp_path, pi), 4)


def test_count_mismatch_names_file_and_counts(tmp_path):
    pi = generate_linear_probe(num_elec=32)
    path = _write(tmp_path, pi, "my32.json")
    with pytest.raises(ProbeError) as info:
        load_probe(path, 16)
    msg = str(info.value)
    assert "my32.json" in msg and "32 contacts" in msg and "16 channels" in msg


@pytest.mark.parametrize("content", ["not json", "{}", '{"specification": "x"}', "[1, 2]"])
def test_foreign_file_is_a_probe_error(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ProbeError, match="bad.json"):
        load_probe(path, 4)


def test_missing_file_is_a_probe_error(tmp_path):
    with pytest.raises(ProbeError, match="no such file"):
        load_probe(tmp_path / "nothere.json", 4)


def test_3d_probe_uses_x_and_y(tmp_path):
    pi = PiProbe(ndim=3, si_units="um")
    pos = np.array([[0.0, 0.0, 5.0], [0.0, 30.0, 5.0]])
    pi.set_contacts(positions=pos, plane_axes=[[[1, 0, 0], [0, 1, 0]]] * 2,
                    shapes="circle", shape_params={"radius": 5})
    probe = load_probe(_write(tmp_path, pi), 2)
    assert np.array_equal(probe.positions_um, pos[:, :2])


def test_probe_is_immutable():
    probe = load_probe("linear32", 32)
    with pytest.raises(ValueError):
        probe.positions_um[0, 0] = 1.0
    with pytest.raises(AttributeError):
        probe.name = "x"


def test_probe_validates_shapes():
    with pytest.raises(ProbeError, match="shape"):
        Probe("p", np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ProbeError, match="groups"):
        Probe("p", np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ProbeError, match="NaN"):
        Probe("p", np.full((3, 2), np.nan), np.zeros(3))


def test_negative_radius_refused():
    with pytest.raises(ValueError, match="radius_um"):
        neighbour_mask(load_probe("single", 3), -1.0)


@settings(max_examples=60, deadline=None)
@given(
    positions=st.lists(st.tuples(st.integers(-200, 200), st.integers(-200, 200)),
                       min_size=1, max_size=25),
    data=st.data(),
    radius_um=st.floats(0, 500),
)
def test_neighbour_mask_matches_definition(positions, data, radius_um):
    n = len(positions)
    groups = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    probe = Probe("random", np.array(positions, float), np.array(groups))
    mask = neighbour_mask(probe, radius_um)
    for i in range(n):
        for j in range(n):
            d = np.hypot(*(probe.positions_um[i] - probe.positions_um[j]))
            want = i == j or (groups[i] == groups[j] and d <= radius_um + 1e-6)
            assert mask[i, j] == want
    indptr, indices = neighbour_lists(probe, radius_um)
    assert indptr.dtype == np.int32 and indices.dtype == np.int32
    assert indptr[0] == 0 and indptr[-1] == indices.size == mask.sum()
    for c in range(n):
        row = indices[indptr[c]:indptr[c + 1]]
        assert np.array_equal(row, np.flatnonzero(mask[c]))
