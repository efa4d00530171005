"""Online spike file: writer (real-time rules) and reader (recovery, validation)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import GILHOST_SRC

import offline
from oe_plugin.outputs import SPIKE_DTYPE, SpikeFileWriter, spike_file
from offline.online_spikes import (
    OnlineFileError,
    OnlineFileWarning,
    read_online_spikes,
    read_online_spikes_meta,
)

FS_HZ = 30000.0


def _records(n, seed=0, start=0):
    rng = np.random.default_rng(seed)
    r = np.zeros(n, SPIKE_DTYPE)
    r["sample_number"] = start + np.sort(rng.integers(0, 40 * max(n, 1), n))
    r["channel"] = rng.integers(0, 64, n)
    r["amplitude_uv"] = rng.normal(-80, 20, n).astype(np.float32)
    r["unit"] = rng.integers(-1, 5, n)
    r["displacement_um"] = rng.normal(0, 10, n).astype(np.float32)
    return r


def _write_blocks(writer, records, sizes):
    """Append ``records`` in consecutive blocks of ``sizes`` (cycled), flushing per block."""
    assert any(sizes), "block sizes must not all be 0 (the loop would never end)"
    i = 0
    k = 0
    while i < records.size:
        n = min(sizes[k % len(sizes)], records.size - i)
        chunk = records[i:i + n]
        assert writer.append(chunk["sample_number"].copy(), chunk["channel"].copy(),
                             chunk["amplitude_uv"].copy(), chunk["unit"].copy(), n,
                             chunk["displacement_um"].copy())
        i += n
        k += 1
        now = int(chunk["sample_number"][-1]) if n else 0
        assert writer.maybe_flush(now)


def _body_bytes(writer):
    return writer.path.stat().st_size - writer.header_bytes_on_disk


@pytest.fixture
def open_writer(tmp_path):
    made = []

    def make(**kw):
        kw.setdefault("metadata", {"module": "test"})
        w = SpikeFileWriter.open(tmp_path, FS_HZ, 64, **kw)
        w.header_bytes_on_disk = w.path.stat().st_size
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def test_round_trip_many_flushes(tmp_path, open_writer):
    records = _records(5000, seed=1)
    w = open_writer(capacity_records=64, flush_every_s=0.001)
    _write_blocks(w, records, [1, 7, 0, 63, 64, 65, 200, 3])
    assert w.close()
    assert w.n_written == records.size and w.n_dropped == 0 and w.n_errors == 0
    got = offline.read_online_spikes(tmp_path)
    assert got.dtype == SPIKE_DTYPE
    assert list(got.dtype.names) == ["sample_number", "channel", "amplitude_uv", "unit",
                                     "displacement_um"]
    assert got.dtype.itemsize == 20
    np.testing.assert_array_equal(got, records)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 50), min_size=1, max_size=8).filter(any),
       capacity=st.integers(1, 40), n=st.integers(0, 300), seed=st.integers(0, 2**16))
def test_round_trip_any_blocking(tmp_path_factory, sizes, capacity, n, seed):
    directory = tmp_path_factory.mktemp("rec")
    records = _records(n, seed=seed)
    rng = np.random.default_rng(seed)
    records = records[rng.permutation(n)]  # arrival order need not be sorted
    w = SpikeFileWriter.open(directory, FS_HZ, 64, {}, capacity_records=capacity,
                             flush_every_s=0.01)
    _write_blocks(w, records, sizes)
    assert w.close()
    got = read_online_spikes(directory)
    order = np.argsort(records["sample_number"], kind="stable")
    np.testing.assert_array_equal(got, records[order])


def test_units_none_means_unsorted(tmp_path, open_writer):
    w = open_writer()
    w.append(np.array([5, 3]), np.array([1, 2]), np.array([-60.0, -70.0]), None, 2)
    w.close()
    got = read_online_spikes(tmp_path)
    assert got["sample_number"].tolist() == [3, 5]
    assert got["unit"].tolist() == [-1, -1]
    assert got["amplitude_uv"].tolist() == [-70.0, -60.0]


def test_append_takes_only_n(tmp_path, open_writer):
    w = open_writer()
    big = np.arange(10)
    assert w.append(big, big, big.astype(np.float32), big, 4)
    w.close()
    assert read_online_spikes(tmp_path)["sample_number"].tolist() == [0, 1, 2, 3]


def test_flush_interval_and_three_quarter_rule(open_writer):
    rb = spike_file.RECORD_BYTES
    w = open_writer(capacity_records=8, flush_every_s=0.5)  # 15000 samples
    assert w.flush_every_samples == 15000
    w.maybe_flush(0)
    w.append(np.arange(2), np.zeros(2), np.zeros(2), None, 2)
    assert w.maybe_flush(14999) and _body_bytes(w) == 0  # not due yet
    assert w.maybe_flush(15000) and _body_bytes(w) == 2 * rb
    w.append(np.arange(5), np.zeros(5), np.zeros(5), None, 5)
    assert w.maybe_flush(15001) and _body_bytes(w) == 2 * rb  # 5 < 6 = 3/4 of 8
    w.append(np.arange(1), np.zeros(1), np.zeros(1), None, 1)
    assert w.maybe_flush(15002) and _body_bytes(w) == 8 * rb  # 6 >= 3/4: flushed early
    # overflow inside append: flushed at once, nothing dropped
    w.append(np.arange(20), np.zeros(20), np.zeros(20), None, 20)
    assert w.n_dropped == 0 and _body_bytes(w) >= 24 * rb
    assert w.close() and _body_bytes(w) == 28 * rb


def test_header_and_meta(tmp_path, open_writer):
    w = open_writer(metadata={"probe": "polytrode54", "threshold_mad": np.float32(4.5),
                              "channels": np.arange(3), "path": Path("/x/y.toml")})
    w.close()
    raw = w.path.read_bytes()
    assert raw[:8] == b"SWSPIKE1"
    header_bytes = int.from_bytes(raw[8:16], "little")
    assert header_bytes % 16 == 0 and header_bytes == len(raw)
    (meta,) = read_online_spikes_meta(tmp_path)
    assert meta["format_version"] == 2 and meta["format"] == "sweepsort online spikes"
    assert meta["sample_rate_hz"] == FS_HZ and meta["n_channels"] == 64
    assert meta["metadata"] == {"probe": "polytrode54", "threshold_mad": 4.5,
                                "channels": [0, 1, 2], "path": "/x/y.toml"}
    assert meta["created_utc"].endswith("+00:00")
    assert meta["n_records"] == 0 and meta["path"] == str(w.path)
    assert json.loads(raw[16:header_bytes])["dtype"][0] == ["sample_number", "<i8"]


def test_several_recordings_never_collide(tmp_path):
    parts = []
    for k in range(3):
        w = SpikeFileWriter.open(tmp_path, FS_HZ, 4, {"k": k})
        r = _records(50, seed=k, start=k * 7)
        _write_blocks(w, r, [10])
        w.close()
        parts.append(r)
        assert w.path.name == f"online_spikes_{k:03d}.bin"
        assert w.path.parent == tmp_path / "sweepsort"
    everything = np.concatenate(parts)
    want = everything[np.argsort(everything["sample_number"], kind="stable")]
    np.testing.assert_array_equal(read_online_spikes(tmp_path), want)
    np.testing.assert_array_equal(read_online_spikes(tmp_path / "sweepsort"), want)
    np.testing.assert_array_equal(
        read_online_spikes(tmp_path / "sweepsort" / "online_spikes_001.bin"), parts[1])
    assert [m["metadata"]["k"] for m in read_online_spikes_meta(tmp_path)] == [0, 1, 2]


def test_empty_file_gives_empty_array(tmp_path, open_writer):
    open_writer().close()
    got = read_online_spikes(tmp_path)
    assert got.shape == (0,) and got.dtype == SPIKE_DTYPE


def test_no_files_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no online spike files"):
        read_online_spikes(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        read_online_spikes(tmp_path / "missing")


def test_truncated_tail_is_recovered(tmp_path, open_writer):
    records = _records(100, seed=3)
    w = open_writer()
    _write_blocks(w, records, [30])
    w.close()
    with open(w.path, "r+b") as f:
        f.truncate(w.path.stat().st_size - 5)
    with pytest.warns(OnlineFileWarning, match="partial trailing record"):
        got = read_online_spikes(tmp_path)
    np.testing.assert_array_equal(got, records[:99])


def test_crash_without_close_keeps_flushed_spikes(tmp_path):
    """A process killed hard after its last flush: every flushed record is readable."""
    script = f"""
