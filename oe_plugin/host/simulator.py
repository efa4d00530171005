"""A faithful pure-Python host of the Open Ephys Python Processor (docs/plugin.md,
docs/host-threading.md).

:class:`Host` builds ``PyProcessor(processor, int num_channels, float sample_rate)`` from a
script loaded by stem (:func:`~oe_plugin.host.loader.load_module`) and then plays the GUI's part
block by block with :meth:`Host.run_block`:

1. the block's incoming TTL events go to ``handle_ttl_event(source_node, channel,
   sample_number, line, state)`` (absolute sample numbers, 0-based line) and upstream spikes to
   ``handle_spike(source_node, electrode_name, num_channels, num_samples, sample_number,
   sorted_id, spike_data)`` — both **before** ``process()``, both only if the module has them;
2. ``process(data)`` gets a **new** float32 C-contiguous ``(num_channels, num_samples)`` copy in
   µV (not called when ``num_samples == 0``, as in the GUI); what the module leaves in ``data``
   is the block's downstream data; the call's latency is measured (``perf_counter``, ms);
3. every event the module queued with ``processor.add_python_event(line, state)`` since the last
   block is emitted stamped with this block's **first sample number**; events queued while
   acquisition is not running are dropped (counted in ``dropped_events``).

Recording (``start_recording(path)`` of the host, ``path`` = the recording folder
``<parent>/<name>``) is played as the GUI 0.6 / plugin 0.1.0 does it:

- the module's ``start_recording`` gets the folder's **bare name** (``folder_arg="name"``, the
  default; the plugin passes ``CoreServices::getRecordingDirectoryName()``, e.g.
  ``2026-12-06_16-22-42``), not a path; ``folder_arg="path"`` passes the full path instead (what
  a future plugin may do);
- the GUI's HTTP API answers ``GET /api/recording`` with ``parent_directory`` and
  ``record_nodes: [{node_id, parent_directory, record_engine, experiment_number,
  recording_number, is_synchronized}]``; node N's data go to ``<its parent_directory>/<name>/
  Record Node N/experimentE/recordingR`` (E counts acquisitions recorded into the folder, R the
  recordings within one). The host serves a loopback stand-in of it
  (:class:`~oe_plugin.host.gui_api.GuiApiStandIn`, 127.0.0.1, ephemeral port) and points the
  module at it with ``$SWEEPSORT_GUI_API_PORT`` (the GUI's port is 37497) during the call:
  ``gui_api="on"`` (default), ``"slow"`` (answers after :data:`SLOW_API_DELAY_S`), ``"off"``
  (the user switched the server off: nothing listens), a port of a stand-in served elsewhere (the
  native runner's parent process), or a :class:`GuiApiStandIn` of the test's own;
- a Record Node downstream of the module creates ``Record Node 101/experimentE/recordingR``
  *after* the module's ``start_recording`` (the GUI starts processors in chain order), so the
  recording folder may not exist yet when the module asks; with ``record_data=True`` it also
  writes what it received (the module's downstream data, int16 at 0.195 µV/bit, with
  ``sample_numbers.npy`` and the incoming TTL events) when recording stops.

An exception escaping one of the three audio-thread callbacks raises :class:`HostCrash` (the GUI
would stall for good) and the host stays stalled. Exceptions in ``__init__`` raise
:class:`ModuleInitError`, in start/stop acquisition/recording :class:`ModuleCallError` (the GUI
shows a dialog and disables the module).

Everything runs on the calling thread, holding the GIL: this host cannot show the hangs of the
real threading (``process()`` on a thread without the GIL); :mod:`oe_plugin.host.native` can.
"""

from __future__ import annotations

import importlib
import os
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from oe_plugin.outputs.location import API_PORT_ENV, API_TIMEOUT_ENV

from .errors import HostCrash, HostError, ModuleCallError, ModuleImportError, ModuleInitError
from .gui_api import GuiApiStandIn, closed_port
from .loader import PythonProcessor, install_stand_in, load_module

__all__ = [
    "EVENT_DTYPE", "Host", "HostCrash", "HostError", "ModuleCallError", "ModuleImportError",
    "ModuleInitError", "PythonProcessor", "SpikeEvent", "TtlEvent", "install_stand_in",
    "load_module",
]

EVENT_DTYPE = np.dtype([("sample_number", "<i8"), ("line", "<i2"), ("state", "?")])
"""Events emitted by a module: block-start sample number, 0-based line, state."""

DEFAULT_SOURCE_NODE = 100
RECORD_NODE_ID = 101
SLOW_API_DELAY_S = 2.0
"""How late ``gui_api="slow"`` answers (modules wait at most 0.5 s)."""


