"""The online sweep file: round trip, one write per flush, torn tails, bad files."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from oe_plugin.outputs.sweep_file import HEADER_PREFIX, SWEEP_RECORD_DTYPE, SweepFileWriter
from oe_plugin.protocol import ProtocolSettings
from offline.online_sweeps import (
    OnlineSweepFileError,
    OnlineSweepFileWarning,
    read_online_sweeps,
    read_online_sweeps_meta,
)

FS = 30000.0


def frames(n, start=0):
    f = np.zeros(n, SWEEP_RECORD_DTYPE)
    f["sample_number"] = 1000 + 150 * np.arange(start, start + n)
    f["frame_number"] = np.arange(start, start + n)
    f["sweep_index"] = (np.arange(start, start + n) // 7) % 50
    f["flags"] = np.arange(start, start + n) % 3
    return f


def test_round_trip_flush_cadence_and_naming(tmp_path, monkeypatch):
    writes = []
    real_write = os.write

    def counting_write(fd, data):
        writes.append(len(data))
        return real_write(fd, data)

    w = SweepFileWriter.open(tmp_path, FS, ProtocolSettings().to_dict(), {"x": 1},
                             capacity_records=64, flush_every_s=0.5)
    monkeypatch.setattr(os, "write", counting_write)
    samples = 0
    for k in range(40):  # 40 blocks of 696 samples (~0.93 s), 3 frames each
        w.append(frames(3, 3 * k), 3)
        samples += 696
        w.maybe_flush(samples)
    # a flush about every 0.5 s of data, one os.write each
    assert 1 <= len(writes) <= 3
    assert all(b % 24 == 0 for b in writes)
    monkeypatch.setattr(os, "write", real_write)
    assert w.close({"frames": 120})
    got = read_online_sweeps(tmp_path)
    np.testing.assert_array_equal(got, frames(120))
    meta = read_online_sweeps_meta(tmp_path)[0]
    assert meta["path"].endswith("sweepsort/online_sweeps_000.bin")
    assert meta["protocol"]["scheme"] == "serial" and meta["metadata"] == {"x": 1}
    assert meta["stats"]["decoder"] == {"frames": 120}
    w2 = SweepFileWriter.open(tmp_path, FS, {}, capacity_records=8)
    w2.append(frames(20, 500), 20)  # more than the buffer: flushed as it fills
    w2.close()
    assert w2.path.name == "online_sweeps_001.bin"
    assert read_online_sweeps(tmp_path).size == 140


def test_torn_tail_and_missing_header_are_recovered(tmp_path):
    w = SweepFileWriter.open(tmp_path, FS, {}, capacity_records=16)
    w.append(frames(10), 10)
    w.close()
    with open(w.path, "ab") as f:
        f.write(frames(1, 10).tobytes()[:13])  # a crash in the middle of a record
    with pytest.warns(OnlineSweepFileWarning, match="partial trailing record"):
        got = read_online_sweeps(tmp_path)
    np.testing.assert_array_equal(got, frames(10))
    (tmp_path / "sweepsort" / "online_sweeps_001.bin").write_bytes(b"SWSWEE")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_online_sweeps(tmp_path).size == 10
    assert any("header incomplete" in str(c.message) for c in caught)


def test_foreign_and_future_files_are_refused(tmp_path):
    d = tmp_path / "sweepsort"
    d.mkdir()
    (d / "online_sweeps_000.bin").write_bytes(b"NOTMINE!" + bytes(100))
    with pytest.raises(OnlineSweepFileError, match="not a sweepsort online sweep file"):
        read_online_sweeps(tmp_path)
    body = json.dumps({"format_version": 99}).encode()
    total = HEADER_PREFIX.size + len(body)
    total += -total % 16
    raw = HEADER_PREFIX.pack(b"SWSWEEP1", total) + body + b" " * (total - 16 - len(body))
    (d / "online_sweeps_000.bin").write_bytes(raw)
    with pytest.raises(OnlineSweepFileError, match="version 99"):
        read_online_sweeps(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no online sweep files"):
        read_online_sweeps(tmp_path / "empty")


def test_append_never_raises(tmp_path):
    w = SweepFileWriter.open(tmp_path, FS, {}, capacity_records=4)
    assert not w.append(None, 3)  # bad input: counted, not raised
    assert w.n_errors == 1
    w.close()
    assert not w.append(frames(2), 2)  # after close: dropped and counted
    assert w.n_dropped >= 2
    assert w.maybe_flush("x") is False