import os, numpy as np
from oe_plugin.outputs import SpikeFileWriter
w = SpikeFileWriter.open({str(tmp_path)!r}, 1000.0, 4, {{}}, flush_every_s=0.5)
w.maybe_flush(0)
for block in range(100):           # 100 blocks of 10 samples = 1 s of data
    s = np.array([block * 10])
    w.append(s, s % 4, np.array([-55.0]), None, 1)
    w.maybe_flush(block * 10 + 9)
os._exit(1)                         # no close(), no flush: as if the GUI crashed
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60,
                   cwd=Path(__file__).resolve().parents[1])
    got = read_online_spikes(tmp_path)
    # flushed at sample 509 (records 0..50); the last 0.5 s (49 records) was in the buffer
    assert got["sample_number"].tolist() == [10 * b for b in range(51)]


def test_unclosed_writer_is_readable_in_process(tmp_path, open_writer):
    w = open_writer(flush_every_s=0.0)
    records = _records(40, seed=4)
    _write_blocks(w, records[:30], [30])
    w.append(records["sample_number"][30:], records["channel"][30:],
             records["amplitude_uv"][30:], records["unit"][30:], 10,
             records["displacement_um"][30:])  # buffered only
    np.testing.assert_array_equal(read_online_spikes(tmp_path), records[:30])
    assert w.n_buffered == 10


