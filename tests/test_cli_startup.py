"""``sweepsort --help`` / ``sweepstim --help`` (and every subcommand's) load no heavy module:
no numpy, numba, scipy, matplotlib, sklearn, spikeinterface, pyglet. A robust
non-timing check on ``python -X importtime``; the times are in
benchmarks/bench_cli_startup.py. The help text is plain (no RST markup)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"numpy", "numba", "scipy", "matplotlib", "sklearn", "spikeinterface", "pyglet",
         "llvmlite", "dask", "probeinterface"}
SWEEPSORT_CMDS = ("replay", "detect", "sort", "info", "report", "monitor", "demo")
SWEEPSTIM_CMDS = ("run", "validate", "gamma-fit", "manual")


def _help(module: str, *cmd: str) -> tuple[str, set[str]]:
    """The help text and the top-level packages imported while printing it."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", module, *cmd, "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                imported.add(name.split(".")[0])
    return proc.stdout, imported


@pytest.mark.parametrize(("module", "cmd"),
                         [("offline.cli", ()), *[("offline.cli", (c,)) for c in SWEEPSORT_CMDS],
                          ("stimulus.cli", ()), *[("stimulus.cli", (c,)) for c in SWEEPSTIM_CMDS]])
def test_help_imports_nothing_heavy(module, cmd):
    text, imported = _help(module, *cmd)
    assert "usage:" in text
    assert not imported & HEAVY, f"{module} {' '.join(cmd)} --help imports {imported & HEAVY}"
    assert "Traceback" not in text
    assert "``" not in text and ":mod:`" not in text  # plain text, no RST markup


def test_the_importtime_parse_sees_heavy_imports():
    """The check above can fail: a command that does import numpy is seen."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import numpy"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    assert "numpy" in names


@pytest.mark.parametrize("module", ["offline.cli", "stimulus.cli"])
def test_top_level_help_is_plain_text(module):
    text, _ = _help(module)
    assert "``" not in text and ":mod:`" not in text
    assert text.split("\n\n")[1].startswith(("The sweepsort command", "sweepstim: run"))


def test_lazy_package_names_still_import():
    import offline
    import offline.sort
    from offline import read_online_spikes, read_online_sweeps
    from offline.sort import RecordingSource, load_sort, settings_from_table, sort_recording

    assert callable(read_online_spikes) and callable(read_online_sweeps)
    assert offline.read_online_sweeps is read_online_sweeps
    assert offline.sort.load_sort is load_sort and callable(sort_recording)
    assert RecordingSource and settings_from_table
    with pytest.raises(AttributeError):
        offline.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        from offline.sort import no_such_name  # noqa: F401


@pytest.mark.slow
def test_fast_exit_commands_flush_their_output(tmp_path):
    """``detect`` and ``info`` end with os._exit (no interpreter finalization) when run as the
    program: their output, piped, still arrives whole, and error statuses are kept."""
    import numpy as np
    from test_recording import write_binary_recording

    rec_dir = tmp_path / "s" / "Record Node 102" / "experiment1" / "recording1"
    data = np.random.default_rng(0).normal(0, 20, (4, 6000))
    data[:, 1000::700] -= 300
    write_binary_recording(rec_dir, data, 0, [])

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "offline.cli", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    proc = run("detect", str(tmp_path / "s"), "--out", str(tmp_path / "d"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("probe: ") and "peaks on 4 channels" in proc.stdout
    assert proc.stdout.endswith("peaks.npy\n")
    assert (tmp_path / "d" / "peaks.npy").is_file() and (tmp_path / "d" / "peaks.json").is_file()
    proc = run("info", str(tmp_path / "s"))
    assert proc.returncode == 0 and "6000 samples" in proc.stdout
    proc = run("info", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and proc.stderr.startswith("sweepsort info: ")


@pytest.mark.slow
def test_lazy_packages_still_reach_their_submodules():
    code = ("import offline, offline.sort; "
            "assert callable(offline.record_files.__name__.upper); "
            "assert offline.sort.pipeline.sort_recording is offline.sort.sort_recording; "
            "import sys; assert 'offline.sort.pipeline' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
