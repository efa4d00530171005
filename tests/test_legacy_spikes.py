"""Legacy Open Ephys ``*.spikes`` reader, against the bundled GUI 0.6.7 recording and
synthetic files."""

from __future__ import annotations

import numpy as np
import pytest
from paths import EXAMPLE_DATA

from offline.legacy_spikes import (
    HEADER_BYTES,
    LegacySpikesError,
    read_header,
    read_legacy_spikes,
    record_dtype,
)

DATA = EXAMPLE_DATA
NODE = DATA / "Record Node 105"
needs_data = pytest.mark.skipif(not NODE.exists(), reason=f"bundled recording not found: {NODE}")
SPIKE_FILES = sorted(NODE.glob("Stereotrode*_example-data.spikes")) if NODE.exists() else []


@needs_data
def test_all_bundled_electrodes_read():
    assert len(SPIKE_FILES) == 8
    for k, path in enumerate(SPIKE_FILES, start=1):
        d = read_legacy_spikes(path)
        n = d["sample_numbers"].size
        assert n == (path.stat().st_size - HEADER_BYTES) // 216 and n > 100
        assert d["electrode"] == f"Stereotrode {k}"
        assert d["waveforms_uv"].shape == (n, 2, 40) and d["waveforms_uv"].dtype == np.float32
        assert d["sample_numbers"].dtype == np.int64
        assert np.all(np.diff(d["sample_numbers"]) > 0)
        # near the continuous data (251635..384754); the detector ran a second before recording
        assert 200_000 < d["sample_numbers"][0] and d["sample_numbers"][-1] < 384_755
        assert np.array_equal(d["channels"], [2 * k - 2, 2 * k - 1])
        assert np.all(d["sorted_id"] == 0)
        assert np.all(d["thresholds_uv"] == -50.0)
        assert np.all(d["recording_number"] == 0)
        assert d["sample_rate_hz"] == 40000.0
        assert d["bit_volts"] == pytest.approx([0.05, 0.05])
        # negative peaks at or below the -50 µV threshold, around sample 8-9 of 40
        peaks = d["waveforms_uv"].min(axis=(1, 2))
        assert np.median(peaks) < -55.0 and np.mean(peaks <= -49.0) > 0.95
        peak_index = d["waveforms_uv"].min(axis=1).argmin(axis=1)
        assert np.mean(np.abs(peak_index - 9) <= 2) > 0.8


@needs_data
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside open-ephys-python-tools
def test_waveforms_are_the_filtered_continuous_data():
    """Waveform sample j = Record Node 105 continuous sample (sample_number - 9 + j), ±1 bit."""
    from open_ephys.analysis import Session

    node = next(n for n in Session(str(DATA)).recordnodes if n.directory.endswith("105"))
    cont = node.recordings[0].continuous[0]
    x_uv = cont.samples.astype(np.float64) * 0.05
    first = int(cont.sample_numbers[0])
    for path in SPIKE_FILES:
        d = read_legacy_spikes(path)
        checked = 0
        for s, w in zip(d["sample_numbers"], d["waveforms_uv"], strict=True):
            i = int(s) - first - 9
            if i < 0 or i + 40 > x_uv.shape[0]:
                continue
            np.testing.assert_allclose(w, x_uv[i:i + 40, d["channels"]].T, atol=0.051)
            checked += 1
        assert checked > 50


@needs_data
def test_header():
    h = read_header(SPIKE_FILES[0])
    assert h["electrode"] == "Stereotrode 1" and h["num_channels"] == "2"
    assert h["samplesPerSpike"] == "40" and h["version"] == "0.6"


