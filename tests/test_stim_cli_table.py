"""``sweepstim validate`` names the rig config it used (or says it used the built-in
defaults), and ``sweepstim run --dry-run --table`` prints the sweep table, one row per
presented sweep."""

from __future__ import annotations

import textwrap

import pytest

from stimulus.cli import main

SCRIPT = """
from stimulus.script import Blanks, Experiment, Runs, Variable

experiment = Experiment(
    stimulus="grating",
    dynamic=dict(ori_deg=Variable([0, 90], dim=0), sf_cpd=Variable([0.1, 0.2], dim=1),
                 sweep_s=0.5, postsweep_s=0.1),
    runs=Runs(2),
    blanks=Blanks(every=3, duration_s=0.25),
    preexp_s=1.0,
)
"""


@pytest.fixture
def script(tmp_path, monkeypatch):
    monkeypatch.delenv("SWEEPSTIM_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.config/sweepstim/rig.toml
    path = tmp_path / "small.py"
    path.write_text(textwrap.dedent(SCRIPT))
    return path


def test_validate_says_built_in_defaults_without_a_rig_file(script, capsys):
    assert main(["validate", str(script)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no rig file: built-in defaults (800x600 px, 36.3x27.2 cm at 57 cm, "
                          "200 Hz, gamma 1)")
    assert "OK" in out


def test_validate_names_the_rig_file(script, tmp_path, capsys, monkeypatch):
    rig = tmp_path / "rig.toml"
    rig.write_text("[screen]\nrefresh_hz = 100.0\nwidth_px = 1024\nheight_px = 768\n")
    assert main(["validate", str(script), "--config", str(rig)]) == 0
    out = capsys.readouterr().out
    assert f"rig file: {rig} (1024x768 px" in out and "100 Hz" in out
    monkeypatch.setenv("SWEEPSTIM_CONFIG", str(rig))
    assert main(["validate", str(script)]) == 0
    assert f"rig file: {rig} (" in capsys.readouterr().out


def test_dry_run_table_has_one_row_per_presented_sweep(script, capsys):
    assert main(["run", str(script), "--seed", "1", "--dry-run", "--table"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "run", "sweep"])
    assert lines[head].split() == ["#", "run", "sweep", "ori_deg", "sf_cpd", "frames",
                                   "post_frames", "duration_s", "start_s"]
    rows = [line.split() for line in lines[head + 1:]]
    # 2 runs x 4 conditions, a blank after every 2 stimulus sweeps: 11 presented sweeps
    assert len(rows) == 11
    assert rows[0] == ["0", "0", "0", "0", "0.1", "100", "20", "0.600", "1.000"]
    assert rows[2] == ["2", "0", "blank", "-", "-", "50", "0", "0.250", "2.200"]
    assert rows[3] == ["3", "0", "2", "90", "0.1", "100", "20", "0.600", "2.450"]
    assert [r[2] for r in rows].count("blank") == 3
    # the rows add up to the plan (pre 1 s, post 1 s)
    total = sum(int(r[5]) + int(r[6]) for r in rows)
    assert total + 200 + 200 == 1510 and "1510 refreshes" in out


def test_table_rows_as_data(script):
    from stimulus.rig import load_rig
    from stimulus.runner import prepare, sweep_table_rows

    p = prepare(str(script), load_rig(None), seed=1)
    rows = sweep_table_rows(p)
    assert len(rows) == p.table.order.size
    assert rows[1] == {"n": 1, "run": 0, "sweep": 1, "ori_deg": 0, "sf_cpd": 0.2, "frames": 100,
                       "post_frames": 20, "duration_s": 0.6, "start_s": 1.6}


def test_table_needs_dry_run(script, capsys):
    assert main(["run", str(script), "--table"]) == 2
    assert "--table needs --dry-run" in capsys.readouterr().err


def test_validate_table(script, capsys):
    assert main(["validate", str(script), "--table"]) == 0
    out = capsys.readouterr().out
    assert " #  run  sweep  ori_deg" in out and out.rstrip().endswith("OK")
