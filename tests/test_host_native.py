"""The native runner reproduces the Python Processor's threading (process() without the GIL)."""

from __future__ import annotations

import sys
import textwrap
import uuid

import numpy as np
import pytest
from paths import EXAMPLE_DATA

from oe_plugin.host import RandomBlocks, SyntheticSource, replay, run_session
from oe_plugin.host.native import (
    SUPPORTED_PYTHONS,
    NativeJob,
    NativeRunnerError,
    build_runner,
    find_compiler,
    run_native,
)

EXAMPLE = str(EXAMPLE_DATA)

pytestmark = [
    pytest.mark.slow,  # the native GIL-less runner, built and run in subprocesses
    pytest.mark.skipif(find_compiler() is None,
                       reason="no C compiler (cc/gcc/clang): the native runner cannot be built"),
    pytest.mark.skipif(sys.version_info[:2] not in SUPPORTED_PYTHONS,
                       reason="the Python Processor's GIL-less calls work only on CPython "
                              "3.10/3.11"),
]

HEADER = "import oe_pyprocessor  # noqa: F401\nimport numpy as np\n"

# Echoes TTLs (line + 1) and spikes (line 9), emits line 7 every 5th block, doubles the data;
# writes which thread ran each call into recording_dir/calls.txt.
ECHO = HEADER + textwrap.dedent("""
    import os, threading
    class PyProcessor:
        def __init__(self, processor, num_channels, sample_rate):
            self.p = processor
            self.k = 0
            self.init_thread = threading.get_ident()
            self.log = []
            cfg = os.environ.get("SWEEPSORT_CONFIG")
            if cfg:
                with open(cfg + ".seen", "w") as f:
                    f.write(cfg)
        def start_acquisition(self):
            self.k = 0
        def start_recording(self, recording_dir):
            self.dir = recording_dir
            self.log.append(("start_recording", threading.get_ident() == self.init_thread))
        def stop_recording(self):
            self.log.append(("stop_recording", threading.get_ident() == self.init_thread))
            with open(os.path.join(self.dir, "calls.txt"), "w") as f:
                f.write(repr(self.log))
        def handle_ttl_event(self, source_node, channel, sample_number, line, state):
            self.p.add_python_event(line + 1, state)
        def handle_spike(self, source_node, electrode_name, num_channels, num_samples,
                         sample_number, sorted_id, spike_data):
            self.p.add_python_event(9, bool(spike_data.min() < -50))
        def process(self, data):
            if not self.log or self.log[-1][0] != "process":
                self.log.append(("process", threading.get_ident() == self.init_thread))
            data *= 2
            if self.k % 5 == 0:
                self.p.add_python_event(7, True)
            self.k += 1
""")

NJIT = HEADER + textwrap.dedent("""
    import numba
    @numba.njit(cache=True)
    def absum(x, out):
        for c in range(x.shape[0]):
            s = 0.0
            for i in range(x.shape[1]):
                s += abs(x[c, i])
            out[c] = s
    class PyProcessor:
        def __init__(self, processor, num_channels, sample_rate):
            self.out = np.zeros(num_channels, np.float32)
            absum(np.zeros((num_channels, 4), np.float32), self.out)   # compiled beforehand
        def process(self, data):
            absum(data, self.out)
""")

# the pattern of docs/host-threading.md: @cfunc entry over the @njit kernel, PYFUNCTYPE
CFUNC = HEADER + textwrap.dedent("""
    import ctypes, numba
    from numba import types
    @numba.njit(cache=True, error_model="numpy")
    def absum(x, out):
        for c in range(x.shape[0]):
            s = 0.0
            for i in range(x.shape[1]):
                s += abs(x[c, i])
            out[c] = s
    @numba.cfunc(types.void(types.CPointer(types.float32), types.intp, types.intp,
                            types.CPointer(types.float32)), cache=True, error_model="numpy")
    def absum_entry(x_ptr, n_channels, n_samples, out_ptr):
        absum(numba.carray(x_ptr, (n_channels, n_samples)),
              numba.carray(out_ptr, (n_channels,)))
    _absum = ctypes.PYFUNCTYPE(None, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_ssize_t,
                               ctypes.c_void_p)(absum_entry.address)
    class PyProcessor:
        def __init__(self, processor, num_channels, sample_rate):
            self.p = processor
            self.out = np.zeros(num_channels, np.float32)
        def process(self, data):
            _absum(data.ctypes.data, data.shape[0], data.shape[1], self.out.ctypes.data)
            ref = np.abs(data).sum(axis=1)
            self.p.add_python_event(1, bool(np.allclose(self.out, ref, rtol=1e-4)))
""")


def write_module(tmp_path, body: str):
    path = tmp_path / f"mod_{uuid.uuid4().hex[:10]}.py"
    path.write_text(body)
    return path


@pytest.fixture(scope="module", autouse=True)
def _runner():
    return build_runner()


@pytest.fixture(autouse=True)
def _restore_sys_path():
    saved = list(sys.path)
    yield
    sys.path[:] = saved


def failing(tmp_path, process_body="pass", extra=""):
    """A module whose process() runs ``process_body`` (after counting ``self.k``)."""
    body = HEADER + textwrap.dedent("""
        class PyProcessor:
            def __init__(self, processor, num_channels, sample_rate):
                self.k = 0
            def process(self, data):
                self.k += 1
    """) + textwrap.indent(process_body, " " * 8) + "\n" + textwrap.dedent(extra)
    return write_module(tmp_path, body)


def test_build_is_cached():
    assert build_runner() == build_runner()


