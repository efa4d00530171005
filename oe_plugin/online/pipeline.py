"""The combined online module: detection + template matching + sweep decoding + statistics.

The GUI allows one Python Processor per signal chain, so ``oe_plugin/modules/pipeline.py`` runs
every online stage in one ``PyProcessor``, configured by one TOML with a section per stage, each
of which can be switched off (``enabled = false``):

- ``[filter]``, ``[detect]``, ``[match]`` — :class:`~oe_plugin.online.sorter_module.
  OnlineSorterModule` (detect + classify against a sort folder; classified spikes to the
  crash-safe spike file; per-unit TTL). ``[detect] enabled = false`` switches detection and
  matching off; ``[match] enabled = false`` keeps detection only (unit -1);
- ``[protocol]``, ``[decoder]`` — :class:`~oe_plugin.online.sweep_decoder.SweepDecoderModule`
  (TTL words -> sweep index per refresh, sweep file, onset TTL);
- ``[stats]`` — :class:`StatsSettings`: per unit, spikes per time bin, and per stimulus
  experiment (START marker) and sweep index (:class:`~oe_plugin.online.stats.OnlineStats`),
  written atomically every ``write_every_s`` seconds of data to
  ``<recording_dir>/sweepsort/online_stats.bin`` (+ ``.json`` sidecar,
  :mod:`oe_plugin.outputs.stats_file`) while recording (``sweepsort monitor`` draws it); with
  ``[match] track_motion = true`` the file also holds the live motion estimate, one row per
  ``track_every_s`` (:mod:`oe_plugin.online.motion_tracker`). The
  stimulus session files given (``session_files``, ``session_dir``) are checked here and named
  in the sidecar; the monitor matches each experiment to its file (``offline.monitor``).

The stages are the single-purpose modules' own classes, fed the relevant sections of the one
table. Every stage's work in ``process()`` goes through GIL-free C entries or plain Python; the
stats file write is plain Python file I/O on the audio thread: the tables are packed into a
preallocated raw buffer, then one ``os.write`` to a temporary file + ``os.replace`` every few
seconds (pieces of at most ``[stats] chunk_kib`` per ``process()`` call for very large tables);
the costliest call is kept in ``stats_write_ms_max``. The decoder hands its frames to the
statistics through :attr:`SweepDecoderModule.on_frames`.

Sample numbers: spikes are counted from ``start_acquisition()`` and sweeps come from the TTL
events' sample numbers; the GUI starts both at 0 for every acquisition.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from oe_plugin.config import SettingsError, from_table, require
from oe_plugin.formats.session_file import read_session_file
from oe_plugin.online.base import OnlineModule
from oe_plugin.online.sorter_module import OnlineSorterModule
from oe_plugin.online.stats import SIG_LEN, OnlineStats
from oe_plugin.online.sweep_decoder import SweepDecoderModule
from oe_plugin.outputs.stats_file import StatsFileWriter, stats_path
from oe_plugin.protocol.spec import MAX_SWEEP_INDEX


@dataclass(frozen=True)
class StatsSettings:
    """TOML section ``[stats]``."""

    enabled: bool = True
    bin_s: float = 1.0
    """Time bin of the firing-rate table (doubles when a session outgrows max_bins)."""
    write_every_s: float = 0.25
    """Seconds of data between two rewrites of the statistics file (a GUI crash loses at most
    this plus one block of statistics)."""
    session_file: str = ""
    """One stimulus session file (the same as a one-element ``session_files``)."""
    session_files: tuple[str, ...] = ()
    """Stimulus session files (relative to the TOML file; each must exist when the module
    loads), in the order their experiments will run: ``sweepsort monitor`` gives each
    experiment the sweep table of the file whose presentation order it showed, else the file
    at its position (docs/plugin.md)."""
    session_dir: str = ""
    """A folder of session files (``*.session.json``, e.g. where sweepstim writes them); files
    that appear in it while recording are found by the monitor too."""
    max_sweeps: int = 4096
    """Sweep indices counted per experiment (0 .. max_sweeps-1; raised to the longest sweep
    table given); higher indices count as no sweep."""
    max_experiments: int = 16
    """Experiments per acquisition with their own tables; later ones are counted together with
    the last one (logged once, flagged 'folded' in the file)."""
    max_conditions: int = 4096
    """(experiment, sweep index) pairs counted in all (preallocated: (units + 1) x this x 16
    bytes); when they run out, new pairs count as no sweep (logged once)."""
    max_bins: int = 4096
    chunk_kib: int = 1024
    """Largest piece of the statistics file written in one process() call (KiB)."""

    def check(self, section: str = "stats") -> None:
        require(0.01 <= self.bin_s <= 600, f"{section}.bin_s", "must be in [0.01, 600] s")
        require(0.2 <= self.write_every_s <= 600, f"{section}.write_every_s",
                "must be in [0.2, 600] s")
        require(1 <= self.max_sweeps <= MAX_SWEEP_INDEX + 1, f"{section}.max_sweeps",
                f"must be 1..{MAX_SWEEP_INDEX + 1}")
        require(1 <= self.max_experiments <= 1024, f"{section}.max_experiments",
                f"must be 1..1024, got {self.max_experiments}")
        require(1 <= self.max_conditions <= 1 << 20, f"{section}.max_conditions",
                f"must be 1..1048576, got {self.max_conditions}")
        require(16 <= self.max_bins <= 1 << 20, f"{section}.max_bins", "must be 16..1048576")
        require(4 <= self.chunk_kib <= 1 << 20, f"{section}.chunk_kib", "must be 4..1048576")


class _Given(OnlineModule):
    """Base for a stage: takes (config path, table, parent) instead of reading a file."""

    def __init__(self, processor, num_channels, sample_rate, given):
        config_path, table, parent = given
        self.processor = processor
        self.num_channels = int(num_channels)
        self.sample_rate_hz = float(sample_rate)
        self.config_path = config_path
        self.config_table = table
        self.parent = parent
        self.acquiring = False
        self.recording_dir = None
        self.target = None
        self.output_settings = parent.output_settings
        self.clock = parent.clock  # one count for the module, driven by the pipeline
        self.samples_seen = 0
        self.errors = 0
        self._reported = set()


class _SorterStage(OnlineSorterModule, _Given):
    NAME = "sweepsort pipeline [detect/match]"


class _DecoderStage(SweepDecoderModule, _Given):
    NAME = "sweepsort pipeline [decoder]"


def _switch(table: dict, section: str) -> tuple[bool, dict]:
    sec = dict(table.get(section) or {})
    on = sec.pop("enabled", True)
    require(isinstance(on, bool), f"{section}.enabled", f"expected true or false, got {on!r}")
    return on, sec


class PipelineModule(OnlineModule):
    SECTIONS = ("filter", "detect", "match", "protocol", "decoder", "stats")
    NAME = "sweepsort pipeline"

    def __init__(self, processor, num_channels, sample_rate, script_path):
        super().__init__(processor, num_channels, sample_rate, script_path)
        t = dict(self.config_table)
        detect_on, t["detect"] = _switch(t, "detect")
        decoder_on, t["decoder"] = _switch(t, "decoder")
        self.stats_settings = ss = from_table(StatsSettings, t.get("stats"), "stats")
        given = (self.config_path, t, self)
        self.stats_ = None
        self.sorter = (_SorterStage(processor, num_channels, sample_rate, given)
                       if detect_on else None)
        self.decoder = (_DecoderStage(processor, num_channels, sample_rate, given)
                        if decoder_on else None)
        self._codes_seen = 0
        if self.decoder is not None:
            self.decoder.on_frames = self._on_frames
        self.session_files: list[Path] = []
        self.session_dir: Path | None = None
        if ss.enabled:
            longest = self._check_sessions(ss)
            n_units = self.sorter.sorter.n_units if self.sorter is not None else 0
            refresh = self.decoder.protocol.refresh_hz if self.decoder is not None else 200.0
            self.stats_ = OnlineStats(
                n_units, self.sample_rate_hz, ss.bin_s, ss.max_bins,
                min(max(ss.max_sweeps, longest), MAX_SWEEP_INDEX + 1), refresh,
                sweeps=self.decoder is not None, max_experiments=ss.max_experiments,
                max_conditions=ss.max_conditions)
        self._t_rel = (np.zeros(self.sorter.sorter.out_t.shape[0], np.int64)
                       if self.sorter is not None and self.sorter.upstream is not None else None)
        self._write_every = int(round(ss.write_every_s * self.sample_rate_hz))
        self._last_write = 0
        self._writer: StatsFileWriter | None = None
        self._recording = False
        self._final_due = False  # stop_recording while acquiring: the audio thread writes

    def _resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        if not p.is_absolute() and self.config_path is not None:
            p = Path(self.config_path).resolve().parent / p
        return p

    def _check_sessions(self, ss: StatsSettings) -> int:
        """Check the session files / folder the settings name; the longest sweep table."""
        given = [("session_file", ss.session_file)] if ss.session_file else []
        given += [(f"session_files[{i}]", v) for i, v in enumerate(ss.session_files)]
        longest = 0
        for key, value in given:
            p = self._resolve(value)
            try:
                longest = max(longest, len(read_session_file(p).sweep_table))
            except (OSError, ValueError) as exc:
                raise SettingsError(f"stats.{key}: {exc}") from None
            self.session_files.append(p)
        if ss.session_dir:
            d = self._resolve(ss.session_dir)
            require(d.is_dir(), "stats.session_dir", f"{d} is not a folder")
            self.session_dir = d
            for p in sorted(d.glob("*.session.json")):  # the JSON only: its table's length
                try:
                    table = json.loads(p.read_text(encoding="utf-8")).get("sweep_table")
                    table = table.get("conditions") if isinstance(table, dict) else table
                    longest = max(longest, len(table) if isinstance(table, list) else 0)
                except (OSError, ValueError, AttributeError):
                    pass  # not ours to judge here: the monitor says what it cannot read
        return longest

    def _on_frames(self, frames, n: int) -> None:
        """The decoder's hook (audio thread): the decoded refreshes -> the stats tables (one
        GIL-free C call per batch)."""
        stats = self.stats_
        if stats is not None:
            stats.add_frames(frames["sample_number"], frames["sweep_index"], frames["flags"], n,
                             self.clock.offset)
            exps = self.decoder.decoder.experiments  # session codes: key the experiments
            while self._codes_seen < len(exps):
                stats.set_session_code(self._codes_seen + 1, exps[self._codes_seen][1])
                self._codes_seen += 1
            if stats.note is not None:
                note, stats.note = stats.note, None
                self._log(note)

    def _log(self, message: str) -> None:
        """A notice to stderr (the GUI logs it); never raises."""
        try:
            sys.stderr.write(f"[{self.NAME}] {message}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass

    def _stages(self):
        return [s for s in (self.decoder, self.sorter) if s is not None]

    # -- acquisition / recording (message or HTTP thread) ----------------------------------------
    def start_acquisition(self):
        self.clock.reset()
        for s in self._stages():
            s.start_acquisition()
        if self.stats_ is not None:
            self.stats_.reset()
        self._codes_seen = 0  # decoder experiment records handed to the stats
        self.samples_seen = 0
        self._last_write = 0
        self.acquiring = True

    def stop_acquisition(self):
        self.acquiring = False
        self._final_due = False
        for s in self._stages():
            s.stop_acquisition()
        if self.stats_ is not None:
            try:
                self.stats_.flush()
            except Exception as exc:  # noqa: BLE001
                self.report("stop_acquisition", exc)
        self._write_stats_now()

    def start_recording(self, recording_dir):
        target = self.recording_target(recording_dir)  # resolved once, for every stage
        for s in self._stages():
            s.start_recording(target)
        self._recording = False
        if self.stats_ is not None and target is not None:
            st, ss = self.stats_, self.stats_settings
            try:
                old, self._writer = self._writer, None
                if old is not None:
                    old.close()
                tracker = self._tracker()
                self._writer = StatsFileWriter(
                    stats_path(target.path), st.n_units + 1, st.time_counts.shape[1],
                    st.experiments.shape[0], st.sweep_counts.shape[1], SIG_LEN, self._meta(),
                    self.sample_rate_hz, st.refresh_hz, chunk_bytes=ss.chunk_kib * 1024,
                    max_motion_rows=tracker.hist.shape[0] if tracker else 0,
                    motion_windows=tracker.hist.shape[1] if tracker else 0)
                self._writer.bind(st.tables)  # the packer is built here, not on the audio thread
                self._recording = True
            except Exception as exc:  # noqa: BLE001 - keep running without the file
                self.report("start_recording (stats file not written)", exc)

    def stop_recording(self):
        for s in self._stages():
            s.stop_recording()
        self._recording = False
        # the writer stays: stop_acquisition (after or before this) writes the final tables
        # with every pending spike resolved; while acquiring, the audio thread writes what we
        # have at its next process() (the writer is not shared between threads)
        if self.acquiring:
            self._final_due = True
        else:
            self._write_stats_now()

    def _tracker(self):
        """The sorter's live motion tracker (None: tracking off)."""
        sorter = self.sorter
        tracker = sorter.sorter.tracker if sorter is not None else None
        return tracker if tracker is not None and tracker.on else None

    def _meta(self) -> dict:
        sorter = self.sorter
        tracker = self._tracker()
        motion = {}
        if tracker is not None:
            motion = {"motion_depth_um": [float(v) for v in tracker.window_depth_um],
                      "motion_settings": asdict(tracker.model.settings),
                      "motion_meaning": "µm per depth window the module's drift stage applied, "
                                        "one row per motion_every_s of samples"}
        return self.file_meta({**motion,
            "sample_rate_hz": self.sample_rate_hz,
            "n_units": self.stats_.n_units,
            "sort_dir": str(getattr(sorter, "sort_dir", "")) if sorter else "",
            "session_files": [str(p) for p in self.session_files],
            "session_dir": str(self.session_dir) if self.session_dir else "",
            "max_experiments": self.stats_.max_experiments,
            "refresh_hz": self.stats_.refresh_hz,
            "stats": asdict(self.stats_settings),
            "time_base": "samples since the acquisition's start (+ sample_offset: stream)",
        })

    def _write_stats_now(self) -> None:
        """A complete write, now (message thread, or the audio thread's final write)."""
        w = self._writer
        if w is None or self.stats_ is None:
            return
        try:
            self.stats_.write_start(w, int(self.samples_seen), self.clock.offset,
                                    self._tracker())
            w.finish()
        except Exception as exc:  # noqa: BLE001
            self.report("stats file", exc)

    def _write_stats_online(self) -> None:
        """Audio thread: continue a write under way, or start one when it is due."""
        w = self._writer
        if w is None:
            return
        if w.busy:
            w.step()
        elif self._final_due:
            self._final_due = False
            self.stats_.write_start(w, int(self.samples_seen), self.clock.offset,
                                    self._tracker())
        elif self._recording and self.samples_seen - self._last_write >= self._write_every:
            self._last_write = self.samples_seen
            self.stats_.write_start(w, int(self.samples_seen), self.clock.offset,
                                    self._tracker())

    @property
    def stats_writes(self) -> int:
        return self._writer.n_written if self._writer is not None else 0

    @property
    def stats_write_ms_max(self) -> float:
        return self._writer.ms_max if self._writer is not None else 0.0

    @property
    def stats_write_ms_mean(self) -> float:
        w = self._writer
        return w.ms_total / w.calls if w is not None and w.calls else 0.0

    # -- the audio thread -------------------------------------------------------------------------
    def handle_ttl_event(self, source_node, channel, sample_number, line, state):
        try:
            self.clock.on_event(sample_number)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("handle_ttl_event", exc)
        if self.decoder is not None:
            self.decoder.handle_ttl_event(source_node, channel, sample_number, line, state)

    def handle_spike(self, source_node, electrode_name, num_channels, num_samples,
                     sample_number, sorted_id, spike_data):
        """Upstream Spike Detector spikes: classified with ``[match] source = "upstream"``
        (then they, not the module's own detections, feed the spike file, TTL and stats)."""
        if self.sorter is not None:
            self.sorter.handle_spike(source_node, electrode_name, num_channels, num_samples,
                                     sample_number, sorted_id, spike_data)

    def process(self, data):
        try:
            self.clock.begin_block(data.shape[-1] if data.ndim else 0)
            if self.decoder is not None:
                self.decoder.process(data)  # frames -> stats first (spikes wait for them)
            n = 0
            sorter = self.sorter
            if sorter is not None:
                try:
                    n = sorter.sort_block(data)
                except Exception as exc:  # noqa: BLE001 - the other stages keep going
                    sorter.report("process", exc)
            self.samples_seen += int(data.shape[-1]) if data.ndim else 0
            stats = self.stats_
            if stats is not None:
                if sorter is not None:
                    core = sorter.sorter
                    t = core.out_t
                    if self._t_rel is not None and self.clock.offset and n:
                        # upstream spikes carry stream numbers: to the stats' time base
                        np.subtract(t[:n], self.clock.offset, out=self._t_rel[:n])
                        t = self._t_rel
                    stats.update_online(t, core.out_u, n, self.samples_seen)
                try:
                    self._write_stats_online()
                except Exception as exc:  # noqa: BLE001 - keep sorting without the file
                    self.report("stats file", exc)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("process", exc)

    @property
    def stats(self) -> dict:
        s = {"errors": self.errors, "stats_writes": self.stats_writes,
             "stats_write_ms_max": self.stats_write_ms_max,
             "stats_write_ms_mean": self.stats_write_ms_mean}
        if self.sorter is not None:
            s["sorter"] = self.sorter.stats
        if self.decoder is not None:
            s["decoder"] = self.decoder.stats
        if self.stats_ is not None:
            s["stats_experiments"] = self.stats_.n_experiments
        return s

    def _summary(self) -> None:
        try:
            sys.stderr.write(f"[{self.NAME}] {self.stats}\n")
        except Exception:  # noqa: BLE001
            pass
