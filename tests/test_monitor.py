"""``sweepsort monitor --once --png``: renders one experiment of a statistics file (Agg), tuning
by dimension of the experiment's own session file, matched by what the experiment showed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread

from oe_plugin.outputs.stats_file import ExperimentStats, stats_path, write_stats
from offline.cli import main
from offline.monitor import load_sessions, match_sessions, render, tuning

GRATING = [{"ori": 0, "sf": 0.1}, {"ori": 90, "sf": 0.1}, {"ori": 0, "sf": 0.2},
           {"ori": 90, "sf": 0.2}]
NOISE = [{"x": -5}, {"x": 0}, {"x": 5}]


def _experiments():
    """Experiment 1 (gratings, 4 sweep indices) and 2 (noise, 3), overlapping indices 0..2."""
    z = np.zeros(4, np.int64)
    return [
        ExperimentStats(0, np.zeros((4, 0), np.int64), np.zeros(0, np.int64), z),
        ExperimentStats(1, np.array([[10, 20, 30, 40], [5, 5, 5, 5], [0, 0, 1, 0],
                                     [1, 1, 1, 1]]), np.array([200, 200, 400, 0]), z,
                        n_frames=800, start_sample=30000, last_sample=270000,
                        signature=np.array([2, 0, 1, 0, 2, 1])),
        ExperimentStats(2, np.array([[1, 2, 3], [9, 0, 0], [0, 0, 0], [2, 2, 2]]),
                        np.array([200, 200, 200]), z + 1, n_frames=700, start_sample=400000,
                        last_sample=600000, signature=np.array([1, 2, 0, 2, 1, 0])),
    ]


def _stats(tmp_path, session_files=(), session_dir=""):
    rng = np.random.default_rng(0)
    arrays = {"time_counts": rng.poisson(5, (4, 30)).astype(np.int64), "bin_s": np.float64(1.0),
              "experiments": _experiments()}
    path = stats_path(tmp_path)
    path.parent.mkdir(parents=True)
    write_stats(path, arrays, {"n_units": 3, "sample_rate_hz": 30000.0,
                               "samples_processed": 900000,
                               "session_files": [str(p) for p in session_files],
                               "session_dir": str(session_dir)})
    return arrays


def _session(path, table, order=None):
    body = {"sweep_table": table if order is None else {"conditions": table, "order": order}}
    path.write_text(json.dumps(body))
    return path


def _sessions(tmp_path, with_order=True):
    d = tmp_path / "sessions"
    d.mkdir()
    noise = _session(d / "noise.session.json", NOISE,
                     [1, 65535, 2, 0, 0, 2, 1, 0] if with_order else None)
    grating = _session(d / "grating.session.json", GRATING,
                       [2, 0, 65535, 1, 0, 2, 1, 3] if with_order else None)
    return grating, noise


def _title(fig) -> str:
    return fig._suptitle.get_text()


@pytest.mark.slow
def test_monitor_renders_chosen_experiment_png(tmp_path):
    grating, noise = _sessions(tmp_path)
    arrays = _stats(tmp_path, session_files=[noise, grating])  # listed in the other order
    out = tmp_path / "m.png"
    for number in ("1", "2"):
        assert main(["monitor", str(tmp_path), "--once", "--png", str(out), "--experiment",
                     number]) == 0
        img = imread(out)
        assert img.shape[0] > 200 and img.shape[1] > 500 and img[..., :3].std() > 0.05
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        meta = render(fig, tmp_path, experiment=1)
        assert meta["experiment_shown"] == 1 and meta["session_shown"] == str(grating)
        assert "experiment 1 of 2 (session grating)" in _title(fig)
        assert fig.axes[1].get_xlabel() == "ori"
        meta = render(fig, tmp_path, experiment=2)
        assert meta["session_shown"] == str(noise) and "experiment 2 of 2 (session noise)" \
            in _title(fig) and fig.axes[1].get_xlabel() == "x"
        meta = render(fig, tmp_path)  # default: the latest experiment with refreshes
        assert meta["experiment_shown"] == 2
        meta = render(fig, tmp_path, experiment=0)
        assert meta["session_shown"] == "" and "before the first START" in _title(fig)
        assert fig.axes[1].get_xlabel() == "sweep index"
    finally:
        plt.close(fig)
    exp1 = arrays["experiments"][1]
    keys, rates, dim = tuning(exp1, GRATING, None)
    assert dim == "ori" and keys == ["0", "90"]
    np.testing.assert_allclose(rates[0], [(10 + 30) / 3.0, (20 + 40) / 1.0])
    keys, rates, dim = tuning(exp1, GRATING, "sf")
    np.testing.assert_allclose(rates[1], [10 / 2.0, 10 / 2.0])
    assert main(["monitor", str(tmp_path), "--once", "--png", str(out), "--experiment", "1",
                 "--dimension", "sf"]) == 0


def test_sessions_matched_by_content_then_position(tmp_path):
    grating, noise = _sessions(tmp_path)
    exps = _experiments()
    # by what was shown, whatever the order of the candidates
    assert match_sessions(exps, load_sessions([noise, grating])) == {1: 1, 2: 0}
    # a table too short for what the experiment showed never matches, even by position
    assert match_sessions(exps, load_sessions([noise])) == {2: 0}
    # no presentation order in the files: experiment k gets the k-th file
    tmp2 = tmp_path / "plain"
    tmp2.mkdir()
    g2, n2 = _sessions(tmp2, with_order=False)
    assert match_sessions(exps, load_sessions([g2, n2])) == {1: 0, 2: 1}
    # folded slots and experiment 0 get no file
    exps[2].n_merged = 3
    assert match_sessions(exps, load_sessions([grating, noise])) == {1: 0}


def test_monitor_session_folder_and_errors(tmp_path, capsys):
    grating, noise = _sessions(tmp_path)
    _stats(tmp_path, session_dir=grating.parent)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        assert render(fig, tmp_path, experiment=2)["session_shown"] == str(noise)
        assert render(fig, tmp_path, experiment=1, session=[str(grating.parent)]
                      )["session_shown"] == str(grating)
    finally:
        plt.close(fig)
    assert main(["monitor", str(tmp_path), "--once", "--experiment", "7"]) == 2
    assert "no experiment 7" in capsys.readouterr().err
    assert main(["monitor", str(tmp_path), "--once", "--session", str(tmp_path / "gone")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_monitor_without_sweep_table_and_missing_or_old_file(tmp_path, capsys):
    _stats(tmp_path)
    assert main(["monitor", str(tmp_path), "--once", "--png", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert main(["monitor", str(tmp_path / "nothing"), "--once"]) == 2
    assert "no online_stats.bin" in capsys.readouterr().err
    side = stats_path(tmp_path).with_name("online_stats.json")
    side.write_text(json.dumps(dict(json.loads(side.read_text()), format_version=2)))
    assert main(["monitor", str(tmp_path), "--once"]) == 2
    assert "format version 2" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("number", [None, 1])
def test_render_rate_plot_shades_the_experiment(tmp_path, number):
    _stats(tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        render(fig, tmp_path, experiment=number)
        span = [p for p in fig.axes[0].patches]
        assert len(span) == 1
        x0, x1 = span[0].get_x(), span[0].get_x() + span[0].get_width()
        want = (1.0, 9.0) if number == 1 else (400000 / 30000.0, 20.0)
        assert (x0, x1) == pytest.approx(want)
    finally:
        plt.close(fig)
