"""``sweepsort monitor --once --png``: renders a statistics file (Agg), tuning by dimension."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.image import imread

from oe_plugin.outputs.stats_file import stats_path, write_stats
from offline.cli import main
from offline.monitor import tuning


def _stats(tmp_path, session_file=""):
    rng = np.random.default_rng(0)
    arrays = {"time_counts": rng.poisson(5, (4, 30)).astype(np.int64), "bin_s": np.float64(1.0),
              "sweep_counts": np.array([[10, 20, 30, 40], [5, 5, 5, 5], [0, 0, 1, 0],
                                        [1, 1, 1, 1]], np.int64),
              "sweep_seconds": np.array([1.0, 1.0, 2.0, 0.0]),
              "no_sweep_counts": np.zeros(4, np.int64),
              "units": np.array([0, 1, 2, -1], np.int32)}
    path = stats_path(tmp_path)
    path.parent.mkdir(parents=True)
    write_stats(path, arrays, {"n_units": 3, "sample_rate_hz": 30000.0,
                               "samples_processed": 900000, "session_file": session_file})
    return arrays


def test_monitor_renders_png(tmp_path):
    session = tmp_path / "s.session.json"
    session.write_text(json.dumps({"sweep_table": [{"ori": 0, "sf": 0.1}, {"ori": 90, "sf": 0.1},
                                                   {"ori": 0, "sf": 0.2}, {"ori": 90, "sf": 0.2}]}))
    arrays = _stats(tmp_path, str(session))
    out = tmp_path / "m.png"
    assert main(["monitor", str(tmp_path), "--once", "--png", str(out)]) == 0
    img = imread(out)
    assert img.shape[0] > 200 and img.shape[1] > 500 and img[..., :3].std() > 0.05
    keys, rates, dim = tuning(arrays, json.loads(session.read_text())["sweep_table"], None)
    assert dim == "ori" and keys == ["0", "90"]
    np.testing.assert_allclose(rates[0], [(10 + 30) / 3.0, (20 + 40) / 1.0])
    keys, rates, dim = tuning(arrays, json.loads(session.read_text())["sweep_table"], "sf")
    np.testing.assert_allclose(rates[1], [10 / 2.0, 10 / 2.0])
    assert main(["monitor", str(tmp_path), "--once", "--png", str(out), "--dimension",
                 "sf"]) == 0


def test_monitor_without_sweep_table_and_missing_file(tmp_path, capsys):
    _stats(tmp_path)
    assert main(["monitor", str(tmp_path), "--once", "--png", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert main(["monitor", str(tmp_path / "nothing"), "--once"]) == 2
    assert "no online_stats.bin" in capsys.readouterr().err
