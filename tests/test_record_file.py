"""The generic record-file layer with a format of its own (nothing spike/sweep specific)."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from oe_plugin.outputs.record_file import HEADER_PREFIX, RecordFileWriter, RecordFormat
from offline import record_files

TOY_DTYPE = np.dtype([("sample_number", "<i8"), ("value", "<f8"), ("tag", "<u2")])  # 18 bytes
TOY = RecordFormat(b"SWTOYFM1", "sweepsort toy", 3, TOY_DTYPE, "toy_", ".rec", "toys")


class ToyError(ValueError):
    pass


class ToyWarning(UserWarning):
    pass


class ToyWriter(RecordFileWriter):
    FORMAT = TOY

    @classmethod
    def open(cls, recording_dir, sample_rate_hz, colour, **kw):
        return cls._create(recording_dir, sample_rate_hz, {"m": 1}, colour=colour, **kw)

    @classmethod
    def _header_fields(cls, colour) -> dict:
        return {"colour": str(colour)}

    def append(self, records, n) -> bool:
        return self._append(n, records)

    def _fill(self, a, b, start, sources) -> None:
        self._buf[a:b] = sources[start:start + (b - a)]


KIND = record_files.RecordFileKind(TOY, what="toy file", holds="toys", written_by="the toy",
                                   error=ToyError, warning=ToyWarning)


def test_custom_format_round_trip_torn_tail_and_no_hot_path_allocation(tmp_path):
    recs = np.zeros(500, TOY_DTYPE)
    recs["sample_number"] = np.arange(500)[::-1]  # the reader sorts by sample number
    recs["value"] = np.linspace(0, 1, 500)
    recs["tag"] = np.arange(500) % 7
    w = ToyWriter.open(tmp_path, 1000.0, "red", capacity_records=64, flush_every_s=0.01)
    assert w.path == tmp_path / "toys" / "toy_000.rec"
    w.append(recs, 20)
    w.maybe_flush(0)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(20, 500, 20):
            assert w.append(recs[i:], 20) and w.maybe_flush(i)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 2048, f"hot path allocated {peak - base} bytes"
    assert not w.append(None, 3) and w.n_errors == 1 and w.n_dropped == 3  # never raises
    assert not w.close() and w.n_written == 500  # False: 3 records were dropped

    raw = w.path.read_bytes()
    magic, header_bytes = HEADER_PREFIX.unpack(raw[:16])
    assert magic == b"SWTOYFM1" and header_bytes % 16 == 0
    assert len(raw) == header_bytes + 500 * 18
    meta = json.loads(raw[16:header_bytes])
    assert meta["format"] == "sweepsort toy" and meta["format_version"] == 3
    assert meta["colour"] == "red" and meta["record_bytes"] == 18 and meta["metadata"] == {"m": 1}

    got = record_files.read_records(tmp_path, KIND)
    np.testing.assert_array_equal(got, recs[::-1])
    with open(w.path, "r+b") as f:
        f.truncate(len(raw) - 5)
    with pytest.warns(ToyWarning, match="partial trailing record"):
        (info,) = record_files.read_meta(tmp_path, KIND)
    assert info["n_records"] == 499 and info["colour"] == "red"

    w.path.write_bytes(TOY.encode_header(dict(meta, format_version=4)) + raw[header_bytes:])
    with pytest.raises(ToyError, match="toy file format version 4"):
        record_files.read_records(tmp_path, KIND)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no toy files \(toy_\*\.rec\)"):
        record_files.read_records(tmp_path / "empty", KIND)
