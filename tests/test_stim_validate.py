"""Validation before the window opens: each problem a clear message with its script line."""

from __future__ import annotations

import textwrap

import pytest

from oe_plugin.protocol.spec import ProtocolSettings
from stimulus.cli import main
from stimulus.geometry import Geometry
from stimulus.script import ScriptError, load_script
from stimulus.stimuli.base import RenderContext
from stimulus.validate import validate

CTX = RenderContext(Geometry(36.3, 27.2, 800, 600, 57.0), 200.0, 1.0)
SERIAL = ProtocolSettings()


def write(tmp_path, body: str, name="exp.py"):
    path = tmp_path / name
    path.write_text("from stimulus.script import Blanks, Experiment, Runs, Variable\n"
                    + textwrap.dedent(body))
    return path


def problems(tmp_path, body, protocol=SERIAL, ctx=CTX):
    loaded = load_script(write(tmp_path, body))
    return validate(loaded, ctx, protocol).problems


def test_valid_script_passes(tmp_path):
    assert problems(tmp_path, """
        experiment = Experiment(stimulus="grating", dynamic=dict(sf_cpd=0.2, sweep_s=1.0))
    """) == []


def test_unknown_parameter_did_you_mean_with_line(tmp_path):
    (p,) = problems(tmp_path, """
        experiment = Experiment(
            stimulus="grating",
            dynamic=dict(
                sf_cdp=Variable([0.1, 0.2]),
                sweep_s=1.0,
            ),
        )
    """)
    assert p.key == "dynamic.sf_cdp" and p.line == 6
    assert "did you mean 'sf_cpd'" in p.message


def test_unknown_stimulus_and_misplaced_parameters(tmp_path):
    (p,) = problems(tmp_path, 'experiment = Experiment(stimulus="gratin")\n')
    assert "did you mean 'grating'" in p.message and p.line == 2
    ps = problems(tmp_path, """
        experiment = Experiment(stimulus="grating",
                                static=dict(sf_cpd=0.1),
                                dynamic=dict(mask="circle"))
    """)
    msgs = {p.key: (p.message, p.line) for p in ps}
    assert "give it in dynamic=" in msgs["static.sf_cpd"][0] and msgs["static.sf_cpd"][1] == 4
    assert "give it in static=" in msgs["dynamic.mask"][0] and msgs["dynamic.mask"][1] == 5


def test_wrong_types_and_ranges(tmp_path):
    ps = problems(tmp_path, """
        experiment = Experiment(stimulus="grating",
                                static=dict(mask="hexagon"),
                                dynamic=dict(ori_deg="vertical",
                                             contrast=Variable([0.5, 1.5]),
                                             sweep_s=0.0))
    """)
    msgs = {p.key: p.message for p in ps}
    assert "'hexagon' is not one of" in msgs["static.mask"]
    assert "expected a number" in msgs["dynamic.ori_deg"]
    assert "must be <= 1" in msgs["dynamic.contrast"] and "(in Variable)" in msgs[
        "dynamic.contrast"]
    assert "duration > 0" in msgs["dynamic.sweep_s"]


def test_mismatched_lengths_in_a_dimension(tmp_path):
    (p,) = problems(tmp_path, """
        experiment = Experiment(stimulus="grating", dynamic=dict(
            ori_deg=Variable([0, 90, 180], dim=1),
            sf_cpd=Variable([0.1, 0.2], dim=1),
        ))
    """)
    assert p.key == "dynamic.sf_cpd" and p.line == 5
    assert "2 values" in p.message and "same length" in p.message