def test_concurrent_reading_while_writing(tmp_path):
    records = _records(20000, seed=5)
    w = SpikeFileWriter.open(tmp_path, FS_HZ, 64, {}, capacity_records=97, flush_every_s=0.0)
    done = threading.Event()

    def write():
        try:
            _write_blocks(w, records, [13, 1, 40])
        finally:
            w.close()
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    sizes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OnlineFileWarning)  # a read may catch a partial record
        while not done.is_set() or not sizes:
            got = read_online_spikes(tmp_path)
            np.testing.assert_array_equal(got, records[:got.size])  # always a clean prefix
            sizes.append(got.size)
    thread.join()
    assert sizes == sorted(sizes)
    np.testing.assert_array_equal(read_online_spikes(tmp_path), records)


def test_foreign_file_is_refused(tmp_path):
    d = tmp_path / "sweepsort"
    d.mkdir()
    (d / "online_spikes_000.bin").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(OnlineFileError, match="not a sweepsort online spike file"):
        read_online_spikes(tmp_path)


def _rewrite_header(path, **changes):
    raw = path.read_bytes()
    n = int.from_bytes(raw[8:16], "little")
    meta = json.loads(raw[16:n])
    meta.update(changes)
    path.write_bytes(spike_file.encode_header(meta) + raw[n:])


def test_newer_version_is_refused(tmp_path, open_writer):
    w = open_writer()
    w.close()
    _rewrite_header(w.path, format_version=3)
    with pytest.raises(OnlineFileError, match="format version 3"):
        read_online_spikes(tmp_path)


def test_version_1_files_still_read(tmp_path):
    """Files written before the displacement field (format 1, 16-byte records) read with
    displacement_um NaN, also next to a current file in the same folder."""
    old = _records(50, seed=4)
    v1 = np.zeros(len(old), spike_file.SPIKE_DTYPE_V1)
    for f in v1.dtype.names:
        v1[f] = old[f]
    meta = {"format": spike_file.FORMAT_NAME, "format_version": 1,
            "dtype": [[n, v1.dtype.fields[n][0].str] for n in v1.dtype.names],
            "record_bytes": 16, "sample_rate_hz": FS_HZ, "n_channels": 64, "metadata": {}}
    d = tmp_path / "sweepsort"
    d.mkdir()
    (d / "online_spikes_000.bin").write_bytes(spike_file.encode_header(meta) + v1.tobytes())
    got = read_online_spikes(tmp_path)
    assert got.dtype == SPIKE_DTYPE and len(got) == 50
    for f in v1.dtype.names:
        np.testing.assert_array_equal(got[f], np.sort(old, order="sample_number")[f])
    assert np.isnan(got["displacement_um"]).all()
    new = _records(30, seed=5, start=10**7)
    new["displacement_um"] = np.arange(30) * 0.5
    w = SpikeFileWriter.open(tmp_path, FS_HZ, 64)
    _write_blocks(w, new, [7])
    w.close()
    both = read_online_spikes(tmp_path)
    assert len(both) == 80
    np.testing.assert_array_equal(both["displacement_um"][-30:], new["displacement_um"])


