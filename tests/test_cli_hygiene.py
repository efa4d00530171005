"""The CLI around the sorter: --allow-truncated, errors that name the file, output modes that
follow the umask, --jobs validated, Ctrl-C as one line and a re-run that says it resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_recording import one_recording_session

from offline.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def _session(tmp_path, n_channels=4, seconds=0.2):
    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (n_channels, int(30000 * seconds)))
    data[:, 1000::700] -= 300  # spikes to detect
    return one_recording_session(tmp_path, data)


@pytest.mark.slow
def test_allow_truncated_reads_what_is_complete(tmp_path, capsys):
    session, rec_dir = _session(tmp_path)
    dat = next(rec_dir.glob("continuous/*/continuous.dat"))
    with open(dat, "r+b") as f:
        f.truncate(dat.stat().st_size - 3)  # the GUI died mid-frame
    out = tmp_path / "o"
    assert cli_main(["sort", str(session), "--out", str(out), "--probe", "single",
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "continuous.dat: truncated" in err and "pass --allow-truncated" in err
    assert "allow_truncated=True in Python" in err
    assert cli_main(["info", str(session), "--allow-truncated"]) == 0
    assert "5999 samples" in capsys.readouterr().out
    assert cli_main(["detect", str(session), "--out", str(tmp_path / "d"), "--quiet",
                     "--allow-truncated"]) == 0
    assert cli_main(["sort", str(session), "--out", str(out), "--probe", "single", "--jobs",
                     "1", "--quiet", "--allow-truncated"]) == 0
    from offline.sort import load_sort

    meta = load_sort(out).meta
    assert meta["n_samples"] == 5999 and meta["recording"]["allow_truncated"] is True


def test_invalid_structure_oebin_is_named(tmp_path, capsys):
    session, rec_dir = _session(tmp_path)
    (rec_dir / "structure.oebin").write_text("{ not json")
    for argv in (["sort", str(session), "--out", str(tmp_path / "o"), "--probe", "single"],
                 ["info", str(session)],
                 ["detect", str(session), "--out", str(tmp_path / "d")]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"{rec_dir / 'structure.oebin'}: not a valid structure.oebin" in err


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask):
    session, _ = _session(tmp_path)
    old = os.umask(umask)
    try:
        out = tmp_path / "o"
        assert cli_main(["sort", str(session), "--out", str(out), "--probe", "single",
                         "--jobs", "1", "--quiet"]) == 0
        assert cli_main(["detect", str(session), "--out", str(tmp_path / "d"), "--quiet"]) == 0
    finally:
        os.umask(old)
    files = [out / "sort.npz", out / "sort.json", *sorted((out / "phy").iterdir()),
             tmp_path / "d" / "peaks.npy", tmp_path / "d" / "peaks.json"]
    assert len(files) > 10
    modes = {f.name: oct(f.stat().st_mode & 0o777) for f in files}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes


@pytest.mark.parametrize("bad", ["0", "-3", "two"])
def test_jobs_is_validated(tmp_path, capsys, bad):
    session, _ = _session(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli_main(["sort", str(session), "--out", str(tmp_path / "o"), "--probe", "single",
                  "--jobs", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --jobs: must be" in err and ">= 1" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", ["nan", "500", "far"])
def test_demo_drift_is_validated(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        cli_main(["demo", "--out", str(tmp_path / "d"), "--drift-um", bad])
    assert exc.value.code == 2
    assert "argument --drift-um: must be" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_rerun_resumes(tmp_path):
    session, _ = _session(tmp_path, n_channels=8, seconds=30.0)
    cfg = tmp_path / "sort.toml"
    cfg.write_text("[preprocess]\nchunk_s = 0.25\n")  # 120 chunks
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "offline.cli", "sort", str(session), "--out", str(out),
           "--probe", "single", "--jobs", "2", "--config", str(cfg)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # its own process group, as a terminal's: Ctrl-C reaches the main process and the workers
    # and Ctrl-C handled even when this test runs as a background job (a shell without job
    # control starts those with SIGINT ignored, and Python keeps an ignored SIGINT ignored)
    proc = subprocess.Popen([*cmd, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while len(list(out.glob("work/detect_*.npz"))) < 5 and proc.poll() is None:
        assert time.monotonic() < deadline, "the sort did not start"
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr == "sweepsort sort: interrupted; re-run the same command to resume\n"
    assert not (out / "sort.json").exists()
    done = len(list(out.glob("work/detect_*.npz")))
    assert 5 <= done < 120
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {done} of 120 chunks done (detect)" in rerun.stdout
    assert "Traceback" not in rerun.stderr
    assert (out / "sort.json").is_file()


def test_a_ctrl_c_swallowed_by_a_del_is_raised_at_the_next_check(capsys):
    """Python reports a KeyboardInterrupt raised inside a __del__ as "Exception ignored" and
    goes on: a sort interrupted at that instant (a ZipFile being collected) ran to its end
    (seen once in CI). offline.interrupt remembers it, keeps the report quiet, and check()
    raises it again."""
    from offline import interrupt

    class Dropped:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the Python-level handler runs here, inside __del__

    # a test run started as a background job has SIGINT ignored, and install() keeps it so
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = interrupt.install()
    try:
        try:
            Dropped()  # collected at once
            time.sleep(0.01)
        except KeyboardInterrupt:
            pytest.fail("the interrupt was raised outside __del__: the test did not test")
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        assert "Exception ignored" not in capsys.readouterr().err
    finally:
        interrupt.restore(previous)
        signal.signal(signal.SIGINT, outer)
    interrupt.check()  # restore() forgets it: nothing is raised any more


def test_an_error_raised_while_ctrl_c_unwinds_is_the_interrupt(tmp_path, capsys, monkeypatch):
    """Ctrl-C inside ``np.savez`` makes zipfile's cleanup raise a ValueError in its place (seen
    in CI: a traceback and exit 1 instead of the one-line message); the CLI knows a key was
    pressed and reports the interrupt. Without a press the error stays an error."""
    import offline.cli as cli
    from offline import interrupt

    def unwinding(args):
        interrupt._pressed.set()  # what the SIGINT handler does before raising
        raise ValueError("Can't close the ZIP file while there is an open writing handle on it")

    monkeypatch.setattr(cli, "cmd_detect", unwinding)
    argv = ["detect", str(tmp_path), "--out", str(tmp_path / "o")]
    assert cli_main(argv) == 130
    assert capsys.readouterr().err == "sweepsort detect: interrupted\n"

    def failing(args):
        raise ValueError("a real bug")

    monkeypatch.setattr(cli, "cmd_detect", failing)
    with pytest.raises(ValueError, match="a real bug"):
        cli_main(argv)
