"""The live rig: where the online files go when the GUI gives start_recording a bare folder name
(every branch of the rule, every module, simulator and GIL-less native runner), the online
sample numbers against the Record Node's sample_numbers.npy, replay's offline reference for the
sorting modules, and a kill -9 of the host mid-recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import session  # noqa: F401 - the module-scoped fixture (sort + recording)

from oe_plugin.host import GuiApiStandIn, Host, SyntheticSource, run_session
from oe_plugin.host.native import NativeJob, find_compiler, run_native
from oe_plugin.host.session import config_env
from oe_plugin.host.sources import RecordingSource
from oe_plugin.outputs.stats_file import read_stats
from offline import read_online_spikes, read_online_sweeps
from offline.online_spikes import read_online_spikes_meta
from offline.online_sweeps import read_online_sweeps_meta
from offline.recording import open_recording

pytestmark = pytest.mark.slow  # each module in the native runner writing a live recording

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "oe_plugin" / "modules"
DETECTOR = MODULES / "spike_detector.py"
NAME = "2026-12-06_16-22-42"
FS = 30000.0
SPIKES = tuple((3000 + 2500 * k, k % 4, -150.0) for k in range(28))

needs_cc = pytest.mark.skipif(find_compiler() is None,
                              reason="no C compiler: the native runner cannot be built")


def source(**kw):
    return SyntheticSource(4, FS, 2.5, seed=1, spikes=SPIKES, **kw)


DETECT = "[detect]\nthreshold_uv = 70\n"  # a fixed threshold: one detection per injected spike


def settings(tmp_path, text=DETECT):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def recording_header(folder):
    return read_online_spikes_meta(folder)[0]["metadata"]["recording"]


def announced(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "online files go to" in ln]


# ---------------------------------------------------------------------------------------------
# the branches of the rule (oe_plugin/outputs/location.py)

def test_gui_default_bare_name_and_api(tmp_path, capsys):
    """As the GUI: start_recording gets the bare name; the API says where the Record Node
    writes; the files land beside its folder and name its experiment and recording."""
    rec = tmp_path / "gui-data" / NAME
    run_session(DETECTOR, source(), recording_dir=rec, config_path=settings(tmp_path))
    assert len(read_online_spikes(rec)) == len(SPIKES)
    assert recording_header(rec) == {
        "recording_folder": str(rec), "start_recording_arg": NAME, "resolved_by": "gui-api",
        "record_node": 101, "experiment_number": 1, "recording_number": 1}
    assert (rec / "Record Node 101" / "experiment1" / "recording1").is_dir()
    lines = announced(capsys.readouterr().err)
    assert len(lines) == 1 and str(rec / "sweepsort") in lines[0]
    assert not (Path.cwd() / NAME).exists()  # nothing where the GUI's working directory is


def test_absolute_existing_path_is_used_as_given(tmp_path):
    rec = tmp_path / "given"
    rec.mkdir()
    run_session(DETECTOR, source(), recording_dir=rec, folder_arg="path", gui_api="off",
                config_path=settings(tmp_path))
    assert recording_header(rec)["resolved_by"] == "path"


@pytest.mark.parametrize("api", ["off", "slow", "disabled"])
def test_without_the_api_the_configured_directory(tmp_path, capsys, api):
    """API switched off, too slow (the module waits <= 0.5 s), or not to be asked:
    [output] directory (relative to the settings file) + the name."""
    text = 'directory = "lab-data"\n' + ("use_gui_api = false\n" if api == "disabled" else "")
    config = settings(tmp_path, DETECT + "[output]\n" + text)
    stand_in = GuiApiStandIn(tmp_path / "elsewhere", delay_s=2.0 if api == "slow" else 0.0)
    with stand_in, config_env(config):
        host = Host(DETECTOR, 4, FS, gui_api="off" if api == "off" else stand_in)
        host.start_acquisition()
        t0 = time.perf_counter()
        host.start_recording(tmp_path / "gui-data" / NAME)
        waited = time.perf_counter() - t0
        data = source().read_uv(0, 75000)
        out = host.run_block(data)
        host.stop_acquisition()
    np.testing.assert_array_equal(out, data)
    folder = tmp_path / "lab-data" / NAME
    assert len(read_online_spikes(folder)) == len(SPIKES)
    assert recording_header(folder)["resolved_by"] == "configured"
    err = capsys.readouterr().err
    assert len(announced(err)) == 1
    if api == "slow":
        assert 0.45 <= waited < 1.0, f"start_recording waited {waited:.2f} s"
        assert "no answer within 0.5 s" in err or "no complete answer" in err
    if api == "disabled":
        assert stand_in.requests.get("/api/recording", 0) == 0
    if api == "off":
        assert "cannot connect" in err and waited < 0.5


def test_no_api_no_directory_the_documented_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run_session(DETECTOR, source(), recording_dir=tmp_path / "gui-data" / NAME, gui_api="off",
                config_path=settings(tmp_path))
    folder = tmp_path / "home" / "sweepsort-online" / NAME
    assert recording_header(folder)["resolved_by"] == "fallback"
    assert len(read_online_spikes(folder)) == len(SPIKES)


def test_several_record_nodes_downstream_one_or_configured(tmp_path, capsys):
    """Two Record Nodes with their own folders: the one after the Python Processor, or the one
    [output] record_node names."""
    a, b = tmp_path / "disk-a", tmp_path / "disk-b"
    chain = [{"id": 100, "name": "File Reader", "predecessor": None},
             {"id": 101, "name": "Record Node", "predecessor": 100},
             {"id": 102, "name": "Python Processor", "predecessor": 101},
             {"id": 104, "name": "Record Node", "predecessor": 102}]
    nodes = [{"node_id": 101, "parent_directory": str(a)},
             {"node_id": 104, "parent_directory": str(b)}]
    for wanted, where, node in ((None, b, 104), (101, a, 101)):
        config = settings(tmp_path, DETECT + ("" if wanted is None
                                              else f"[output]\nrecord_node = {wanted}\n"))
        with GuiApiStandIn(tmp_path, nodes, chain) as api:
            run_session(DETECTOR, source(), recording_dir=tmp_path / NAME, gui_api=api,
                        config_path=config)
        assert recording_header(where / NAME)["record_node"] == node
        err = capsys.readouterr().err
        assert ("downstream of the Python Processor" if wanted is None
                else "as configured") in announced(err)[0]


PIPELINE_LIGHT = '[match]\nenabled = false\n[protocol]\nscheme = "serial"\n'


@pytest.mark.parametrize("module, text", [
    ("spike_detector", DETECT), ("sweep_decoder", '[protocol]\nscheme = "serial"\n'),
    ("online_sorter", "[match]\nenabled = false\n"), ("pipeline", PIPELINE_LIGHT)])
def test_unwritable_folder_reported_once_data_keep_flowing(tmp_path, capsys, module, text):
    """The recording folder cannot be made (a file has its name): a clear error, once over two
    recordings, and every block passes through; nothing escapes."""
    (tmp_path / NAME).write_text("not a folder")
    src = source(ttl=[(i, 0, i % 300 == 0) for i in range(0, 75000, 150)])
    with config_env(settings(tmp_path, text)):
        host = Host(MODULES / f"{module}.py", 4, FS)
        for _ in range(2):
            host.start_acquisition()
            host.start_recording(tmp_path / NAME)
            for k in range(0, 75000, 696):
                data = src.read_uv(k, min(k + 696, 75000))
                np.testing.assert_array_equal(host.run_block(data), data)
            host.stop_acquisition()
        host.close()
    err = capsys.readouterr().err
    assert err.count("cannot write the online files to") == 1, err
    assert f"{tmp_path / NAME / 'sweepsort'}" in err and host.crashed is None
    assert host.instance.errors >= 2  # the second time counted, not printed


def test_recordings_in_one_folder_never_mix(tmp_path):
    """Two recordings in one acquisition, then a new acquisition: experiment/recording numbers
    in the headers, and a Record Node's recording folder reads only its own spikes."""
    rec = tmp_path / NAME
    src = source()
    with config_env(settings(tmp_path)):
        host = Host(DETECTOR, 4, FS)
    host.start_acquisition()
    for start, stop in ((0, 25000), (25000, 50000)):
        host.start_recording(rec)
        host.run_block(src.read_uv(start, stop))
        host.stop_recording()
    host.stop_acquisition()
    host.start_acquisition()
    host.start_recording(rec)
    host.run_block(src.read_uv(0, 40000))
    host.stop_acquisition()
    host.close()
    metas = read_online_spikes_meta(rec)
    got = [(m["metadata"]["recording"]["experiment_number"],
            m["metadata"]["recording"]["recording_number"]) for m in metas]
    assert got == [(1, 1), (1, 2), (2, 1)]
    assert len(read_online_spikes(rec)) == sum(m["n_records"] for m in metas)
    second = read_online_spikes(rec / "Record Node 101" / "experiment1" / "recording2")
    assert len(second) == metas[1]["n_records"] > 0
    assert (second["sample_number"] >= 25000).all()


