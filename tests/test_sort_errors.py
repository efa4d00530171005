"""Bad inputs to the sorter end with a clear message (CLI exit status 2), never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
from test_recording import one_recording_session

from oe_plugin.config import SettingsError
from offline.cli import main as cli_main
from offline.recording import RecordingError
from offline.sort import RecordingSource, settings_from_table


def _binary(tmp_path, n=3000):
    return one_recording_session(tmp_path, np.random.default_rng(0).normal(0, 20, (4, n)))


def test_truncated_binary_recording(tmp_path, capsys):
    session, rec_dir = _binary(tmp_path)
    dat = next(rec_dir.glob("continuous/*/continuous.dat"))
    with open(dat, "r+b") as f:
        f.truncate(dat.stat().st_size - 3)  # the GUI died mid-frame
    with pytest.raises(RecordingError, match="truncated"):
        RecordingSource(str(session)).open()
    assert cli_main(["sort", str(session), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "continuous.dat" in err
    assert cli_main(["info", str(session)]) == 2


def test_malformed_recordings_and_flat_files(tmp_path, capsys):
    session, rec_dir = _binary(tmp_path)
    (rec_dir / "structure.oebin").write_text("{ not json")
    assert cli_main(["sort", str(session), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "sweepsort sort:" in capsys.readouterr().err
    assert cli_main(["sort", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    raw = tmp_path / "raw.dat"
    np.zeros(101, np.int16).tofile(raw)  # not a whole number of 4-channel frames
    code = cli_main(["sort", str(raw), "--out", str(tmp_path / "o"), "--flat-dtype", "int16",
                     "--flat-channels", "4", "--flat-rate-hz", "30000", "--quiet"])
    assert code == 2
    assert "truncated" in capsys.readouterr().err


def test_bad_settings_name_the_key(tmp_path, capsys):
    with pytest.raises(SettingsError, match="sort.pca_componets: unknown key"):
        settings_from_table({"sort": {"pca_componets": 3}})
    with pytest.raises(SettingsError, match="preprocess.filter"):
        settings_from_table({"preprocess": {"filter": "acausal"}})
    with pytest.raises(SettingsError, match="sortt: unknown section"):
        settings_from_table({"sortt": {}})
    session, _ = _binary(tmp_path)
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sort]\nmin_cluster_size = 1\n")
    assert cli_main(["sort", str(session), "--out", str(tmp_path / "o"), "--config", str(cfg),
                     "--quiet"]) == 2
    assert "sort.min_cluster_size" in capsys.readouterr().err
