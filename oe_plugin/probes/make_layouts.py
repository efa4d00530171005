"""Regenerate the probe layouts shipped with sweepsort (probeinterface JSON, one file each).

Run from anywhere: ``python oe_plugin/probes/make_layouts.py``. The files are written next to
this script and committed; :mod:`oe_plugin.probe` reads them. Every layout sets
``device_channel_indices`` (contact -> data channel of the Open Ephys stream, 0-based) and, where
several electrodes share a file, one probeinterface ``Probe`` per electrode or a ``shank_id``
per shank, so that electrodes never couple spatially.

Layouts (positions in µm):

- ``stereotrodes16``: 8 stereotrodes, data channels (0, 1), (2, 3), ... (14, 15) = the GUI's
  Spike Detector electrodes "Stereotrode 1..8" on channels 1+2, 3+4, ... (1-based); wires 20 µm
  apart, electrodes 500 µm apart (the distance between electrodes does not matter: each is its
  own probe, hence its own group).
- ``tetrodes16``: 4 tetrodes (wires on a 10 µm-radius diamond), channels 4k..4k+3.
- ``polytrode54``: the seed's uMap54_1b: 3 collinear columns at x = -43, 0, +43, 50 µm pitch,
  18 rows (y = 0..850). Data channels follow contact order: column by column (left, middle,
  right), bottom to top. The real uMap54 headstage wiring is lab specific: supply a file with
  the adapter's ``device_channel_indices`` for real recordings.
- ``linear32``: one column, 32 sites, 25 µm pitch, channel 0 at the tip (y = 0).
- ``neuropixels384``: Neuropixels 1.0 (probeinterface's catalogue part NP1000, no network
  needed), bank 0 = the first 384 electrodes, channel i = electrode i. probeinterface places
  the columns at x = 16, 48, 0, 32 µm (row parity); the layout is mirrored (x' = 59 - x) to the
  SpikeGLX / Kilosort channel-map convention x = 43, 11, 59, 27 µm. 20 µm vertical pitch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from probeinterface import (
    Probe,
    ProbeGroup,
    generate_linear_probe,
    generate_multi_columns_probe,
    write_probeinterface,
)
from probeinterface.neuropixels_tools import build_neuropixels_probe

HERE = Path(__file__).resolve().parent


def wire_bundles(kind: str, wires_um: np.ndarray) -> ProbeGroup:
    """One probe per bundle of ``len(wires_um)`` wires; bundle k on channels k*n..k*n+n-1.

    ``wires_um``: (n_wires, 2) wire positions relative to the bundle centre, µm. Bundles are
    500 µm apart in x; 16 channels in all.
    """
    n_wires = len(wires_um)
    group = ProbeGroup()
    for k in range(16 // n_wires):
        probe = Probe(ndim=2, si_units="um", name=f"{kind} {k + 1}")
        probe.set_contacts(positions=wires_um + [500.0 * k, 0.0], shapes="circle",
                           shape_params={"radius": 6.25})
        probe.set_device_channel_indices(np.arange(n_wires * k, n_wires * (k + 1)))
        probe.create_auto_shape(probe_type="tip")
        group.add_probe(probe)
    return group


def stereotrodes16() -> ProbeGroup:
    """8 stereotrodes on data channels (0, 1), (2, 3), ..., (14, 15); wires 20 µm apart."""
    return wire_bundles("Stereotrode", np.array([[-10.0, 0.0], [10.0, 0.0]]))


def tetrodes16() -> ProbeGroup:
    """4 tetrodes on data channels 4k..4k+3; wires on a 10 µm-radius diamond (as probeinterface's
    ``generate_tetrode``)."""
    return wire_bundles("Tetrode", np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0],
                                              [0.0, -10.0]]))


def polytrode54() -> Probe:
    """uMap54_1b: 3 collinear columns (x = -43, 0, +43 µm), 50 µm pitch, 18 rows."""
    probe = generate_multi_columns_probe(
        num_columns=3, num_contact_per_column=18, xpitch=43.0, ypitch=50.0,
        y_shift_per_column=[0.0, 0.0, 0.0], contact_shapes="circle",
        contact_shape_params={"radius": 7.5},
    )
    probe.move([-43.0, 0.0])
    probe.name = "polytrode54 (uMap54_1b geometry)"
    probe.set_device_channel_indices(np.arange(54))
    probe.create_auto_shape(probe_type="tip")
    return probe


def linear32() -> Probe:
    """One column of 32 sites, 25 µm pitch."""
    probe = generate_linear_probe(num_elec=32, ypitch=25.0)
    probe.name = "linear32"
    probe.set_device_channel_indices(np.arange(32))
    probe.create_auto_shape(probe_type="tip")
    return probe


def neuropixels384() -> Probe:
    """Neuropixels 1.0, bank 0 (384 sites), SpikeGLX x convention (43, 11, 59, 27 µm)."""
    full = build_neuropixels_probe("NP1000")
    probe = full.get_slice(np.arange(384))
    positions = probe.contact_positions.copy()
    positions[:, 0] = 59.0 - positions[:, 0]
    contour = np.asarray(probe.probe_planar_contour, dtype=float).copy()
    contour[:, 0] = 59.0 - contour[:, 0]
    probe.set_contacts(
        positions=positions,
        shapes=probe.contact_shapes,
        shape_params=list(probe.contact_shape_params),
        contact_ids=probe.contact_ids,
    )
    probe.set_planar_contour(contour[::-1])
    probe.name = "neuropixels384 (NP1000 bank 0)"
    probe.set_device_channel_indices(np.arange(384))
    return probe


LAYOUTS = {
    "stereotrodes16": stereotrodes16,
    "tetrodes16": tetrodes16,
    "polytrode54": polytrode54,
    "linear32": linear32,
    "neuropixels384": neuropixels384,
}


def main() -> None:
    for name, build in LAYOUTS.items():
        path = HERE / f"{name}.json"
        write_probeinterface(path, build())
        print(path)


if __name__ == "__main__":
    main()
