"""A whole acquisition session through a :class:`~.simulator.Host`, and its report.

:class:`SessionRunner` plays: ``start_acquisition`` → (``start_recording``) → one
:meth:`Host.run_block` per block of the source, cut by a block policy, each with the TTL events
and upstream spikes whose sample numbers fall inside the block → (``stop_recording``) →
``stop_acquisition``. It advances one call at a time (:meth:`SessionRunner.step`) so the native
runner can drive it from its GIL-less audio thread; :func:`run_session` runs it to the end on
the calling thread.

Recording: with ``recording_dir`` and no ``record``, recording spans the whole session. With
``record=(start_sample, stop_sample)`` (absolute sample numbers; either may be None),
``start_recording`` is called before the first block whose first sample number is
``>= start_sample`` and ``stop_recording`` before the first block starting ``>= stop_sample``
(or at the end).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .blocks import as_block_policy
from .simulator import EVENT_DTYPE, Host, OnCall, SpikeEvent, TtlEvent

CONFIG_ENV_VAR = "SWEEPSORT_CONFIG"  # the variable modules read their TOML path from


@dataclass
class SessionReport:
    """What a session did. Latencies are of ``process()`` calls only (ms, ``perf_counter``).

    ``events``: emitted events, :data:`~.simulator.EVENT_DTYPE` (sample number = first sample
    of the block they were queued in). ``downstream_uv``: the data after the module, float32
    (n_channels, n_samples), only when asked for (it is as large as the source).
    """

    module: str
    runner: str
    n_channels: int
    sample_rate_hz: float
    first_sample_number: int
    n_blocks: int
    n_samples: int
    events: np.ndarray
    dropped_events: int
    ttl_delivered: int
    spikes_delivered: int
    latencies_ms: np.ndarray
    block_sizes: np.ndarray
    wall_s: float
    downstream_uv: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_process_calls(self) -> int:
        return int(self.latencies_ms.size)

    def _pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms.size else np.nan

    @property
    def latency_p50_ms(self) -> float:
        return self._pct(50)

    @property
    def latency_p99_ms(self) -> float:
        return self._pct(99)

    @property
    def latency_max_ms(self) -> float:
        return float(self.latencies_ms.max()) if self.latencies_ms.size else np.nan

    def summary(self) -> str:
        """One line. "Emitted" counts the module's TTL events (``add_event``), not the spikes
        it writes to its own files; "delivered" counts what the host handed to ``process()``
        (the source's TTL events and upstream spikes)."""
        return (f"{Path(self.module).name} [{self.runner}]: {self.n_blocks} blocks, "
                f"{self.n_samples} samples × {self.n_channels} ch at {self.sample_rate_hz:g} Hz; "
                f"{self.events.size} TTL events emitted by the module "
                f"({self.dropped_events} dropped); {self.ttl_delivered} TTL events + "
                f"{self.spikes_delivered} upstream spikes delivered to it; "
                f"process() p50 {self.latency_p50_ms:.3f} ms, p99 {self.latency_p99_ms:.3f} ms, "
                f"max {self.latency_max_ms:.3f} ms; wall {self.wall_s:.2f} s")

    def to_dict(self) -> dict:
        """JSON-able scalars and the emitted events (no per-block arrays)."""
        return {"module": self.module, "runner": self.runner, "n_channels": self.n_channels,
                "sample_rate_hz": self.sample_rate_hz,
                "first_sample_number": self.first_sample_number, "n_blocks": self.n_blocks,
                "n_samples": self.n_samples, "n_process_calls": self.n_process_calls,
                "events": self.events.tolist(), "dropped_events": self.dropped_events,
                "ttl_delivered": self.ttl_delivered, "spikes_delivered": self.spikes_delivered,
                "latency_p50_ms": self.latency_p50_ms, "latency_p99_ms": self.latency_p99_ms,
                "latency_max_ms": self.latency_max_ms, "wall_s": self.wall_s}

    _SCALARS = ("module", "runner", "n_channels", "sample_rate_hz", "first_sample_number",
                "n_blocks", "n_samples", "dropped_events", "ttl_delivered", "spikes_delivered",
                "wall_s")

    def save_npz(self, path) -> None:
        """Write the report to ``path`` (NPZ, no pickle), atomically."""
        path = Path(path)
        arrays = {k: np.asarray(getattr(self, k)) for k in self._SCALARS}
        arrays.update(events=self.events, latencies_ms=self.latencies_ms,
                      block_sizes=self.block_sizes)
        if self.downstream_uv is not None:
            arrays["downstream_uv"] = self.downstream_uv
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load_npz(cls, path, **extra) -> SessionReport:
        with np.load(path, allow_pickle=False) as z:
            kw = {k: z[k].item() for k in cls._SCALARS}
            kw.update(events=z["events"].astype(EVENT_DTYPE),
                      latencies_ms=z["latencies_ms"].astype(np.float64),
                      block_sizes=z["block_sizes"].astype(np.int64),
                      downstream_uv=z["downstream_uv"] if "downstream_uv" in z else None)
        return cls(**kw, **extra)


@contextmanager
def config_env(config_path):
    """Set ``SWEEPSORT_CONFIG`` to ``config_path`` for the duration (no-op for None)."""
    if config_path is None:
        yield
        return
    old = os.environ.get(CONFIG_ENV_VAR)
    os.environ[CONFIG_ENV_VAR] = str(Path(config_path).expanduser().resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(CONFIG_ENV_VAR, None)
        else:
            os.environ[CONFIG_ENV_VAR] = old


class SessionRunner:
    """Drives ``host`` over ``source`` one call at a time (see the module docstring)."""

    def __init__(self, host: Host, source, blocks=None, *, recording_dir=None, record=None,
                 keep_downstream: bool = False, on_call: OnCall | None = None,
                 runner: str = "simulator"):
        if record is not None and recording_dir is None:
            raise ValueError("record=(start, stop) needs a recording_dir")
        if host.num_channels != source.n_channels:
            raise ValueError(f"host has {host.num_channels} channels, source "
                             f"{source.n_channels}")
        self.host, self.source = host, source
        self.policy = as_block_policy(blocks, source.sample_rate_hz)
        self.recording_dir = None if recording_dir is None else Path(recording_dir)
        self.record = (None, None) if record is None else tuple(record)
        self.keep_downstream = keep_downstream
        self._on_call = on_call
        self._runner = runner
        self._ttl = source.ttl_events()
        self._ttl_sn = np.asarray(self._ttl["sample_number"], dtype=np.int64)
        spikes = sorted(source.spike_events(), key=lambda s: s.sample_number)
        self._spikes: list[SpikeEvent] = spikes
        self._spike_sn = np.array([s.sample_number for s in spikes], dtype=np.int64)
        self._downstream: list[np.ndarray] = []
        self.ttl_delivered = 0
        self.spikes_delivered = 0
        self.n_samples = 0
        self._t0 = None
        self.wall_s = 0.0
        self._steps = self._plan()

    def step(self) -> float:
        """Do the next call; return the seconds of data it consumed (0 for non-block calls),
        or -1.0 when the session is over."""
        if self._t0 is None:
            self._t0 = time.perf_counter()
        dt = next(self._steps, -1.0)
        if dt < 0:
            self.wall_s = time.perf_counter() - self._t0
        return dt

    def run(self) -> SessionReport:
        while self.step() >= 0:
            pass
        return self.report()

    def _plan(self) -> Iterator[float]:
        host, src = self.host, self.source
        first = int(src.first_sample_number)
        fs = float(src.sample_rate_hz)
        start_sn, stop_sn = self.record
        want_recording = self.recording_dir is not None
        started = stopped = False
        host.start_acquisition(first)
        yield 0.0
        index = 0
        for n in self.policy.sizes(src.n_samples):
            sn = first + index
            if want_recording and not started and (start_sn is None or sn >= start_sn):
                host.start_recording(self.recording_dir)
                started = True
                yield 0.0
            if started and not stopped and stop_sn is not None and sn >= stop_sn:
                host.stop_recording()
                stopped = True
                yield 0.0
            if self._on_call is not None:
                self._on_call("driver:read_block", host.block_index, sn)
            data = src.read_uv(index, index + n)
            a, b = np.searchsorted(self._ttl_sn, [sn, sn + n], side="left")
            ttl = [TtlEvent(int(e["sample_number"]), int(e["line"]), bool(e["state"]))
                   for e in self._ttl[a:b]]
            c, d = np.searchsorted(self._spike_sn, [sn, sn + n], side="left")
            spikes = self._spikes[c:d]
            out = host.run_block(data, ttl, spikes)
            self.ttl_delivered += len(ttl)
            self.spikes_delivered += len(spikes)
            if self.keep_downstream:
                self._downstream.append(out)
            index += n
            self.n_samples = index
            yield n / fs
        if started and not stopped:
            host.stop_recording()
            yield 0.0
        host.stop_acquisition()
        yield 0.0

    def report(self) -> SessionReport:
        host = self.host
        downstream = None
        if self.keep_downstream:
            downstream = (np.concatenate(self._downstream, axis=1) if self._downstream
                          else np.zeros((host.num_channels, 0), np.float32))
        return SessionReport(
            module=str(host.script_path), runner=self._runner, n_channels=host.num_channels,
            sample_rate_hz=float(self.source.sample_rate_hz),
            first_sample_number=int(self.source.first_sample_number),
            n_blocks=len(host.block_sizes), n_samples=self.n_samples, events=host.events,
            dropped_events=host.dropped_events, ttl_delivered=self.ttl_delivered,
            spikes_delivered=self.spikes_delivered,
            latencies_ms=np.asarray(host.latencies_ms, dtype=np.float64),
            block_sizes=np.asarray(host.block_sizes, dtype=np.int64), wall_s=self.wall_s,
            downstream_uv=downstream)


def run_session(script_path, source, blocks=None, *, recording_dir=None, record=None,
                config_path=None, keep_downstream: bool = False, gui_api="on",
                folder_arg: str = "name", record_data: bool = False) -> SessionReport:
    """Run ``script_path`` over ``source`` in the pure-Python host, on this thread.

    ``blocks``: a block policy (:mod:`.blocks`), an int (fixed size), a list of sizes, or None
    for the GUI's size at the source's rate (``int(1024 × fs / 44100)``: 696 at 30 kHz).
    ``config_path``: exported as ``SWEEPSORT_CONFIG`` while the module is built.
    ``recording_dir``: the recording folder ``<parent>/<name>``; as in the GUI, the module is
    given the bare name and finds the folder through the HTTP API stand-in (``gui_api``,
    ``folder_arg``, ``record_data``: :class:`~.simulator.Host`).
    Raises :class:`~.errors.ModuleImportError`, :class:`~.errors.ModuleInitError`,
    :class:`~.errors.ModuleCallError` or :class:`~.errors.HostCrash` as the GUI would fail.
    """
    with config_env(config_path):
        host = Host(script_path, source.n_channels, source.sample_rate_hz, gui_api=gui_api,
                    folder_arg=folder_arg, record_data=record_data)
        try:
            runner = SessionRunner(host, source, blocks, recording_dir=recording_dir,
                                   record=record, keep_downstream=keep_downstream)
            return runner.run()
        finally:
            host.close()