# ---------------------------------------------------------------------------------------------
# every module, the GUI's default, simulator and native runner

def module_config(session, tmp_path, module):  # noqa: F811 - the fixture's name
    if module == "pipeline":
        return session["config"]
    text = {"spike_detector": "",
            "sweep_decoder": '[protocol]\nscheme = "serial"\n',
            "online_sorter": f'[match]\nsort_dir = "{session["sort_dir"]}"\n'}[module]
    return settings(tmp_path, text)


@pytest.mark.parametrize("runner", ["simulator", pytest.param("native", marks=needs_cc)])
@pytest.mark.parametrize("module", ["spike_detector", "sweep_decoder", "online_sorter",
                                    "pipeline"])
def test_every_module_writes_into_the_recording_folder(session, tmp_path, runner, module):  # noqa: F811
    rec = tmp_path / "gui-data" / NAME
    path = MODULES / f"{module}.py"
    config = module_config(session, tmp_path, module)
    src = RecordingSource(session["rec"])
    if runner == "native":
        run_native(NativeJob(path, src, 696, config_path=config, recording_dir=rec,
                             hang_timeout_s=30.0))
    else:
        run_session(path, src, 696, recording_dir=rec, config_path=config)
    sweeps = module in ("sweep_decoder", "pipeline")
    spikes = module != "sweep_decoder"
    if spikes:
        got = read_online_spikes(rec)
        assert recording_header(rec)["resolved_by"] == "gui-api"
        if module != "spike_detector":  # the causal sort, spike for spike
            want = session["want"]
            np.testing.assert_array_equal(got["sample_number"], want["sample_index"])
            np.testing.assert_array_equal(got["unit"], want["unit"])
        else:
            assert len(got) > 100
    if sweeps:
        frames = read_online_sweeps(rec)
        np.testing.assert_array_equal(frames, session["frames"])
        meta = read_online_sweeps_meta(rec)[0]
        assert meta["metadata"]["recording"]["recording_folder"] == str(rec)
    if module == "pipeline":
        arrays, meta = read_stats(rec)
        assert meta["recording"]["resolved_by"] == "gui-api"
        assert meta["experiments_seen"] == 2
        from offline.cli import main

        png = tmp_path / "monitor.png"
        assert main(["monitor", str(rec), "--once", "--png", str(png)]) == 0 and png.exists()
        # from the Record Node's own folder, too
        inner = rec / "Record Node 101" / "experiment1" / "recording1"
        assert main(["monitor", str(inner), "--once"]) == 0
        assert len(read_online_spikes(inner)) == len(session["want"])