def test_native_matches_simulator_and_calls_from_the_audio_thread(tmp_path):
    path = write_module(tmp_path, ECHO)
    src = SyntheticSource(3, 30000.0, 0.7, seed=4, spikes=[(1000, 1, -120.0), (9000, 0, -30.0)],
                          ttl=[(0, 0, True), (700, 2, True), (701, 2, False), (20000, 5, True)],
                          first_sample_number=123, upstream_spikes=True)
    blocks = RandomBlocks(seed=11, p_empty=0.05)
    cfg = tmp_path / "settings.toml"
    cfg.write_text("")
    # this module writes into the folder it is given: pass the path (the GUI passes a name)
    sim = run_session(path, src, blocks, recording_dir=tmp_path / "sim", keep_downstream=True,
                      folder_arg="path")
    nat = run_native(NativeJob(path, src, blocks, recording_dir=tmp_path / "nat",
                               keep_downstream=True, config_path=cfg, folder_arg="path"))
    assert nat.runner == "native" and sim.runner == "simulator"
    np.testing.assert_array_equal(nat.events, sim.events)
    np.testing.assert_array_equal(nat.block_sizes, sim.block_sizes)
    np.testing.assert_array_equal(nat.downstream_uv, sim.downstream_uv)
    assert (nat.ttl_delivered, nat.spikes_delivered) == (4, 2)
    assert nat.n_process_calls == sim.n_process_calls == (sim.block_sizes > 0).sum()
    assert (tmp_path / "settings.toml.seen").read_text() == str(cfg.resolve())
    # in the runner, recording and process() calls came from another thread than __init__
    log = eval((tmp_path / "nat" / "calls.txt").read_text())  # noqa: S307 - our own repr
    assert log == [("start_recording", False), ("process", False), ("stop_recording", False)]
    log_sim = eval((tmp_path / "sim" / "calls.txt").read_text())  # noqa: S307
    assert all(same for _, same in log_sim)


def test_plain_njit_call_in_process_hangs_only_natively(tmp_path):
    path = write_module(tmp_path, NJIT)
    src = SyntheticSource(4, 30000.0, 0.2)
    assert run_session(path, src).n_process_calls == 9          # the simulator sees nothing
    with pytest.raises(NativeRunnerError) as info:
        run_native(NativeJob(path, src, hang_timeout_s=2.0))
    err = info.value
    assert (err.verdict, err.exit_code, err.call, err.block_index) == ("hang", 10, "process", 0)
    assert "did not return" in err.stderr


def test_cfunc_pattern_runs_natively(tmp_path):
    report = run_native(NativeJob(write_module(tmp_path, CFUNC), SyntheticSource(8, 30000.0, 0.5),
                                  696))
    assert report.n_process_calls == 22
    assert report.events["state"].all() and report.events.size == 22
    assert report.latency_p99_ms < 50


def test_exception_in_process_is_a_crash(tmp_path):
    path = failing(tmp_path, "if self.k == 3:\n    raise ValueError('third')")
    with pytest.raises(NativeRunnerError) as info:
        run_native(NativeJob(path, SyntheticSource(1, 1000.0, 1.0), 100))
    err = info.value
    assert (err.verdict, err.exit_code, err.call, err.block_index) == ("crash", 11, "process", 2)
    assert err.sample_number == 200 and "ValueError: third" in err.stderr


def test_exception_in_handle_ttl_event_is_a_crash(tmp_path):
    path = failing(tmp_path, extra="""
        def _ttl(self, *args):
            raise KeyError("ttl")
        PyProcessor.handle_ttl_event = _ttl
    """)
    with pytest.raises(NativeRunnerError) as info:
        run_native(NativeJob(path, SyntheticSource(1, 1000.0, 1.0, ttl=[(450, 0, True)]), 100))
    assert (info.value.verdict, info.value.call, info.value.block_index) == (
        "crash", "handle_ttl_event", 4)


def test_start_stop_errors_import_and_init_failures(tmp_path):
    src = SyntheticSource(1, 1000.0, 0.1)
    path = failing(tmp_path, extra="""
        def _start(self):
            raise RuntimeError("no device")
        PyProcessor.start_acquisition = _start
    """)
    with pytest.raises(NativeRunnerError) as info:
        run_native(NativeJob(path, src))
    assert (info.value.verdict, info.value.exit_code, info.value.call) == (
        "call-error", 12, "start_acquisition")
    broken = write_module(tmp_path, "import oe_pyprocessor\nimport no_such_package_xyz\n")
    with pytest.raises(NativeRunnerError) as info:
        run_native(NativeJob(broken, src))
    assert (info.value.verdict, info.value.exit_code) == ("import-failed", 3)
    assert "no_such_package_xyz" in info.value.stderr
    bad_init = write_module(tmp_path, HEADER + "class PyProcessor:\n"
                            "    def __init__(self, p, n, fs):\n        raise OSError('x')\n")
    with pytest.raises(NativeRunnerError) as info:
        run_native(NativeJob(bad_init, src))
    assert (info.value.verdict, info.value.exit_code) == ("init-failed", 4)
    with pytest.raises(NativeRunnerError) as info:
        run_native(NativeJob(bad_init, {"kind": "recording", "path": str(tmp_path / "none")},
                             blocks=100))
    assert (info.value.verdict, info.value.exit_code) == ("job-error", 2)
    assert "no such folder" in info.value.stderr


def test_replay_real_recording_natively(tmp_path):
    path = write_module(tmp_path, ECHO)
    nat = replay(EXAMPLE, path, native=True, node=105, block_size=1000)
    sim = replay(EXAMPLE, path, node=105, block_size=1000)
    assert nat.n_samples == 133120 and nat.ttl_delivered == 128
    np.testing.assert_array_equal(nat.events, sim.events)
    assert nat.latency_max_ms >= nat.latency_p99_ms >= nat.latency_p50_ms > 0