def test_other_record_layout_is_refused(tmp_path, open_writer):
    w = open_writer()
    w.close()
    _rewrite_header(w.path, dtype=[["sample_number", "<i4"]])
    with pytest.raises(OnlineFileError, match="record layout"):
        read_online_spikes(tmp_path)


def test_corrupt_header_json(tmp_path, open_writer):
    w = open_writer()
    w.close()
    raw = bytearray(w.path.read_bytes())
    raw[16] = ord("#")
    w.path.write_bytes(bytes(raw))
    with pytest.raises(OnlineFileError, match="corrupt header JSON"):
        read_online_spikes_meta(tmp_path)


@pytest.mark.parametrize("keep", [0, 5, 20])
def test_incomplete_header_is_skipped(tmp_path, keep):
    w = SpikeFileWriter.open(tmp_path, FS_HZ, 4, {})
    w.close()
    w.path.write_bytes(w.path.read_bytes()[:keep])
    good = SpikeFileWriter.open(tmp_path, FS_HZ, 4, {})
    good.append(np.array([7]), np.array([1]), np.array([-50.0]), None, 1)
    good.close()
    with pytest.warns(OnlineFileWarning, match="header incomplete"):
        got = read_online_spikes(tmp_path)
    assert got["sample_number"].tolist() == [7]


def test_write_errors_are_counted_not_raised(tmp_path, open_writer, monkeypatch):
    w = open_writer(capacity_records=8, flush_every_s=0.0)
    real_write = os.write

    def disk_full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spike_file.os, "write", disk_full)
    w.maybe_flush(0)
    assert w.append(np.arange(6), np.zeros(6), np.zeros(6), None, 6)
    assert w.maybe_flush(1) is False
    assert w.n_errors == 1 and "No space left" in w.last_error
    # the buffer still holds the 6 records; 2 more fit, the rest is dropped and counted
    assert w.append(np.arange(6, 11), np.zeros(5), np.zeros(5), None, 5) is False
    assert w.n_dropped == 3
    monkeypatch.setattr(spike_file.os, "write", real_write)  # disk space is back
    assert w.maybe_flush(2)
    assert w.close() is False  # some records were lost, and it says so
    assert read_online_spikes(tmp_path)["sample_number"].tolist() == list(range(8))


@pytest.mark.parametrize("fail_every", [0, 3])
def test_short_writes_keep_the_byte_stream_intact(tmp_path, open_writer, monkeypatch,
                                                   fail_every):
    """The OS taking 7 bytes at a time (and sometimes refusing) never misaligns the file:
    every record is either in the file, in order, or counted as dropped."""
    real_write = os.write
    calls = {"n": 0}

    def stingy(fd, data):
        calls["n"] += 1
        if fail_every and calls["n"] % fail_every == 0:
            raise OSError(5, "Input/output error")
        return real_write(fd, bytes(data[:7]))

    records = _records(300, seed=6)
    records["sample_number"] = 10 * np.arange(300)  # unique, to tell which were kept
    w = open_writer(capacity_records=16, flush_every_s=0.0)
    monkeypatch.setattr(spike_file.os, "write", stingy)
    w.maybe_flush(0)
    for i in range(0, 300, 5):
        c = records[i:i + 5]
        w.append(c["sample_number"], c["channel"], c["amplitude_uv"], c["unit"], 5,
                 c["displacement_um"])
        w.maybe_flush(i + 1)
    monkeypatch.setattr(spike_file.os, "write", real_write)
    w.close()
    got = read_online_spikes(tmp_path)
    assert got.size + w.n_dropped == records.size
    if not fail_every:
        assert w.n_dropped == 0 and w.n_errors == 0
        np.testing.assert_array_equal(got, records)
    else:
        assert w.n_dropped > 0 and w.n_errors > 0
        kept = np.isin(records["sample_number"], got["sample_number"])
        np.testing.assert_array_equal(got, records[kept])