def test_monitor_finds_a_bare_name_through_the_api(session, tmp_path):  # noqa: F811
    rec = tmp_path / "gui-data" / NAME
    run_session(MODULES / "pipeline.py", RecordingSource(session["rec"]), 696,
                recording_dir=rec, config_path=session["config"])
    from offline.monitor import locate_recording

    with GuiApiStandIn(rec.parent) as api:
        old = os.environ.get("SWEEPSORT_GUI_API_PORT")
        os.environ["SWEEPSORT_GUI_API_PORT"] = str(api.port)
        try:
            assert locate_recording(NAME) == rec
        finally:
            if old is None:
                os.environ.pop("SWEEPSORT_GUI_API_PORT")
            else:
                os.environ["SWEEPSORT_GUI_API_PORT"] = old
    config = settings(tmp_path, f'[output]\nuse_gui_api = false\ndirectory = "{rec.parent}"\n')
    assert locate_recording(NAME, config) == rec


# ---------------------------------------------------------------------------------------------
# replay: the offline reference of a sorting module is the causal sort

@pytest.mark.parametrize("module", ["online_sorter", "pipeline"])
def test_replay_compare_offline_uses_the_causal_sort(session, tmp_path, capsys, module):  # noqa: F811
    from offline.cli import main

    config = module_config(session, tmp_path, module)
    code = main(["replay", str(session["rec"]), "--module", str(MODULES / f"{module}.py"),
                 "--config", str(config), "--compare-offline", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"offline causal sort with {session['sort_dir']}" in out
    assert f"{len(session['want'])} spikes, identical to online" in out


# ---------------------------------------------------------------------------------------------
# sample numbers: the module's count, the Record Node's sample_numbers.npy

def recorded_sample_numbers(rec):
    d = rec / "Record Node 101" / "experiment1" / "recording1" / "continuous"
    (stream,) = list(d.iterdir())
    return np.load(stream / "sample_numbers.npy")


def test_online_sample_numbers_equal_the_record_nodes(tmp_path):
    """Recording starts 1.4 s after acquisition: every online spike's sample number is one of
    the Record Node's sample_numbers.npy, and the recorded data at that number is the source's
    at the same number (so an offline reader lines them up exactly)."""
    rec = tmp_path / NAME
    src = source()
    start = 42000
    run_session(DETECTOR, src, 696, recording_dir=rec, record=(start, None), record_data=True,
                config_path=settings(tmp_path))
    sn = recorded_sample_numbers(rec)
    spikes = read_online_spikes(rec)
    assert sn[0] >= start and sn[0] % 696 == 0 and np.all(np.diff(sn) == 1)
    injected = np.array([s[0] for s in SPIKES])
    assert len(spikes) == (injected >= sn[0]).sum() > 5
    assert np.isin(spikes["sample_number"], sn).all()
    r = open_recording(rec / "Record Node 101" / "experiment1" / "recording1")
    assert r.first_sample_number == sn[0]
    idx = spikes["sample_number"] - sn[0]
    raw = r.read_uv(0, r.n_samples)
    for s, i, ch in zip(spikes["sample_number"], idx, spikes["channel"], strict=True):
        assert abs(raw[ch, i] - src.read_uv(s, s + 1)[ch, 0]) <= 0.2  # int16 at 0.195 uV
    # the detections sit on the injected troughs (a causal filter shifts them by <= 2 samples)
    near = np.abs(spikes["sample_number"][:, None] - injected[None, :]).min(axis=1)
    assert near.max() <= 2


def test_a_source_that_does_not_restart_is_rebased_on_ttl_numbers(tmp_path, capsys):
    """A File Reader carries its position over: the stream starts at 500000, the module counts
    from 0; with the TTL events' absolute numbers it writes the stream's numbers, equal to the
    Record Node's and to the restart-at-0 run shifted by 500000."""
    rng = np.random.default_rng(4)
    t = np.sort(rng.choice(75000, 600, replace=False))
    ttl = [(int(i), 0, bool(k % 2 == 0)) for k, i in enumerate(t)]
    runs = {}
    for first in (0, 500000):
        rec = tmp_path / f"first{first}"
        run_session(DETECTOR, source(ttl=ttl, first_sample_number=first), 696,
                    recording_dir=rec, record=(first + 42000, None), record_data=True,
                    config_path=settings(tmp_path))
        runs[first] = (read_online_spikes(rec), recorded_sample_numbers(rec),
                       read_online_spikes_meta(rec)[0]["metadata"]["sample_clock"])
    (a, sn_a, clock_a), (b, sn_b, clock_b) = runs[0], runs[500000]
    assert clock_a["sample_offset"] == 0 and clock_b["sample_offset"] == 500000
    lo, hi = clock_b["offset_bounds"]
    assert lo <= 500000 <= hi
    np.testing.assert_array_equal(sn_b, sn_a + 500000)
    np.testing.assert_array_equal(b["sample_number"], a["sample_number"] + 500000)
    np.testing.assert_array_equal(b[["channel", "amplitude_uv"]], a[["channel", "amplitude_uv"]])
    assert np.isin(b["sample_number"], sn_b).all()


# ---------------------------------------------------------------------------------------------
# kill -9 of the host mid-recording

CHILD = textwrap.dedent("""
    import sys
    from oe_plugin.host.session import SessionRunner, config_env
    from oe_plugin.host.simulator import Host
    from oe_plugin.host.sources import RecordingSource
    module, config, rec, out, kill_at = sys.argv[1:6]
    src = RecordingSource(rec)
    with config_env(config):
        host = Host(module, src.n_channels, src.sample_rate_hz)
        runner = SessionRunner(host, src, 696, recording_dir=out)
        while True:
            dt = runner.step()
            if dt < 0:
                break
            if dt > 0 and runner.n_samples >= int(kill_at):
                print("READY", runner.n_samples, flush=True)
                sys.stdin.read()   # wait here, mid-recording, for the kill
    print("DONE", flush=True)
""")


def test_kill_9_mid_recording_loses_at_most_half_a_second(session, tmp_path):  # noqa: F811
    out = tmp_path / "gui-data" / NAME
    kill_at = int(session["n"] * 0.7)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(MODULES / "pipeline.py"), str(session["config"]),
         str(session["rec"]), str(out), str(kill_at)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(ROOT)))  # this tree's packages
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), line + proc.stderr.read()
        processed = int(line.split()[1])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    half_s = int(0.5 * FS)
    block = 696
    # spikes: what is on disk is exactly the start of the full run's spikes, and every spike
    # reported more than 0.5 s of data before the kill is there
    spikes = read_online_spikes(out)
    want = session["want"]
    delay = read_online_spikes_meta(out)[0]["metadata"]["report_delay_samples"]
    np.testing.assert_array_equal(spikes["sample_number"], want["sample_index"][:len(spikes)])
    np.testing.assert_array_equal(spikes["unit"], want["unit"][:len(spikes)])
    reported = want["sample_index"] + delay + block <= processed
    lost = want[reported][len(spikes):]
    assert (lost["sample_index"] + delay + block > processed - half_s).all(), \
        f"lost spikes from {processed - lost['sample_index'].min()} samples before the kill"
    # sweeps: the same for the decoded refreshes (decoded about one refresh late)
    frames = read_online_sweeps(out)
    full = session["frames"]
    np.testing.assert_array_equal(frames, full[:len(frames)])
    late = 2 * int(FS / 200) + block
    known = full[full["sample_number"] + late <= processed]
    assert (known["sample_number"][len(frames):] + late > processed - half_s).all()
    # statistics: the last complete write is less than 0.5 s of data old
    _, meta = read_stats(out)
    assert processed - half_s < meta["samples_processed"] <= processed
    print(f"kill -9 at {processed / FS:.2f} s: {len(lost)} reported spikes and "
          f"{len(known) - len(frames)} frames not on disk; statistics "
          f"{(processed - meta['samples_processed']) / FS * 1e3:.0f} ms old")


