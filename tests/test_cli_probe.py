"""Which probe ``sweepsort sort`` / ``detect`` use: the recording's own (Neuropixels positions in
the GUI's settings.xml), an explicit ``--probe``, and a clear error instead of a silent
``single`` when a multi-channel recording has none."""

from __future__ import annotations

import json

import numpy as np
from paths import EXAMPLE_DATA
from test_recording import write_binary_recording

from offline.cli import main as cli_main
from offline.probe_source import resolve_probe
from offline.recording import open_recording
from offline.sort import load_sort


def neuropixels_settings_xml(n_channels: int, stream: str = "ProbeA-AP") -> str:
    """A minimal GUI 0.6 settings.xml: a Neuropix-PXI source with one NP 1.0 probe whose
    first ``n_channels`` electrodes are selected."""
    sel = " ".join(f'CH{i}="{i}"' for i in range(n_channels))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SETTINGS>
  <INFO><VERSION>0.6.7</VERSION></INFO>
  <SIGNALCHAIN>
    <PROCESSOR name="Sources/Neuropix-PXI" nodeId="100" libraryVersion="0.4.1">
      <STREAM name="{stream}" sample_rate="30000.0" channel_count="{n_channels}"/>
      <EDITOR>
        <NP_PROBE slot="2" port="1" dock="1" probe_serial_number="18194814141"
                  probe_part_number="PRB_1_4_0480_1">
          <SELECTED_ELECTRODES {sel}/>
        </NP_PROBE>
      </EDITOR>
    </PROCESSOR>
    <PROCESSOR name="Record Node" nodeId="102"/>
  </SIGNALCHAIN>
</SETTINGS>
"""


def _session(tmp_path, n_channels=4, n=6000, stream="Rhythm Data", settings=None):
    node = tmp_path / "s" / "Record Node 102"
    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (n_channels, n))
    data[:, 1000::700] -= 300  # a few spikes, so that the sort has something to do
    write_binary_recording(node / "experiment1" / "recording1", data, 0, [], stream=stream)
    if settings is not None:
        (node / "settings.xml").write_text(settings)
    return tmp_path / "s"


def test_multichannel_sort_without_probe_fails_with_a_hint(tmp_path, capsys):
    session = _session(tmp_path)
    out = tmp_path / "o"
    assert cli_main(["sort", str(session), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("sweepsort sort: 4 channels and no probe geometry in the recording")
    assert "--probe" in err and "linear32" in err and "polytrode54" in err
    assert "--probe single" in err
    assert not (out / "sort.json").exists()
    # the real 16-channel example: its settings.xml has no electrode positions
    assert cli_main(["sort", str(EXAMPLE_DATA), "--out", str(out), "--quiet"]) == 2
    assert "settings.xml has no Neuropixels electrode positions" in capsys.readouterr().err


def test_explicit_single_sorts_and_says_so(tmp_path, capsys):
    session = _session(tmp_path)
    out = tmp_path / "o"
    assert cli_main(["sort", str(session), "--out", str(out), "--probe", "single",
                     "--jobs", "1", "--quiet"]) == 0
    assert "probe: single (4 channels) from --probe" in capsys.readouterr().out
    meta = load_sort(out).meta
    assert meta["probe"] == "single" and "from --probe" in meta["probe_origin"]


def test_probe_from_the_recordings_settings_xml(tmp_path, capsys):
    session = _session(tmp_path, n_channels=8, stream="ProbeA-AP",
                       settings=neuropixels_settings_xml(8))
    rec = open_recording(session)
    probe, origin = resolve_probe(None, None, rec, require=True)
    assert probe.name == "PRB_1_4_0480_1:ProbeA"
    assert origin.startswith("ProbeA (PRB_1_4_0480_1, 8 channels) from ")
    assert origin.endswith("Record Node 102/settings.xml")
    # NP 1.0 checkerboard: 2 sites per row, 20 µm rows, 16/48 and 0/32 µm columns
    np.testing.assert_allclose(probe.positions_um[:, 1], [0, 0, 20, 20, 40, 40, 60, 60])
    np.testing.assert_allclose(probe.positions_um[:4, 0], [16, 48, 0, 32])

    out = tmp_path / "det"
    assert cli_main(["detect", str(session), "--out", str(out), "--quiet"]) == 0
    assert "probe: ProbeA (PRB_1_4_0480_1, 8 channels) from " in capsys.readouterr().out
    assert json.loads((out / "peaks.json").read_text())["probe"] == "PRB_1_4_0480_1:ProbeA"

    out = tmp_path / "sort"
    assert cli_main(["sort", str(session), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    assert "probe: ProbeA (PRB_1_4_0480_1, 8 channels) from " in capsys.readouterr().out
    meta = load_sort(out).meta
    assert meta["probe"] == "PRB_1_4_0480_1:ProbeA"
    np.testing.assert_allclose(load_sort(out).arrays["channel_positions_um"], probe.positions_um)
    # --probe still wins over the recording's probe
    assert cli_main(["detect", str(session), "--out", str(out / "d2"), "--probe", "single",
                     "--quiet"]) == 0
    assert "probe: single (8 channels) from --probe" in capsys.readouterr().out


def test_probe_of_another_stream_or_wrong_size_is_not_used_silently(tmp_path, capsys):
    # the settings file describes ProbeB; the recorded stream is something else: no probe
    session = _session(tmp_path, stream="Rhythm Data", settings=neuropixels_settings_xml(
        4, stream="ProbeB-AP"))
    assert resolve_probe(None, None, open_recording(session), require=False)[0].name == "single"
    # the probe maps 6 contacts, the stream has 4 channels: an error naming the file
    session = _session(tmp_path / "b", stream="ProbeA-AP",
                       settings=neuropixels_settings_xml(6))
    assert cli_main(["sort", str(session), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "settings.xml" in err and "6 contacts" in err and "4 channels" in err


def test_detect_falls_back_to_single_and_says_so(capsys, tmp_path):
    assert cli_main(["detect", str(EXAMPLE_DATA), "--node", "101", "--out", str(tmp_path),
                     "--threshold-uv", "60", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "probe: single (16 channels, no spatial coupling): no --probe and no probe " \
           "geometry in the recording" in out
