"""The GUI side stands alone: what the Open Ephys Python Processor loads (the four module files,
``oe_plugin.online``, ``kernels``, ``outputs``, ``protocol``, ``formats``) imports none of
``offline``, ``stimulus`` or their heavy dependencies — not at import, and not while a module is
built with a real sort folder and session file, started, fed blocks and recorded — and nothing
outside the standard library and the ``gui`` extra of pyproject.toml (with what those need).

All four modules run in one fresh interpreter, each loaded as the GUI loads it: a stand-in
``oe_pyprocessor`` in ``sys.modules``, the modules' folder on ``sys.path``, imported by file
stem, ``PyProcessor(processor, num_channels, sample_rate)`` with the settings file named by
``$SWEEPSORT_CONFIG``. After each, the interpreter reports what ``sys.modules`` holds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from test_online_sorter import FS, synthetic_session, write_sort_folder

from oe_plugin.config import load_toml

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "oe_plugin" / "modules"
STEMS = ("pipeline", "online_sorter", "spike_detector", "sweep_decoder")
C = 8

FORBIDDEN = ("offline", "stimulus", "sklearn", "matplotlib", "pyglet", "pandas", "hdbscan",
             "spikeinterface", "pynwb", "open_ephys", "tqdm", "threadpoolctl", "serial")
"""Packages the GUI's embedded Python must not need."""

GUI_PACKAGES = ("oe_plugin.online", "oe_plugin.kernels", "oe_plugin.outputs",
                "oe_plugin.protocol", "oe_plugin.formats")