def test_impossible_values(tmp_path):
    nyq = CTX.geometry.nyquist_cpd()
    ps = problems(tmp_path, f"""
        experiment = Experiment(stimulus="grating", dynamic=dict(
            sf_cpd=Variable([0.1, {nyq * 1.05:.3f}]),
            tf_hz=45.0,
        ))
    """, ctx=RenderContext(CTX.geometry, 60.0))
    msgs = {p.key: p.message for p in ps}
    assert "Nyquist" in msgs["dynamic.sf_cpd"]
    assert "alias" in msgs["dynamic.tf_hz"]  # 45 Hz on a 60 Hz monitor
    (p,) = problems(tmp_path, """
        experiment = Experiment(stimulus="bar", dynamic=dict(length_deg=150.0))
    """)
    assert p.key == "dynamic.length_deg" and "bigger than the screen" in p.message
    (p,) = problems(tmp_path, """
        experiment = Experiment(stimulus="sparse_noise", static=dict(n_cells_x=4),
                                dynamic=dict(xi=Variable(range(5))))
    """)
    assert p.key == "dynamic.xi" and "outside the grid" in p.message
    (p,) = problems(tmp_path, """
        experiment = Experiment(stimulus="msequence", static=dict(order=4, taps=[4, 2]))
    """)
    assert p.key == "static.taps" and "not maximal" in p.message
    (p,) = problems(tmp_path, """
        experiment = Experiment(stimulus="movie", static=dict(path="/nonexistent.npy"))
    """)
    assert p.key == "static.path"


def test_table_too_large_for_the_ttl_encoding(tmp_path):
    parallel = ProtocolSettings(scheme="parallel", frame_line=1, parity_line=2,
                                index_lines=tuple(range(3, 11)))
    body = """
        experiment = Experiment(stimulus="grating", dynamic=dict(
            ori_deg=Variable(range(0, 360, 10), dim=0),
            sf_cpd=Variable([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 0.3], dim=1),
        ))
    """
    assert problems(tmp_path, body) == []  # 288 conditions: fine on the 16-bit serial word
    (p,) = problems(tmp_path, body, parallel)
    assert p.key == "sweep table" and "288 conditions" in p.message
    assert "8 index lines" in p.message and p.line == 3


def test_script_errors_carry_their_line(tmp_path):
    with pytest.raises(ScriptError) as e:
        load_script(write(tmp_path, "experiment = Experiment(\n"))
    assert "syntax error" in str(e.value)
    with pytest.raises(ScriptError) as e:
        load_script(write(tmp_path, "x = 1\nexperiment = Experiment(stimulus=undefined_name)\n"))
    assert e.value.line == 3 and "NameError" in str(e.value)
    with pytest.raises(ScriptError) as e:
        load_script(write(tmp_path, "x = Variable([])\n"))
    assert e.value.line == 2 and "no values" in str(e.value)
    with pytest.raises(ScriptError, match="assign an Experiment"):
        load_script(write(tmp_path, "x = 1\n"))


def test_validate_command(tmp_path, capsys):
    good = write(tmp_path, 'experiment = Experiment(stimulus="bar")\n', "good.py")
    assert main(["validate", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = write(tmp_path, """
        experiment = Experiment(stimulus="bar",
                                dynamic=dict(speed=10.0))
    """, "bad.py")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4: dynamic.speed: unknown parameter for bar (did you mean 'speed_dps'?)" in err


def test_example_scripts_validate():
    from pathlib import Path

    import stimulus

    examples = sorted((Path(stimulus.__file__).parent / "examples").glob("*.py"))
    assert len(examples) >= 7
    for path in examples:
        loaded = load_script(path)
        assert validate(loaded, CTX, SERIAL).problems == [], path.name


def test_old_sec_names_in_a_script_still_work():
    """A script from before the ``_sec`` -> ``_s`` rename: ``preexp_sec``, ``Blanks(sec=)`` and
    the parameters ``sweep_sec`` / ``postsweep_sec`` are read under their new names; both names
    at once is an error."""
    from stimulus.script import Blanks, Experiment, ScriptError, Variable

    exp = Experiment("grating", static={"sweep_sec": 0.5},
                     dynamic={"ori_deg": Variable([0, 90]), "postsweep_sec": 0.1},
                     blanks=Blanks(every=3, sec=2.0), preexp_sec=2.0, postexp_sec=0.25)
    assert (exp.preexp_s, exp.postexp_s, exp.blanks.duration_s) == (2.0, 0.25, 2.0)
    assert exp.static == {"sweep_s": 0.5} and list(exp.dynamic) == ["ori_deg", "postsweep_s"]
    with pytest.raises(ScriptError, match="old name of 'sweep_s'"):
        Experiment("grating", static={"sweep_sec": 0.5, "sweep_s": 0.5})