# ---------------------------------------------------------------------------------------------
# the pieces: the sample clock, the API client

def test_sample_clock_bounds_converge_and_restart_on_a_jump():
    from oe_plugin.online.clock import SampleClock

    clock = SampleClock()
    for n in (100, 100):           # restart-at-0 source: events inside their blocks
        clock.on_event(clock.count + 37)
        assert clock.begin_block(n) == clock.count - n and clock.offset == 0
    clock.reset()
    offset, rng = 123456, np.random.default_rng(1)
    for _ in range(50):            # a File Reader: events at random places in 696-sample blocks
        for p in sorted(rng.integers(0, 696, 3)):
            clock.on_event(clock.count + offset + int(p))
        clock.begin_block(696)
    assert clock.lo <= offset <= clock.hi and clock.hi - clock.lo < 40
    assert clock.offset == clock.hi and clock.offset - offset < 40
    clock.on_event(clock.count + offset)   # an event on a block's first sample: exact
    clock.begin_block(696)
    assert clock.offset == offset and clock.jumps == 0
    clock.on_event(clock.count + 10)       # the source jumped back to 0-based numbers
    clock.begin_block(696)
    assert clock.jumps == 1 and clock.offset == 0


def test_api_client_errors_are_gui_api_errors(tmp_path):
    from oe_plugin.outputs.location import GuiApiError, choose_record_node, http_get_json

    with GuiApiStandIn(tmp_path) as api:
        assert http_get_json(api.port, "/api/recording", 0.5)["parent_directory"] == str(tmp_path)
        with pytest.raises(GuiApiError, match="HTTP status 404"):
            http_get_json(api.port, "/api/nothing", 0.5)
        api.status = 500
        with pytest.raises(GuiApiError, match="500"):
            http_get_json(api.port, "/api/recording", 0.5)
    with pytest.raises(GuiApiError, match="no Record Node"):
        choose_record_node([])
    with pytest.raises(GuiApiError, match="record_node = 7"):
        choose_record_node([{"node_id": 101}], wanted=7)
    node, why = choose_record_node([{"node_id": 101}, {"node_id": 104}])
    assert node["node_id"] == 101 and "none found downstream" in why