DRIVER = r"""
import sys
startup = set(sys.modules)  # the interpreter's own start (site, .pth hooks)
import importlib, json, os, pkgutil, types
import numpy as np

modules_dir, rec_root, configs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
report = {}
for name in sys.argv[4:]:  # every module of the GUI-side packages
    pkg = importlib.import_module(name)
    for info in pkgutil.iter_modules(pkg.__path__, name + "."):
        importlib.import_module(info.name)
report["packages"] = sorted(sys.modules)


class Processor:  # the C++ object: add_python_event only
    def __init__(self):
        self.events = []

    def add_python_event(self, line, state):
        self.events.append((int(line), bool(state)))


stand_in = types.ModuleType("oe_pyprocessor")
stand_in.PythonProcessor = Processor
sys.modules["oe_pyprocessor"] = stand_in
sys.path.append(modules_dir)
n_channels, fs = int(os.environ["GUI_TEST_CHANNELS"]), float(os.environ["GUI_TEST_FS"])
rng = np.random.default_rng(0)
for stem, config in configs.items():
    os.environ["SWEEPSORT_CONFIG"] = config
    module = importlib.import_module(stem)
    proc = module.PyProcessor(Processor(), n_channels, fs)
    proc.start_acquisition()
    rec = os.path.join(rec_root, stem)
    os.mkdir(rec)
    proc.start_recording(rec)
    for n in (696, 1, 1393):
        proc.process(np.ascontiguousarray(rng.normal(0, 10, (n_channels, n)), np.float32))
        if hasattr(proc, "handle_ttl_event"):
            proc.handle_ttl_event(0, 0, 5, 1, True)
    proc.stop_recording()
    proc.stop_acquisition()
    report[stem] = sorted(sys.modules)
import site  # noqa: E402
roots = [os.path.realpath(p) + os.sep for p in site.getsitepackages()]
third_party = set()
for name, mod in list(sys.modules.items()):
    path = getattr(mod, "__file__", None)
    if name in startup or not path:
        continue
    path = os.path.realpath(path)
    for root in roots:
        if path.startswith(root):
            third_party.add(path[len(root):].split(os.sep)[0])
report["third_party"] = sorted(third_party)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """What the fresh interpreter held after the packages and after each module (names), and
    each module's distributions. The module settings name a sort folder (the format
    ``sweepsort sort`` writes) and a session file (as ``sweepstim`` writes it:
    ``sweep_table.conditions``)."""
    root = tmp_path_factory.mktemp("gui_imports")
    data, truth, pos = synthetic_session(duration_s=2.0, seed=4)
    sort_dir = write_sort_folder(root / "first.sort", data, truth, pos)
    session = root / "drift.session.json"
    session.write_text(json.dumps({
        "format": "sweepstim-session", "format_version": 1, "seed": 3,
        "sweep_table": {"n_conditions": 4,
                        "conditions": [{"ori_deg": 45.0 * i} for i in range(4)],
                        "order": [0, 1, 2, 3]}}))
    output = '[output]\nuse_gui_api = false\n'
    match = f'[match]\nsort_dir = "{sort_dir}"\n'
    sections = {"pipeline": match + f'[stats]\nsession_files = ["{session}"]\n' + output,
                "online_sorter": match + output, "spike_detector": output,
                "sweep_decoder": output}
    configs = {}
    for stem in STEMS:
        configs[stem] = str(root / f"{stem}.toml")
        Path(configs[stem]).write_text(sections[stem])
    (root / "rec").mkdir()
    env = dict(os.environ, GUI_TEST_CHANNELS=str(C), GUI_TEST_FS=str(FS), PYTHONPATH=str(ROOT))
    env.pop("SWEEPSORT_CONFIG", None)
    out = subprocess.run([sys.executable, "-c", DRIVER, str(MODULES), str(root / "rec"),
                          json.dumps(configs), *GUI_PACKAGES], capture_output=True, text=True,
                         env=env, cwd=root, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for stem in STEMS:  # each module really ran and wrote its files
        assert any((root / "rec" / stem / "sweepsort").iterdir()), f"{stem} wrote nothing"
    return report


def leaked(names) -> list[str]:
    return sorted(m for m in names if m.split(".")[0] in FORBIDDEN)


def test_gui_packages_import_no_offline_or_stimulus(loaded):
    assert "oe_plugin.online.pipeline" in loaded["packages"]
    assert not leaked(loaded["packages"])


@pytest.mark.parametrize("stem", STEMS)
def test_gui_module_built_with_a_sort_and_session_needs_no_offline(loaded, stem):
    names = loaded[stem]
    assert stem in names
    if stem in ("pipeline", "online_sorter"):  # the sort folder was read
        assert "oe_plugin.formats.sort_folder" in names
    assert not leaked(names), f"after {stem}.py (and those before it): {leaked(names)}"


def _requirement_names(dist: str) -> set[str]:
    """``dist`` and what it requires (no extras), transitively, as normalised names."""
    seen, todo = set(), [dist]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [re.match(r"[A-Za-z0-9_.\-]+", r).group(0) for r in requires
                 if "extra ==" not in r]
    return seen


def _top_level_owners() -> dict[str, set[str]]:
    """First path component in site-packages (a package folder or a module file) -> the
    installed distributions whose files hold it."""
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        for f in dist.files or []:
            top = f.parts[0]
            if top in ("..", "__pycache__") or top.endswith((".dist-info", ".pth")):
                continue
            owners.setdefault(top, set()).add(name)
    return owners


def test_gui_extra_covers_what_the_modules_import(loaded):
    """Every third-party distribution the modules loaded is in the ``gui`` extra (or needed by
    one there): installing that extra is enough for the GUI's embedded Python."""
    gui = load_toml(ROOT / "pyproject.toml")["project"]["optional-dependencies"]["gui"]
    allowed = {"sweepsort", "pyyaml"}  # numba.core.config imports yaml when it is there
    for req in gui:
        allowed |= _requirement_names(re.match(r"[A-Za-z0-9_.\-]+", req).group(0))
    owners = _top_level_owners()
    used = set()
    for top in loaded["third_party"]:
        assert top in owners, f"no installed distribution provides {top!r}"
        used |= owners[top]
    assert {"numpy", "numba"} <= used
    assert used - allowed == set(), f"the gui extra misses {sorted(used - allowed)}"
