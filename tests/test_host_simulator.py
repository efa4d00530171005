"""The pure-Python host reproduces the Python Processor's behaviour
(docs/plugin.md, docs/host-threading.md)."""

from __future__ import annotations

import sys
import textwrap
import uuid

import numpy as np
import pytest
from paths import EXAMPLE_DATA

from oe_plugin.host import (
    EVENT_DTYPE,
    ExplicitBlocks,
    FixedBlocks,
    Host,
    HostCrash,
    ModuleCallError,
    ModuleImportError,
    ModuleInitError,
    RandomBlocks,
    RecordingSource,
    SpikeEvent,
    SyntheticSource,
    TtlEvent,
    gui_block_size,
    load_module,
    replay,
    run_session,
)
from oe_plugin.host.blocks import policy_from_spec
from oe_plugin.host.sources import source_from_spec, spike_waveform

EXAMPLE = str(EXAMPLE_DATA)

HEADER = "import oe_pyprocessor  # noqa: F401\nimport numpy as np\n"

# Records every call with its arguments; emits (line+1, state) for each TTL it is given and
# (7, True) from every process() call; writes 2*data downstream.
RECORDER = HEADER + textwrap.dedent("""
    CALLS = []
    class PyProcessor:
        def __init__(self, processor, num_channels, sample_rate):
            self.processor = processor
            CALLS.append(("__init__", type(num_channels), num_channels, type(sample_rate),
                          sample_rate))
            self.arrays = []
        def start_acquisition(self):
            CALLS.append(("start_acquisition",))
        def stop_acquisition(self):
            CALLS.append(("stop_acquisition",))
        def start_recording(self, recording_dir):
            CALLS.append(("start_recording", recording_dir))
        def stop_recording(self):
            CALLS.append(("stop_recording",))
        def handle_ttl_event(self, source_node, channel, sample_number, line, state):
            CALLS.append(("ttl", source_node, channel, sample_number, line, state))
            self.processor.add_python_event(line + 1, state)
        def handle_spike(self, source_node, electrode_name, num_channels, num_samples,
                         sample_number, sorted_id, spike_data):
            CALLS.append(("spike", electrode_name, num_channels, num_samples, sample_number,
                          sorted_id, spike_data.dtype, spike_data.shape))
        def process(self, data):
            CALLS.append(("process", data.shape, data.dtype, data.flags["C_CONTIGUOUS"],
                          data.flags["OWNDATA"] or data.base is not None))
            self.arrays.append(data)
            data *= 2
            self.processor.add_python_event(7, True)
""")

MINIMAL = HEADER + textwrap.dedent("""
    class PyProcessor:
        def __init__(self, processor, num_channels, sample_rate):
            pass
        def process(self, data):
            pass
""")


@pytest.fixture(autouse=True)
def _restore_sys_path():
    saved = list(sys.path)
    yield
    sys.path[:] = saved


def write_module(tmp_path, body: str, stem: str | None = None):
    stem = stem or f"mod_{uuid.uuid4().hex[:10]}"
    path = tmp_path / f"{stem}.py"
    path.write_text(body)
    return path


def calls_of(host):
    return host.module.CALLS


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def test_load_module_by_stem_with_stand_in(tmp_path):
    path = write_module(tmp_path, MINIMAL)
    module = load_module(path)
    assert module.__name__ == path.stem
    assert str(tmp_path) in sys.path and sys.path[-1] == str(tmp_path)
    assert sys.modules["oe_pyprocessor"].PythonProcessor is not None
    # a second load imports afresh (stale sys.modules entry dropped)
    path.write_text(MINIMAL + "\nVERSION = 2\n")
    assert load_module(path).VERSION == 2


def test_load_module_errors(tmp_path):
    with pytest.raises(ModuleImportError, match="no such module"):
        load_module(tmp_path / "missing.py")
    bad = write_module(tmp_path, "import oe_pyprocessor\nraise RuntimeError('boom')\n")
    with pytest.raises(ModuleImportError, match="boom") as info:
        load_module(bad)
    assert isinstance(info.value.__cause__, RuntimeError)
    no_class = write_module(tmp_path, "import oe_pyprocessor\n")
    with pytest.raises(ModuleImportError, match="no class PyProcessor"):
        load_module(no_class)
    clash = write_module(tmp_path, MINIMAL, stem="json")  # the GUI would import stdlib json
    with pytest.raises(ModuleImportError, match="rename the script"):
        load_module(clash)