def test_bad_input_never_raises(open_writer):
    w = open_writer()
    assert w.append(np.arange(2), np.arange(2), np.zeros(2), None, 5) is False
    assert w.append(None, None, None, None, 3) is False
    assert w.n_errors == 2
    assert w.maybe_flush("not a number") is False
    assert w.append(np.arange(2), np.arange(2), np.zeros(2), None, 0) is True


def test_append_after_close_is_counted(tmp_path, open_writer):
    w = open_writer()
    w.close()
    assert w.closed and w.close() is True  # idempotent
    assert w.append(np.arange(3), np.arange(3), np.zeros(3), None, 3) is False
    assert w.n_dropped == 3
    assert w.maybe_flush(10**9) is True


def test_open_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="capacity_records"):
        SpikeFileWriter.open(tmp_path, FS_HZ, 4, {}, capacity_records=0)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        SpikeFileWriter.open(tmp_path, 0.0, 4, {})


def test_hot_path_does_not_allocate_arrays(open_writer):
    """After warm-up, append + maybe_flush allocate no array memory (only tiny view objects)."""
    w = open_writer(capacity_records=1024, flush_every_s=0.01)
    n = 200
    s = np.arange(n, dtype=np.int64)
    c = np.zeros(n, np.int16)
    a = np.zeros(n, np.float32)
    u = np.full(n, -1, np.int16)
    a64 = np.zeros(n, np.float64)  # a dtype cast on the way in must not allocate either
    w.maybe_flush(0)
    for k in range(20):
        w.append(s, c, a, u, n)
        w.maybe_flush(k * 1000)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for k in range(20, 400):
            w.append(s, c, a64 if k % 2 else a, None if k % 3 else u, n)
            w.maybe_flush(k * 1000)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 2048, f"hot path allocated {peak - base} bytes"
    assert w.n_dropped == 0 and w.n_errors == 0



_MODULE = """
import oe_pyprocessor  # noqa: F401
import numpy as np
from oe_plugin.outputs import SpikeFileWriter

class PyProcessor:
    def __init__(self, processor, num_channels, sample_rate):
        self.w = SpikeFileWriter.open({rec!r}, sample_rate, num_channels, {{}},
                                      capacity_records=64, flush_every_s=0.001)
        self.s = np.zeros(32, np.int64)
        self.c = np.zeros(32, np.int16)
        self.a = np.full(32, -60.0, np.float32)
        self.n = 0

    def process(self, data):
        self.s[:20] = self.n + np.arange(20)
        self.w.append(self.s, self.c, self.a, None, 20)
        self.n += data.shape[1]
        self.w.maybe_flush(self.n)

    def stop_acquisition(self):
        self.w.close()
"""


@pytest.mark.slow
@pytest.mark.skipif(not (GILHOST_SRC / "build.sh").exists() or shutil.which("cc") is None,
                    reason="needs the reference gilhost (../shared/tools/gilhost) and a C compiler")
def test_writer_runs_on_a_thread_without_the_gil(tmp_path):
    """append + os.write flushes from process() on gilhost's GIL-less audio thread."""
    build = subprocess.run(["bash", str(GILHOST_SRC / "build.sh"), str(tmp_path / "bin")],
                           env={**os.environ, "PYTHON": sys.executable},
                           capture_output=True, text=True, timeout=120)
    if build.returncode != 0:
        pytest.skip(f"gilhost did not build: {build.stderr[-300:]}")
    module = tmp_path / "spike_writer_module.py"
    module.write_text(_MODULE.format(rec=str(tmp_path / "rec")))
    repo = Path(__file__).resolve().parents[1]
    import site
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(repo), *site.getsitepackages()])}
    run = subprocess.run([str(tmp_path / "bin" / "gilhost"), str(module), "--channels", "16",
                          "--block", "696", "--blocks", "200"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    got = read_online_spikes(tmp_path / "rec")
    assert got.size == 200 * 20
    assert np.array_equal(got["sample_number"].reshape(200, 20)[:, 0], 696 * np.arange(200))