class TtlEvent(NamedTuple):
    """An incoming TTL event (absolute sample number, 0-based line)."""

    sample_number: int
    line: int
    state: bool
    source_node: int = DEFAULT_SOURCE_NODE
    channel: int = 0


class SpikeEvent(NamedTuple):
    """A spike from an upstream Spike Detector; ``waveform_uv`` float32 (channels, samples)."""

    sample_number: int
    electrode_name: str
    waveform_uv: np.ndarray
    sorted_id: int = 0
    source_node: int = DEFAULT_SOURCE_NODE


OnCall = Callable[[str, int, int], None]
"""Hook called before every module call: ``(call_name, block_index, sample_number)``."""


class Host:
    """The Python Processor around one module instance.

    Parameters
    ----------
    script_path : the module file (imported by stem).
    num_channels : channel count of the selected stream (passed as a Python int).
    sample_rate : Hz; passed as the GUI does, a Python float rounded through a C++ ``float``.
    on_call : optional hook called before each module call (the native runner's watchdog).
    raw_exceptions : let a module's exception escape the audio-thread callbacks unchanged
        instead of raising :class:`HostCrash` (the native runner must see the raw escape).
    gui_api : the GUI's HTTP API (module docstring): ``"on"``, ``"slow"``, ``"off"``, a port
        (int) or a :class:`GuiApiStandIn`.
    folder_arg : what ``start_recording`` is given: ``"name"`` (the GUI's bare folder name) or
        ``"path"``.
    record_data : the Record Node writes the recorded data (module docstring).
    """

    def __init__(self, script_path, num_channels: int, sample_rate: float, *,
                 on_call: OnCall | None = None, raw_exceptions: bool = False,
                 gui_api="on", folder_arg: str = "name", record_data: bool = False):
        if folder_arg not in ("name", "path"):
            raise ValueError(f"folder_arg must be 'name' or 'path', not {folder_arg!r}")
        self.script_path = Path(script_path).expanduser().resolve()
        self.num_channels = int(num_channels)
        self.sample_rate = float(np.float32(sample_rate))
        self._on_call = on_call
        self._raw = raw_exceptions
        self.acquiring = False
        self.recording = False
        self.crashed: HostCrash | None = None
        self.sample_number = 0      # first sample number of the next block
        self.block_index = 0
        self.dropped_events = 0
        self.latencies_ms: list[float] = []
        self.block_sizes: list[int] = []
        self._pending: list[tuple[int, bool]] = []
        self._emitted: list[tuple[int, int, bool]] = []
        self.folder_arg = folder_arg
        self.record_data = bool(record_data)
        self.api: GuiApiStandIn | None = None
        self.api_port = self._setup_api(gui_api)
        self.recording_folder: Path | None = None
        self.record_node_dir: Path | None = None
        self.experiment_number = 0
        self.recording_number = 0
        self._acquired_since_recording = True
        self._rec_blocks: list[np.ndarray] = []
        self._rec_ttl: list[tuple[int, int, bool]] = []
        self._rec_first = 0
        self.module = load_module(self.script_path)
        self.processor = PythonProcessor(self)
        self.reinit()

    def _setup_api(self, gui_api) -> int:
        """Start (or adopt) the HTTP API stand-in; return the port modules are pointed at."""
        self.gui_api_mode = gui_api if isinstance(gui_api, str) else "on"
        if isinstance(gui_api, GuiApiStandIn):
            if getattr(gui_api, "delay_s", 0.0) > 0:
                self.gui_api_mode = "slow"
            self.api = gui_api.start()
            return gui_api.port
        if isinstance(gui_api, (int, np.integer)) and not isinstance(gui_api, bool):
            return int(gui_api)
        if gui_api == "off":
            return closed_port()
        if gui_api in ("on", "slow"):
            self.api = GuiApiStandIn(delay_s=SLOW_API_DELAY_S if gui_api == "slow" else 0.0)
            self.api.start()
            self._api_finalizer = weakref.finalize(self, self.api.close)
            return self.api.port
        raise ValueError(f"gui_api must be 'on', 'slow', 'off', a port or a GuiApiStandIn, "
                         f"not {gui_api!r}")

    def close(self) -> None:
        """Stop the HTTP API stand-in this host started (idempotent)."""
        fin = getattr(self, "_api_finalizer", None)
        if fin is not None:
            fin()

    def reinit(self, num_channels: int | None = None, sample_rate: float | None = None) -> None:
        """Build a new ``PyProcessor`` from the same module, as the GUI does when settings change
        (another stream, a new channel count): the module is not re-imported."""
        self._check_running("a settings change")
        if self.acquiring:
            raise RuntimeError("the GUI does not change settings during acquisition")
        if num_channels is not None:
            self.num_channels = int(num_channels)
        if sample_rate is not None:
            self.sample_rate = float(np.float32(sample_rate))
        self.instance = None
        self._mark("__init__")
        try:
            self.instance = self.module.PyProcessor(self.processor, self.num_channels,
                                                    self.sample_rate)
        except Exception as err:  # noqa: BLE001 - the GUI shows any error in a dialog
            raise ModuleInitError(f"{self.script_path.name}: PyProcessor(processor, "
                                  f"{self.num_channels}, {self.sample_rate}) raised "
                                  f"{type(err).__name__}: {err}") from err

    def reload(self) -> None:
        """The editor's Reload button: re-execute the module (``importlib.reload``), rebuild."""
        if self.acquiring:
            raise RuntimeError("Reload is disabled during acquisition")
        try:
            self.module = importlib.reload(self.module)
        except Exception as err:  # noqa: BLE001
            raise ModuleImportError(f"{self.script_path.name}: reload failed: "
                                    f"{type(err).__name__}: {err}") from err
        self.reinit()

    # -- the stand-in processor's sink ------------------------------------------------------------
    def _queue_event(self, line: int, state: bool) -> None:
        if self.acquiring:
            self._pending.append((line, state))
        else:
            self.dropped_events += 1

    @property
    def events(self) -> np.ndarray:
        """Emitted events so far, :data:`EVENT_DTYPE`, in emission order."""
        return np.array(self._emitted, dtype=EVENT_DTYPE)

    # -- calls ---------------------------------------------------------------------------------
    def _mark(self, name: str) -> None:
        if self._on_call is not None:
            self._on_call(name, self.block_index, self.sample_number)

    def _optional(self, name: str, *args) -> None:
        """start/stop acquisition/recording: called only if present; errors disable the module."""
        method = getattr(self.instance, name, None)
        if method is None:
            return
        self._mark(name)
        if self._raw:
            method(*args)
            return
        try:
            method(*args)
        except Exception as err:  # noqa: BLE001
            raise ModuleCallError(f"{self.script_path.name}: {name}() raised "
                                  f"{type(err).__name__}: {err}", name) from err

    def _audio(self, name: str, *args) -> float:
        """A callback on the audio thread: an escaping exception is a crash of the host.

        Returns the call's duration in ms."""
        self._mark(name)
        if self._raw:
            t0 = time.perf_counter()
            getattr(self.instance, name)(*args)
            return (time.perf_counter() - t0) * 1e3
        try:
            t0 = time.perf_counter()
            getattr(self.instance, name)(*args)  # looked up per call, as the GUI does
            return (time.perf_counter() - t0) * 1e3
        except (Exception, SystemExit) as err:
            self.crashed = HostCrash(
                f"{self.script_path.name}: an exception escaped {name}() at block "
                f"{self.block_index} (sample {self.sample_number}): {type(err).__name__}: {err} "
                "— the GUI's audio thread would stall here", name, self.block_index,
                self.sample_number)
            raise self.crashed from err

    def _check_running(self, what: str) -> None:
        if self.crashed is not None:
            raise HostCrash(f"the host stalled earlier ({self.crashed}); {what} never happens",
                            self.crashed.call, self.crashed.block_index,
                            self.crashed.sample_number)

    # -- acquisition and recording ---------------------------------------------------------------
    def start_acquisition(self, first_sample_number: int = 0) -> None:
        """Start acquiring; the first block starts at ``first_sample_number``."""
        self._check_running("start_acquisition")
        if self.acquiring:
            raise RuntimeError("acquisition is already running")
        self.sample_number = int(first_sample_number)
        self._pending.clear()
        self.acquiring = True
        self._acquired_since_recording = True
        self._optional("start_acquisition")

    def stop_acquisition(self) -> None:
        """Stop acquiring (stops recording first, as the GUI does); queued events are dropped."""
        self._check_running("stop_acquisition")
        if self.recording:
            self.stop_recording()
        self.acquiring = False
        self.dropped_events += len(self._pending)
        self._pending.clear()
        self._optional("stop_acquisition")

    def start_recording(self, recording_dir) -> None:
        """Start recording into the folder ``recording_dir`` (``<parent>/<name>``): the GUI's
        state (API stand-in) is set, the module's ``start_recording`` gets the bare name (or the
        path, ``folder_arg="path"``), then the Record Node creates its folders."""
        self._check_running("start_recording")
        if not self.acquiring:
            raise RuntimeError("start_recording() outside acquisition (the GUI starts "
                               "acquisition first)")
        path = Path(recording_dir).expanduser().absolute()
        if path != self.recording_folder:     # a new folder: experiment1/recording1
            self.experiment_number, self.recording_number = 1, 1
        elif self._acquired_since_recording:  # acquisition restarted: a new experiment
            self.experiment_number += 1
            self.recording_number = 1
        else:
            self.recording_number += 1
        self.recording_folder = path
        self._acquired_since_recording = False
        if self.api is not None:
            self.api.set_recording(path.parent, self.experiment_number, self.recording_number)
        self.recording = True
        self._rec_blocks, self._rec_ttl, self._rec_first = [], [], self.sample_number
        arg = path.name if self.folder_arg == "name" else str(path)
        # a prompt stand-in gets 1.5 s instead of the module's 0.5 s: its thread shares this
        # process, and on a loaded machine it has missed 0.5 s (the "slow" one keeps 0.5 s)
        env = {API_PORT_ENV: str(self.api_port),
               API_TIMEOUT_ENV: "" if self.gui_api_mode in ("slow", "off") else "1.5"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self._optional("start_recording", arg)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        node = (path / f"Record Node {RECORD_NODE_ID}" / f"experiment{self.experiment_number}"
                / f"recording{self.recording_number}")
        try:
            node.mkdir(parents=True, exist_ok=True)
            self.record_node_dir = node
        except OSError:  # the GUI's Record Node would report it; the module's own problem here
            self.record_node_dir = None

    def stop_recording(self) -> None:
        self._check_running("stop_recording")
        if not self.recording:
            return
        self.recording = False
        self._optional("stop_recording")
        self._write_record_node()

    def _write_record_node(self) -> None:
        """The downstream Record Node's data of the recording that just ended."""
        blocks, self._rec_blocks = self._rec_blocks, []
        ttl, self._rec_ttl = self._rec_ttl, []
        if not self.record_data or self.record_node_dir is None:
            return
        from oe_plugin.protocol.oe_binary_events import write_binary_recording

        data = (np.concatenate(blocks, axis=1) if blocks
                else np.zeros((self.num_channels, 0), np.float32))
        events = np.array(ttl, dtype=EVENT_DTYPE) if ttl else None
        write_binary_recording(self.record_node_dir, sample_rate_hz=self.sample_rate,
                               n_samples=data.shape[1], first_sample_number=self._rec_first,
                               n_channels=self.num_channels, data_uv=data, events=events,
                               source_processor="File Reader")

    # -- one block ---------------------------------------------------------------------------------
    def run_block(self, data_uv, ttl_events: Iterable = (), spikes: Iterable = ()) -> np.ndarray:
        """Play one block; return the downstream data (what the module left in its array).

        ``data_uv``: (num_channels, num_samples) µV, any float dtype (copied to float32).
        ``ttl_events``: :class:`TtlEvent` (or tuples in its field order) of this block.
        ``spikes``: :class:`SpikeEvent` of this block.
        """
        self._check_running("process")
        if not self.acquiring:
            raise RuntimeError("run_block() outside acquisition: the GUI calls process() only "
                               "while acquiring")
        data = np.array(data_uv, dtype=np.float32, order="C", copy=True)
        if data.ndim != 2 or data.shape[0] != self.num_channels:
            raise ValueError(f"block shape {data.shape}, expected ({self.num_channels}, n)")
        first = self.sample_number
        has_ttl = hasattr(self.instance, "handle_ttl_event")
        keep = self.recording and self.record_data
        for ev in ttl_events:
            ev = TtlEvent(*ev)
            if keep:
                self._rec_ttl.append((int(ev.sample_number), int(ev.line), bool(ev.state)))
            if has_ttl:
                self._audio("handle_ttl_event", int(ev.source_node), int(ev.channel),
                            int(ev.sample_number), int(ev.line), bool(ev.state))
        has_spike = hasattr(self.instance, "handle_spike")
        for sp in spikes:
            sp = SpikeEvent(*sp)
            if has_spike:
                wave = np.array(sp.waveform_uv, dtype=np.float32, order="C", copy=True)
                self._audio("handle_spike", int(sp.source_node),
                            str(sp.electrode_name), int(wave.shape[0]), int(wave.shape[1]),
                            int(sp.sample_number), int(sp.sorted_id), wave)
        n = data.shape[1]
        if n > 0:
            self.latencies_ms.append(self._audio("process", data))
        self._emitted.extend((first, line, state) for line, state in self._pending)
        self._pending.clear()
        if keep and n > 0:
            self._rec_blocks.append(data.copy())
        self.block_sizes.append(n)
        self.block_index += 1
        self.sample_number = first + n
        return data