def test_init_arguments_and_init_error(tmp_path):
    host = Host(write_module(tmp_path, RECORDER), 3, 30000.123)
    name, t_ch, n_ch, t_fs, fs = calls_of(host)[0]
    assert (name, t_ch, n_ch, t_fs) == ("__init__", int, 3, float)
    assert fs == float(np.float32(30000.123))  # a C++ float on the way
    failing = HEADER + "class PyProcessor:\n    def __init__(self, p, n, fs):\n        1 / 0\n"
    with pytest.raises(ModuleInitError) as info:
        Host(write_module(tmp_path, failing), 2, 30000.0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


# ---------------------------------------------------------------------------------------------
# one block
# ---------------------------------------------------------------------------------------------
def test_block_copies_events_first_and_block_start_stamps(tmp_path):
    host = Host(write_module(tmp_path, RECORDER), 2, 30000.0)
    host.start_acquisition(first_sample_number=1000)
    data64 = np.arange(10, dtype=np.float64).reshape(2, 5)
    out = host.run_block(data64, ttl_events=[TtlEvent(1003, 4, True, 101, 2)])
    out2 = host.run_block(np.ones((2, 3), np.float32), ttl_events=[(1007, 0, False)])
    calls = calls_of(host)
    assert [c[0] for c in calls] == ["__init__", "start_acquisition", "ttl", "process", "ttl",
                                     "process"]
    assert calls[2] == ("ttl", 101, 2, 1003, 4, True)
    assert calls[3][1:4] == ((2, 5), np.float32, True)
    np.testing.assert_array_equal(out, 2 * data64)          # downstream = what the module left
    assert data64[0, 1] == 1.0                              # caller's array untouched
    arrays = host.instance.arrays
    assert arrays[0] is not arrays[1] and not np.shares_memory(arrays[0], arrays[1])
    np.testing.assert_array_equal(out2, 2)
    expected = np.array([(1000, 5, True), (1000, 7, True), (1005, 1, False), (1005, 7, True)],
                        dtype=EVENT_DTYPE)
    np.testing.assert_array_equal(host.events, expected)
    assert host.sample_number == 1008 and host.block_sizes == [5, 3]
    assert len(host.latencies_ms) == 2 and all(t >= 0 for t in host.latencies_ms)


def test_empty_block_skips_process_but_delivers_nothing_wrong(tmp_path):
    host = Host(write_module(tmp_path, RECORDER), 2, 30000.0)
    host.start_acquisition()
    out = host.run_block(np.zeros((2, 0)))
    assert out.shape == (2, 0) and out.dtype == np.float32
    assert [c[0] for c in calls_of(host)] == ["__init__", "start_acquisition"]
    assert host.latencies_ms == [] and host.block_sizes == [0]
    with pytest.raises(ValueError, match="expected"):
        host.run_block(np.zeros((3, 4)))


def test_spikes_delivered_before_process(tmp_path):
    host = Host(write_module(tmp_path, RECORDER), 2, 30000.0)
    host.start_acquisition()
    wave = np.ones((2, 40), np.float64)
    host.run_block(np.zeros((2, 8)), spikes=[SpikeEvent(3, "Stereotrode 1", wave, 2)])
    spike, process = calls_of(host)[2:4]
    assert spike == ("spike", "Stereotrode 1", 2, 40, 3, 2, np.float32, (2, 40))
    assert process[0] == "process"


def test_events_dropped_when_not_acquiring(tmp_path):
    body = HEADER + textwrap.dedent("""
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                self.p = processor
                processor.add_python_event(1, True)          # not acquiring: dropped
            def start_acquisition(self):
                self.p.add_python_event(2, True)             # kept: emitted at block 1
            def process(self, data):
                self.p.add_python_event(3, True)
            def stop_acquisition(self):
                self.p.add_python_event(4, True)             # dropped
    """)
    host = Host(write_module(tmp_path, body), 1, 30000.0)
    host.start_acquisition(50)
    host.run_block(np.zeros((1, 10)))
    host.stop_acquisition()
    host.processor.add_python_event(5, False)                # after: dropped
    np.testing.assert_array_equal(host.events, np.array([(50, 2, True), (50, 3, True)],
                                                        dtype=EVENT_DTYPE))
    assert host.dropped_events == 3


def test_add_python_event_argument_checks(tmp_path):
    host = Host(write_module(tmp_path, MINIMAL), 1, 30000.0)
    host.start_acquisition()
    host.processor.add_python_event(np.int64(3), np.bool_(True))
    with pytest.raises(TypeError):
        host.processor.add_python_event(1.5, True)
    with pytest.raises(ValueError):
        host.processor.add_python_event(256, True)


@pytest.mark.parametrize("where", ["process", "handle_ttl_event", "handle_spike"])
def test_exception_in_audio_callbacks_is_a_host_crash(tmp_path, where):
    body = HEADER + textwrap.dedent(f"""
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                pass
            def process(self, data):
                if {where == "process"}:
                    raise KeyError("in process")
            def handle_ttl_event(self, *args):
                if {where == "handle_ttl_event"}:
                    raise KeyError("in ttl")
            def handle_spike(self, *args):
                if {where == "handle_spike"}:
                    raise KeyError("in spike")
    """)
    host = Host(write_module(tmp_path, body), 1, 30000.0)
    host.start_acquisition(10)
    with pytest.raises(HostCrash) as info:
        host.run_block(np.zeros((1, 4)), ttl_events=[(11, 0, True)],
                       spikes=[SpikeEvent(12, "e", np.zeros((1, 4)))])
    assert info.value.call == where and host.crashed is info.value
    assert isinstance(info.value.__cause__, KeyError)
    assert host.events.size == 0
    with pytest.raises(HostCrash, match="stalled earlier"):  # the audio thread never recovers
        host.run_block(np.zeros((1, 4)))


def test_process_crash_carries_cause_and_block(tmp_path):
    body = HEADER + textwrap.dedent("""
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                self.k = 0
            def process(self, data):
                self.k += 1
                if self.k == 3:
                    raise FloatingPointError("third block")
    """)
    host = Host(write_module(tmp_path, body), 1, 30000.0)
    host.start_acquisition(100)
    host.run_block(np.zeros((1, 4)))
    host.run_block(np.zeros((1, 4)))
    with pytest.raises(HostCrash) as info:
        host.run_block(np.zeros((1, 4)))
    assert info.value.call == "process" and info.value.block_index == 2
    assert info.value.sample_number == 108
    assert isinstance(info.value.__cause__, FloatingPointError)


def test_optional_methods_and_call_errors(tmp_path, monkeypatch):
    host = Host(write_module(tmp_path, MINIMAL), 1, 30000.0)  # no start/stop/handlers at all
    host.start_acquisition()
    host.run_block(np.zeros((1, 5)), ttl_events=[(1, 0, True)])
    host.start_recording(tmp_path / "rec")
    host.stop_acquisition()                                   # stops recording first
    assert not host.recording
    body = HEADER + textwrap.dedent("""
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                pass
            def process(self, data):
                pass
            def start_recording(self, recording_dir):
                raise OSError("disk full")
    """)
    host = Host(write_module(tmp_path, body), 1, 30000.0)
    host.start_acquisition()
    with pytest.raises(ModuleCallError) as info:
        host.start_recording(tmp_path / "rec2")
    assert info.value.call == "start_recording" and isinstance(info.value.__cause__, OSError)


# ---------------------------------------------------------------------------------------------
# blocks, sources, sessions
# ---------------------------------------------------------------------------------------------
def test_block_policies():
    assert gui_block_size(30000.0) == 696
    assert gui_block_size(30000.0, 256) == 174 and gui_block_size(30000.0, 2048) == 1393
    assert list(FixedBlocks(4).sizes(10)) == [4, 4, 2]
    sizes = list(RandomBlocks(seed=3, max_size=5000).sizes(200_000))
    assert sum(sizes) == 200_000 and 1 in sizes and max(sizes) > 2000
    assert sizes == list(RandomBlocks(seed=3, max_size=5000).sizes(200_000))
    assert list(ExplicitBlocks((0, 1, 5)).sizes(4)) == [0, 1, 3]
    assert list(ExplicitBlocks((0, 2), then=3).sizes(9)) == [0, 2, 3, 3, 1]
    assert list(ExplicitBlocks((1, 2), cycle=True).sizes(7)) == [1, 2, 1, 2, 1]
    for policy in (FixedBlocks(7), RandomBlocks(seed=1, p_empty=0.1), ExplicitBlocks((1, 0, 3))):
        assert policy_from_spec(policy.to_spec()) == policy


def test_synthetic_source_is_block_invariant_and_has_spikes():
    src = SyntheticSource(3, 20000.0, 2.0, seed=5, noise_uv=0.0,
                          spikes=[(17000, 1, -150.0), (30, 2, -80.0)], ttl=[(5, 1, True)],
                          first_sample_number=77, upstream_spikes=True)
    whole = src.read_uv(0, src.n_samples)
    cut = np.concatenate([src.read_uv(a, b) for a, b in [(0, 1), (1, 16390), (16390, 40000)]],
                         axis=1)
    np.testing.assert_array_equal(whole, cut)
    assert whole[1].argmin() == 17000 and whole[1].min() == pytest.approx(-150.0)
    assert whole[2].argmin() == 30 and not whole[0].any()
    wave, n_pre = spike_waveform(20000.0)
    assert wave.argmin() == n_pre
    assert src.ttl_events()["sample_number"].tolist() == [82]
    assert [s.sample_number for s in src.spike_events()] == [107, 17077]
    noisy = SyntheticSource(2, 30000.0, 1.0, seed=1, noise_uv=12.0)
    assert noisy.read_uv(0, 30000).std() == pytest.approx(12.0, rel=0.05)
    again = source_from_spec(src.to_spec())
    np.testing.assert_array_equal(again.read_uv(0, src.n_samples), whole)


@pytest.mark.slow
def test_session_same_events_for_any_block_policy(tmp_path):
    path = write_module(tmp_path, RECORDER)
    src = SyntheticSource(2, 30000.0, 0.5, seed=2,
                          ttl=[(0, 0, True), (695, 1, True), (696, 1, False), (14999, 3, True)])
    fixed = run_session(path, src, 696, keep_downstream=True)
    assert fixed.n_samples == src.n_samples == 15000 and fixed.n_blocks == 22
    assert fixed.ttl_delivered == 4 and fixed.dropped_events == 0
    np.testing.assert_array_equal(fixed.downstream_uv, 2 * src.read_uv(0, src.n_samples))
    ttl_out = fixed.events[fixed.events["line"] != 7]
    assert ttl_out.tolist() == [(0, 1, True), (0, 2, True), (696, 2, False), (14616, 4, True)]
    for blocks in (RandomBlocks(seed=9, p_empty=0.05), ExplicitBlocks((0, 1, 1, 7), then=1000)):
        other = run_session(path, src, blocks, keep_downstream=True)
        np.testing.assert_array_equal(other.downstream_uv, fixed.downstream_uv)
        starts = src.first_sample_number + np.concatenate([[0], np.cumsum(other.block_sizes)])
        got = other.events[other.events["line"] != 7]
        # each TTL echo is stamped with the start of the block that held the TTL
        ttl_sn = np.array([0, 695, 696, 14999])
        block_of = np.searchsorted(starts, ttl_sn, side="right") - 1
        assert got["sample_number"].tolist() == starts[block_of].tolist()
        assert (other.events["line"] == 7).sum() == (other.block_sizes > 0).sum()


def test_session_recording_points(tmp_path):
    path = write_module(tmp_path, RECORDER)
    src = SyntheticSource(1, 1000.0, 1.0)
    run_session(path, src, 100, recording_dir=tmp_path / "rec", record=(250, 520))
    mod = sys.modules[path.stem]
    names = [c[0] for c in mod.CALLS]
    i_start, i_stop = names.index("start_recording"), names.index("stop_recording")
    assert names.count("process") == 10 and names[-1] == "stop_acquisition"
    assert names[:i_start].count("process") == 3 and names[:i_stop].count("process") == 6
    # the GUI gives the bare folder name; its Record Node makes the folder
    assert mod.CALLS[i_start][1] == "rec" and (tmp_path / "rec").is_dir()
    with pytest.raises(ValueError, match="recording_dir"):
        run_session(path, src, 100, record=(0, 10))


def test_config_path_exported_while_module_builds(tmp_path):
    body = HEADER + textwrap.dedent("""
        import os
        SEEN = []
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                SEEN.append(os.environ.get("SWEEPSORT_CONFIG"))
            def process(self, data):
                pass
    """)
    path = write_module(tmp_path, body)
    cfg = tmp_path / "x.toml"
    cfg.write_text("")
    run_session(path, SyntheticSource(1, 1000.0, 0.01), config_path=cfg)
    assert sys.modules[path.stem].SEEN == [str(cfg.resolve())]


def test_report_latency_and_npz_roundtrip(tmp_path):
    body = HEADER + textwrap.dedent("""
        import time
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                pass
            def process(self, data):
                time.sleep(0.002)
    """)
    report = run_session(write_module(tmp_path, body), SyntheticSource(2, 30000.0, 0.1), 696)
    assert report.n_process_calls == report.n_blocks == 5
    assert 2.0 <= report.latency_p50_ms <= report.latency_p99_ms <= report.latency_max_ms < 200
    assert "p99" in report.summary() and report.to_dict()["n_blocks"] == 5
    report.save_npz(tmp_path / "r.npz")
    back = type(report).load_npz(tmp_path / "r.npz")
    assert back.to_dict() == report.to_dict()


@pytest.mark.slow
def test_recording_source_replay_over_real_data(tmp_path):
    path = write_module(tmp_path, RECORDER)
    report = replay(EXAMPLE, path, random_blocks=True, node=101, keep_downstream=True)
    src = RecordingSource(EXAMPLE, node=101, rebase=True)  # replay = a new acquisition
    assert report.n_samples == src.n_samples == 133120 and report.n_channels == 16
    assert report.first_sample_number == 0 and src.recording_first_sample_number == 251635
    assert report.ttl_delivered == 128
    np.testing.assert_array_equal(report.downstream_uv, 2 * src.read_uv(0, src.n_samples))
    mod = sys.modules[path.stem]
    ttl_calls = [c for c in mod.CALLS if c[0] == "ttl"]
    ev = src.ttl_events()
    assert [c[3:] for c in ttl_calls] == [(int(e["sample_number"]), int(e["line"]),
                                           bool(e["state"])) for e in ev]
    default = replay(EXAMPLE, path)              # the GUI's block size at 40 kHz: 928
    assert default.block_sizes[0] == 928 == gui_block_size(40000.0)
    window = RecordingSource(EXAMPLE, start_index=1000, stop_index=3000)
    assert window.first_sample_number == 252635 and window.n_samples == 2000  # not rebased
    np.testing.assert_array_equal(window.read_uv(0, 2000), src.read_uv(1000, 3000))


def test_settings_change_rebuilds_without_reimport_and_reload(tmp_path):
    body = HEADER + textwrap.dedent("""
        IMPORTS = globals().setdefault("IMPORTS", 0) + 1
        BUILT = []
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                BUILT.append(num_channels)
            def process(self, data):
                pass
    """)
    path = write_module(tmp_path, body)
    host = Host(path, 2, 30000.0)
    first = host.instance
    host.reinit(num_channels=5)
    assert host.instance is not first and host.module.BUILT == [2, 5]
    assert host.module.IMPORTS == 1
    host.start_acquisition()
    host.run_block(np.zeros((5, 3)))
    with pytest.raises(RuntimeError, match="during acquisition"):
        host.reinit(num_channels=1)
    host.stop_acquisition()
    host.reload()                        # importlib.reload keeps the module's globals
    assert host.module.IMPORTS == 2 and host.module.BUILT == [5]