def _synthetic(tmp_path, n_spikes, n_channels=4, n_samples=32, bit_volts=0.195,
               tail=b"", name="Tetrode 1"):
    """A legacy spike file laid out as the GUI's OpenEphysFormat::writeSpike writes it."""
    dtype = record_dtype(n_channels, n_samples)
    assert dtype.itemsize == 42 + 2 * n_channels * n_samples + 6 * n_channels + 2
    rng = np.random.default_rng(0)
    r = np.zeros(n_spikes, dtype)
    r["event_type"] = 4
    r["sample_number"] = 1000 + 100 * np.arange(n_spikes)
    r["n_channels"] = n_channels
    r["n_samples"] = n_samples
    r["sorted_id"] = np.arange(n_spikes) % 3
    r["sample_rate_hz"] = 30000
    wave_uv = rng.normal(0, 20, (n_spikes, n_channels, n_samples))
    r["waveform"] = (wave_uv / bit_volts + 32768).astype(np.uint16)
    r["gain"] = int(1 / bit_volts) * 1000
    r["threshold_uv"] = -40
    r["recording_number"] = np.arange(n_spikes) % 2
    text = (f"header.format = 'Open Ephys Data Format'; \nheader.version = 0.6; \n"
            f"header.electrode = '{name}';\nheader.num_channels = {n_channels};\n"
            f"header.sampleRate = 30000;\nheader.samplesPerSpike = {n_samples};\n").encode()
    path = tmp_path / "Tetrode1.spikes"
    path.write_bytes(text.ljust(HEADER_BYTES, b" ") + r.tobytes() + tail)
    expected = (r["waveform"].astype(np.float64) - 32768) * 1000 / (int(1 / bit_volts) * 1000)
    return path, r, expected


def test_synthetic_file_without_sidecars(tmp_path):
    path, r, expected = _synthetic(tmp_path, 10)
    d = read_legacy_spikes(path)
    assert d["electrode"] == "Tetrode 1"
    assert d["channels"] is None  # no settings.xml next to it
    np.testing.assert_array_equal(d["sample_numbers"], r["sample_number"])
    np.testing.assert_array_equal(d["sorted_id"], r["sorted_id"])
    # without structure.openephys the gain is used: int(1/0.195) * 1000 -> 0.2 µV per bit
    assert d["bit_volts"] == pytest.approx([0.2] * 4)
    np.testing.assert_allclose(d["waveforms_uv"], expected, rtol=1e-6)
    d1 = read_legacy_spikes(path, recording_number=1)
    np.testing.assert_array_equal(d1["sample_numbers"], r["sample_number"][1::2])


def test_structure_file_gives_exact_bit_volts(tmp_path):
    path, r, _ = _synthetic(tmp_path, 3)
    (tmp_path / "structure.openephys").write_text(
        '<EXPERIMENT><RECORDING><STREAM>'
        f'<SPIKECHANNEL name="Tetrode 1" bitVolts="0.195" filename="{path.name}"/>'
        '</STREAM></RECORDING></EXPERIMENT>')
    d = read_legacy_spikes(path)
    assert d["bit_volts"] == pytest.approx([0.195] * 4)
    want = (r["waveform"].astype(np.float64) - 32768) * 0.195
    np.testing.assert_allclose(d["waveforms_uv"], want, rtol=1e-6)


def test_partial_tail_dropped_with_warning(tmp_path):
    path, r, _ = _synthetic(tmp_path, 5, tail=b"\x04\x01\x02")
    with pytest.warns(UserWarning, match="partial trailing record"):
        d = read_legacy_spikes(path)
    assert d["sample_numbers"].size == 5


def test_file_without_spikes(tmp_path):
    path, _, _ = _synthetic(tmp_path, 0)
    d = read_legacy_spikes(path)
    assert d["waveforms_uv"].shape == (0, 4, 32)
    assert d["sample_numbers"].shape == (0,)


def test_foreign_file_refused(tmp_path):
    path = tmp_path / "x.spikes"
    path.write_bytes(b"\x00" * 2000)
    with pytest.raises(LegacySpikesError, match="not an Open Ephys legacy-format file"):
        read_legacy_spikes(path)


def test_varying_record_layout_refused(tmp_path):
    path, r, _ = _synthetic(tmp_path, 4)
    raw = bytearray(path.read_bytes())
    second = HEADER_BYTES + r.dtype.itemsize
    raw[second + 19] = 3  # second record claims 3 channels
    path.write_bytes(bytes(raw))
    with pytest.raises(LegacySpikesError, match="varying size"):
        read_legacy_spikes(path)
