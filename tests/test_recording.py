"""offline.recording reads Open Ephys recordings (legacy, Binary) and flat binary as µV blocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from open_ephys.analysis import Session
from paths import EXAMPLE_DATA

from oe_plugin.protocol import oe_binary_events as oe_binary
from oe_plugin.protocol.ttl_sim import TTL_EVENT_DTYPE
from offline.recording import (
    TTL_DTYPE,
    RecordingError,
    open_flat_binary,
    open_recording,
)

EXAMPLE = EXAMPLE_DATA

# python-tools' own legacy loader (used here as the reference) warns under numpy >= 1.25
pytestmark = pytest.mark.filterwarnings(
    "ignore:Conversion of an array with ndim:DeprecationWarning")
BIT_VOLTS = 0.195


# ---------------------------------------------------------------------------------------------
# legacy format: the real example recording
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tools_continuous():
    session = Session(str(EXAMPLE))
    return {node: session.recordnodes[i].recordings[0] for i, node in enumerate((101, 105))}


@pytest.mark.parametrize("node", [101, 105])
def test_legacy_matches_python_tools(tools_continuous, node):
    rec = open_recording(EXAMPLE, node=node)
    tools = tools_continuous[node].continuous[0]
    assert rec.format == "open-ephys" and rec.stream_name == "example_data"
    assert (rec.n_channels, rec.n_samples, rec.sample_rate_hz) == (16, 133120, 40000.0)
    assert rec.first_sample_number == int(tools.sample_numbers[0]) == 251635
    assert rec.channel_names[0] == "CH1" and rec.bit_volts[0] == pytest.approx(0.05)
    whole = rec.read_uv(0, rec.n_samples)
    assert whole.dtype == np.float32 and whole.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(whole, tools.get_samples(0, rec.n_samples).T.astype(np.float32))
    # odd ranges across 1024-sample records, channel subsets by index and name
    np.testing.assert_array_equal(rec.read_uv(1023, 3073, channels=[5, "CH2"]),
                                  whole[[5, 1], 1023:3073])
    assert rec.read_uv(7, 7).shape == (16, 0)
    chunks = np.concatenate([b for _, b in rec.iter_chunks_uv(50_000)], axis=1)
    np.testing.assert_array_equal(chunks, whole)


def test_legacy_ttl_events(tools_continuous):
    ev = open_recording(EXAMPLE).ttl_events()
    assert ev.dtype == TTL_DTYPE and ev.size == 128
    assert np.all(np.diff(ev["sample_number"]) >= 0)
    assert ev["line"].min() == 0 and ev["line"].max() == 63          # 0-based
    # file order kept: each pulse's rising edge precedes its falling edge at the same sample
    assert ev[:2].tolist() == [(251635, 0, True), (251635, 0, False)]
    df = tools_continuous[101].events
    ours = sorted(zip(ev["sample_number"].tolist(), (ev["line"] + 1).tolist(),
                      ev["state"].tolist(), strict=True))
    theirs = sorted(zip(df.sample_number.tolist(), df.line.astype(int).tolist(),
                        (df.state > 0).tolist(), strict=True))
    assert ours == theirs


def test_node_selection_and_errors(tmp_path):
    assert open_recording(EXAMPLE).path.name == "Record Node 101"
    assert open_recording(EXAMPLE, node=1).path.name == "Record Node 105"
    assert open_recording(EXAMPLE, node="Record Node 105").path.name == "Record Node 105"
    assert open_recording(EXAMPLE / "Record Node 105").path.name == "Record Node 105"
    with pytest.raises(RecordingError, match="'Record Node 101'.*'Record Node 105'"):
        open_recording(EXAMPLE, node=102)
    with pytest.raises(RecordingError, match="recording index 1 out of range"):
        open_recording(EXAMPLE, recording=1)
    with pytest.raises(RecordingError, match="no stream named 'AP'.*example_data"):
        open_recording(EXAMPLE, stream="AP")
    with pytest.raises(RecordingError, match="no such folder"):
        open_recording(tmp_path / "missing")
    with pytest.raises(RecordingError, match="no Open Ephys recording"):
        open_recording(tmp_path)
    rec = open_recording(EXAMPLE)
    with pytest.raises(RecordingError, match="outside"):
        rec.read_uv(0, rec.n_samples + 1)
    with pytest.raises(RecordingError, match="no channel named"):
        rec.read_uv(0, 10, channels=["CH99"])


def test_legacy_truncated_file(tmp_path):
    node = tmp_path / "Record Node 101"
    shutil.copytree(EXAMPLE / "Record Node 101", node)
    for f in node.iterdir():
        f.chmod(0o644)
    ch1 = node / "100_example-data_CH1.continuous"
    with open(ch1, "r+b") as f:
        f.truncate(ch1.stat().st_size - 100)
    with pytest.raises(RecordingError, match="CH1.continuous: truncated"):
        open_recording(tmp_path)
    rec = open_recording(tmp_path, allow_truncated=True)
    assert rec.n_samples == 129 * 1024
    np.testing.assert_array_equal(rec.read_uv(0, 2048),
                                  open_recording(EXAMPLE).read_uv(0, 2048))


# ---------------------------------------------------------------------------------------------
# Binary format: a tiny recording written here
# ---------------------------------------------------------------------------------------------
def one_recording_session(tmp_path: Path, data_uv: np.ndarray) -> tuple[Path, Path]:
    """``(session folder, recording folder)`` of a one-recording Binary session under
    ``tmp_path/"s"`` holding ``data_uv`` (C, N) µV at 30 kHz, no TTLs."""
    rec_dir = tmp_path / "s" / "Record Node 102" / "experiment1" / "recording1"
    write_binary_recording(rec_dir, data_uv, 0, [])
    return tmp_path / "s", rec_dir


def write_binary_recording(rec_dir: Path, data_uv: np.ndarray, first_sample: int, ttl,
                           fs=30000.0, stream="Rhythm Data", extra_stream=False,
                           full_words=True):
    """Write an Open Ephys Binary recording folder (GUI 0.6 layout, Record Node 102) holding
    ``data_uv`` (channels, samples) and TTL rows ``(sample_number, line0, state, word)`` stored
    as given (the project's writer, :mod:`oe_plugin.protocol.oe_binary_events`)."""
    streams = [(stream, data_uv)] + ([("ADC", data_uv[:2] * 0.5)] if extra_stream else [])
    folder = None
    for name, data in streams:
        f = oe_binary.write_binary_recording(rec_dir, sample_rate_hz=fs, data_uv=data,
                                             first_sample_number=first_sample,
                                             stream_name=name, bit_volts=BIT_VOLTS,
                                             recorded_processor_id=102)
        folder = folder or f
    ttl = np.array(ttl, dtype=np.int64).reshape(-1, 4)
    events = np.zeros(len(ttl), TTL_EVENT_DTYPE)
    events["sample_number"], events["line"], events["state"] = ttl[:, 0], ttl[:, 1], ttl[:, 2]
    oe_binary.write_ttl_events(rec_dir, events, sample_rate_hz=fs, folder=folder,
                               stream_name=stream, with_full_words=full_words, words=ttl[:, 3])


@pytest.fixture
def binary_session(tmp_path):
    rng = np.random.default_rng(0)
    node = tmp_path / "session" / "Record Node 102"
    data1 = np.round(rng.normal(0, 50, (4, 5000)) / BIT_VOLTS) * BIT_VOLTS
    data2 = np.round(rng.normal(0, 50, (4, 300)) / BIT_VOLTS) * BIT_VOLTS
    # a 2-bit word change 0b00 -> 0b11 at one sample: two rows, same sample number
    ttl1 = [(1500, 1, 1, 0b10), (1200, 0, 1, 0b01), (1200, 1, 1, 0b11), (1200, 0, 0, 0b10),
            (4000, 1, 0, 0b00)]
    write_binary_recording(node / "experiment1" / "recording1", data1, 30_000, ttl1,
                           extra_stream=True)
    write_binary_recording(node / "experiment1" / "recording2", data2, 90_000, [],
                           full_words=False)
    return tmp_path / "session", data1, data2


def test_binary_reads_data_ttl_and_full_words(binary_session):
    session, data1, data2 = binary_session
    rec = open_recording(session)
    assert rec.format == "binary" and rec.stream_name == "Rhythm Data"
    assert (rec.n_channels, rec.n_samples, rec.first_sample_number) == (4, 5000, 30_000)
    np.testing.assert_allclose(rec.read_uv(0, 5000), data1, atol=1e-3)
    np.testing.assert_array_equal(rec.read_uv(17, 4000, [2, 0]),
                                  rec.read_uv(0, 5000)[[2, 0], 17:4000])
    tools = Session(str(session)).recordnodes[0].recordings[0].continuous[0]
    np.testing.assert_array_equal(rec.read_uv(0, 5000),
                                  tools.get_samples(0, 5000).T.astype(np.float32))
    ev = rec.ttl_events()
    assert ev.dtype.names == ("sample_number", "line", "state", "full_words")
    assert ev.tolist() == [(1200, 0, True, 0b01), (1200, 1, True, 0b11), (1200, 0, False, 0b10),
                           (1500, 1, True, 0b10), (4000, 1, False, 0b00)]
    second = open_recording(session, recording=1)
    assert (second.n_samples, second.first_sample_number) == (300, 90_000)
    np.testing.assert_allclose(second.read_uv(0, 300), data2, atol=1e-3)
    assert second.ttl_events().dtype == TTL_DTYPE and second.ttl_events().size == 0
    adc = open_recording(session, stream="ADC")
    assert adc.n_channels == 2 and adc.ttl_events().size == 0
    assert open_recording(session, stream=1).stream_name == "ADC"
    with pytest.raises(RecordingError, match="0: 'Rhythm Data', 1: 'ADC'"):
        open_recording(session, stream="LFP")
    with pytest.raises(RecordingError, match="experiment1/recording2"):
        open_recording(session, recording=5)


def test_binary_folder_kinds(binary_session):
    session, _, _ = binary_session
    node = session / "Record Node 102"
    rec_dir = node / "experiment1" / "recording2"
    for path, n in [(node, 5000), (node / "experiment1", 5000), (rec_dir, 300),
                    (rec_dir / "structure.oebin", 300)]:
        assert open_recording(path).n_samples == n
    assert open_recording(session, node=102).n_samples == 5000
    assert open_recording(session, node=0).n_samples == 5000


def test_binary_truncated(binary_session):
    session, _, _ = binary_session
    dat = (session / "Record Node 102" / "experiment1" / "recording1" / "continuous"
           / "Acquisition_Board-100.Rhythm Data" / "continuous.dat")
    with open(dat, "ab") as f:
        f.write(b"\x01\x02\x03")            # a crash mid-frame
    with pytest.raises(RecordingError, match="truncated"):
        open_recording(session)
    assert open_recording(session, allow_truncated=True).n_samples == 5000
    with open(dat, "r+b") as f:
        f.truncate(8 * 4000)                # whole frames, but fewer than sample_numbers.npy
    with pytest.raises(RecordingError, match="5000 sample numbers for 4000 samples"):
        open_recording(session)
    assert open_recording(session, allow_truncated=True).n_samples == 4000


def test_flat_binary(tmp_path):
    raw = np.arange(-60, 60, dtype=np.int16).reshape(40, 3)     # (samples, channels)
    path = tmp_path / "data.dat"
    path.write_bytes(b"H" * 16 + raw.tobytes())
    rec = open_flat_binary(path, "int16", 3, 20000.0, gain_uv=[0.5, 1.0, 2.0], offset=16)
    assert (rec.n_channels, rec.n_samples, rec.first_sample_number) == (3, 40, 0)
    np.testing.assert_array_equal(rec.read_uv(0, 40), raw.T * np.array([[0.5], [1.0], [2.0]]))
    assert rec.ttl_events().size == 0
    shifted = open_flat_binary(path, "int16", 3, 20000.0, 0.25, 16, offset_uv=-1.0)
    np.testing.assert_array_equal(shifted.read_uv(3, 5, [1]), raw[3:5, 1][None] * 0.25 - 1.0)
    with pytest.raises(RecordingError, match="truncated"):
        open_flat_binary(path, "int16", 3, 20000.0, 1.0, offset=15)
    with pytest.raises(RecordingError, match="no such file"):
        open_flat_binary(tmp_path / "x.dat", "int16", 3, 20000.0, 1.0)


def test_read_uv_rows_is_the_transpose_of_read_uv(tmp_path):
    from offline.recording import open_recording

    for rec in (open_recording(EXAMPLE, node=101),):
        a = rec.read_uv(100, 1100)
        b = rec.read_uv_rows(100, 1100)
        assert b.shape == (1000, rec.n_channels) and b.flags.c_contiguous
        np.testing.assert_array_equal(b, a.T)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int32"])
def test_tiled_scaling_gives_numpys_bits_for_any_block(tmp_path, dtype):
    """Blocks are scaled in tiles of SCALE_TILE samples; every float32 must be the one numpy's
    whole-block multiply gives (integer x float64 gain, rounded once), channel subsets and a
    last partial tile too."""
    from offline.recording import base

    rng = np.random.default_rng(3)
    n_ch, n = 37, 5 * base.SCALE_TILE + 101  # not a multiple of the tile
    info = np.iinfo(dtype)
    raw = rng.integers(info.min, info.max, size=(n, n_ch), dtype=dtype, endpoint=True)
    gain = rng.uniform(0.05, 3.0, n_ch)
    path = tmp_path / "data.dat"
    path.write_bytes(raw.tobytes())
    rec = open_flat_binary(path, dtype, n_ch, 30000.0, gain_uv=gain)
    chans = [3, 0, 36, 7, 7]
    for block, sel, first in ((rec.read_uv(0, n), slice(None), 0),
                              (rec.read_uv(5, n, chans), chans, 5)):
        expect = np.empty(block.shape, np.float32)
        np.multiply(raw[first:, sel].T, gain[sel][:, None], out=expect, casting="unsafe")
        assert block.shape[1] > 2 * base.SCALE_TILE
        np.testing.assert_array_equal(block.view(np.uint32), expect.view(np.uint32))
