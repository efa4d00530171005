"""Online template matching inside the Open Ephys Python Processor.

The logic behind ``oe_plugin/modules/online_sorter.py``: load a sort folder written by
``sweepsort sort`` (``[match] sort_dir``), then per block — through one GIL-free C entry
(:class:`~oe_plugin.online.sorter_driver.OnlineSorter`) — scale to the sort's noise units, band-pass
causally, detect with the sort's detection settings and classify every event with the offline
sorter's matching kernel (:func:`oe_plugin.kernels.match.match_events`, peeling and overlap pairs
included). Classified spikes (``unit`` filled in, -1 = no template accepted it) go to the
crash-safe spike file while recording (``offline.read_online_spikes``); units listed in
``[match] ttl_units`` drive TTL lines (``ttl_lines``, same order): high during a block holding a
spike of the unit, low after the next block without one.

When the sort corrected probe motion, each block's raw samples are first drift-corrected with
the sort's stored estimate (``[match] apply_motion``, ``motion_time``; the
:class:`~oe_plugin.online.match_model.DriftStage` inside the same C entry). With
``[match] track_motion = true`` the correction follows the probe live instead
(:mod:`oe_plugin.online.motion_tracker`); a rejected estimate (runaway) is reported once on
stderr from ``process()`` after the C call, the last good value kept; every spike record
carries the displacement used.

A spike is reported once its matching window is complete — ``decision_delay`` plus about one
template length (~2 ms) after its peak — so its record and TTL come from a later block.

A missing or malformed sort folder is a :class:`~oe_plugin.online.match_model.SortModelError` in
the constructor, naming the folder and the problem (the GUI shows it and disables the module).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from oe_plugin.config import from_table, require
from oe_plugin.kernels.motion_track import TS_REJECTED
from oe_plugin.online.base import OnlineModule
from oe_plugin.online.match_model import SortModelError, load_sort_model
from oe_plugin.online.sorter_driver import OnlineSorter, UpstreamClassifier
from oe_plugin.outputs.spike_file import SpikeFileWriter
from oe_plugin.probe import load_probe, neighbour_lists
from oe_plugin.settings import DetectSettings, FilterSettings

TYPICAL_MAX_BLOCK = 8192


@dataclass(frozen=True)
class MatchSettings:
    """TOML section ``[match]``."""

    enabled: bool = True
    """False: detection only (every spike unit -1); the pipeline module's switch."""
    sort_dir: str = ""
    """Folder written by ``sweepsort sort`` (sort.json + sort.npz); relative to the TOML file."""
    ttl_units: tuple[int, ...] = ()
    """Units whose spikes drive a TTL line ..."""
    ttl_lines: tuple[int, ...] = ()
    """... on these output lines (0-based, same order as ttl_units)."""
    write_file: bool = True
    """Write the classified spikes under the recording directory while recording."""
    source: str = "self"
    """"self": detect in process() and classify; "upstream": classify the spikes an upstream
    Spike Detector sends (handle_spike) instead, with the same matching kernel."""
    upstream_pre_samples: int = 8
    """Upstream waveforms: samples before the peak (the Spike Detector's default 8) ..."""
    upstream_samples: int = 40
    """... and their length (default 40)."""
    apply_motion: bool = True
    """When the sort corrected probe motion: correct each block's raw samples with the stored
    estimate before filtering (as ``sweepsort replay --compare-offline`` does); false: sort the
    raw stream as it is."""
    motion_time: str = "stream"
    """"stream": the stored motion at the stream's sample time (from the start of acquisition;
    a replay of the sorted recording), its last value after it ends; "end": the probe's position
    at the end of the sorted recording, held (a live session right after the sort)."""
    motion_start_s: float = 0.0
    """With "stream": the time in the sorted recording (s) where this stream starts, when the
    stream replays a later stretch of it as a new acquisition (rounded to the sort's
    interpolation bins)."""
    track_motion: bool = False
    """Live motion tracking (docs/plugin.md, "Long sessions: live motion tracking"): estimate
    the probe's displacement from the peaks classified online, every ``track_every_s``, and
    correct the channels with it (starting from the sort's motion at its end; ``motion_time``
    is then not used). Needs a sort with a motion estimate and ``apply_motion = true``."""
    track_window_s: float = 10.0
    """Peaks of this many seconds make one estimate (longer: steadier, slower to follow)."""
    track_every_s: float = 1.0
    """Seconds of data between two updates of the correction."""
    track_max_step_um: float = 10.0
    """An estimate moving more than this from the last good one is rejected (runaway)."""
    track_max_um: float = 60.0
    """Largest displacement followed (µm, from the sort's reference position); the drift
    tables are built to it, estimates beyond it are rejected."""
    track_min_corr: float = 0.3
    """Registrations weaker than this correlation (0..1) are rejected."""
    track_smoothing: float = 0.5
    """Weight of a new estimate (exponential smoothing; 1: none)."""
    track_reference_s: float = 60.0
    """The reference: the sort's peaks of its last this many seconds (0: all)."""
    track_min_peaks: int = 100
    """Windows with fewer peaks are skipped (the value held, counted)."""
    track_max_peaks_per_s: float = 250.0
    """At most this many classified events per second are localized for the estimate (the
    localization's cost on the audio thread; the rest are classified as usual)."""

    def track_settings(self):
        """The :class:`~oe_plugin.online.motion_tracker.TrackSettings` (None: tracking off)."""
        from oe_plugin.online.motion_tracker import TrackSettings

        if not self.track_motion:
            return None
        return TrackSettings(window_s=self.track_window_s, every_s=self.track_every_s,
                             max_step_um=self.track_max_step_um, max_um=self.track_max_um,
                             min_corr=self.track_min_corr, smoothing=self.track_smoothing,
                             reference_s=self.track_reference_s,
                             min_peaks=self.track_min_peaks,
                             max_peaks_per_s=self.track_max_peaks_per_s)

    def check(self, section: str = "match") -> None:
        require(len(self.ttl_units) == len(self.ttl_lines), f"{section}.ttl_lines",
                f"needs one line per unit in ttl_units ({len(self.ttl_units)}), "
                f"got {len(self.ttl_lines)}")
        require(all(0 <= ln <= 255 for ln in self.ttl_lines), f"{section}.ttl_lines",
                "lines must be 0..255")
        require(all(u >= 0 for u in self.ttl_units), f"{section}.ttl_units", "units are >= 0")
        require(self.source in ("self", "upstream"), f"{section}.source",
                f"must be 'self' or 'upstream', got {self.source!r}")
        require(self.motion_time in ("stream", "end"), f"{section}.motion_time",
                f"must be 'stream' or 'end', got {self.motion_time!r}")
        require(np.isfinite(self.motion_start_s) and self.motion_start_s >= 0,
                f"{section}.motion_start_s", f"must be >= 0 s, got {self.motion_start_s}")
        require(0 <= self.upstream_pre_samples < self.upstream_samples <= 4096,
                f"{section}.upstream_samples", "need 0 <= upstream_pre_samples < "
                "upstream_samples <= 4096")
        require(0.25 <= self.track_every_s <= 60, f"{section}.track_every_s",
                f"must be in [0.25, 60] s, got {self.track_every_s}")
        require(self.track_every_s <= self.track_window_s <= 600, f"{section}.track_window_s",
                f"must be in [track_every_s, 600] s, got {self.track_window_s}")
        require(0 < self.track_max_step_um <= 200, f"{section}.track_max_step_um",
                f"must be in (0, 200] µm, got {self.track_max_step_um}")
        require(1 <= self.track_max_um <= 500, f"{section}.track_max_um",
                f"must be in [1, 500] µm, got {self.track_max_um}")
        require(0 <= self.track_min_corr < 1, f"{section}.track_min_corr",
                f"must be in [0, 1), got {self.track_min_corr}")
        require(0 < self.track_smoothing <= 1, f"{section}.track_smoothing",
                f"must be in (0, 1], got {self.track_smoothing}")
        require(self.track_reference_s >= 0, f"{section}.track_reference_s",
                f"must be >= 0 s, got {self.track_reference_s}")
        require(1 <= self.track_min_peaks <= 1_000_000, f"{section}.track_min_peaks",
                f"must be 1..1000000, got {self.track_min_peaks}")
        require(10 <= self.track_max_peaks_per_s <= 1e6, f"{section}.track_max_peaks_per_s",
                f"must be in [10, 1e6], got {self.track_max_peaks_per_s}")
        if self.track_motion:
            require(self.apply_motion, f"{section}.track_motion",
                    "needs apply_motion = true (tracking corrects the channels)")
            require(self.source == "self", f"{section}.track_motion",
                    "needs source = 'self' (upstream spikes carry no positions to track)")


def resolve_sort_dir(settings: MatchSettings, config_path) -> Path:
    p = Path(settings.sort_dir).expanduser()
    if not p.is_absolute() and config_path is not None:
        p = Path(config_path).resolve().parent / p
    return p


class OnlineSorterModule(OnlineModule):
    """``PyProcessor`` for online template matching. Settings: ``[filter]``, ``[detect]``,
    ``[match]`` (``[filter]``/``[detect]`` apply only with ``match.enabled = false``; with a
    sort, its own filter band and detection settings are used, so that online spikes are those
    the sort's templates were built for)."""

    SECTIONS = ("filter", "detect", "match")
    NAME = "sweepsort online_sorter"

    def __init__(self, processor, num_channels, sample_rate, script_path):
        super().__init__(processor, num_channels, sample_rate, script_path)
        self._setup_sorter(self.config_table)

    def _setup_sorter(self, t: dict) -> None:
        self.filter_settings = from_table(FilterSettings, t.get("filter"), "filter")
        self.filter_settings.check("filter", self.sample_rate_hz)
        self.detect_settings = from_table(DetectSettings, t.get("detect"), "detect")
        self.match_settings = ms = from_table(MatchSettings, t.get("match"), "match")
        self.model = None
        neighbours = None
        if ms.enabled:
            if not ms.sort_dir:
                raise SortModelError(f"{self.NAME}: [match] sort_dir is not set (the folder "
                                     "'sweepsort sort' wrote), or set [match] enabled = false")
            self.sort_dir = resolve_sort_dir(ms, self.config_path)
            self.model = load_sort_model(self.sort_dir, self.num_channels, self.sample_rate_hz,
                                         ms.apply_motion, ms.motion_time,
                                         ms.motion_start_s, ms.track_settings())
            if self.model.track_note:
                self.log(self.model.track_note)
            for u in ms.ttl_units:
                require(u < self.model.n_units, "match.ttl_units",
                        f"unit {u} does not exist (the sort has {self.model.n_units} units)")
        else:
            probe = load_probe(self.detect_settings.probe, self.num_channels)
            neighbours = neighbour_lists(probe, self.detect_settings.lockout_radius_um)
        self.sorter = OnlineSorter(self.num_channels, self.sample_rate_hz, self.model,
                                   self.filter_settings, self.detect_settings, neighbours,
                                   write_downstream=self.filter_settings.write_downstream,
                                   max_block=TYPICAL_MAX_BLOCK)
        self.sorter.warm_up()  # compile / load from numba's cache now, never in process()
        self.upstream = None
        if ms.source == "upstream":
            if self.model is None:
                raise SortModelError(f"{self.NAME}: [match] source = 'upstream' needs a sort "
                                     "(match.enabled = true and sort_dir)")
            self.upstream = UpstreamClassifier(self.model, self.num_channels,
                                               ms.upstream_pre_samples, ms.upstream_samples)
        n_u = self.sorter.n_units
        self._ttl_line = np.full(max(n_u, 1), -1, np.int64)
        for u, ln in zip(ms.ttl_units, ms.ttl_lines, strict=True):
            self._ttl_line[u] = ln
        self._ttl_any = bool(ms.ttl_units)
        self._ttl_hit = np.zeros(max(n_u, 1), bool)
        self._ttl_high = np.zeros(max(n_u, 1), bool)
        self.writer: SpikeFileWriter | None = None
        self.spikes_out = 0
        self.last_n = 0

    # -- acquisition / recording ---------------------------------------------------------------
    def start_acquisition(self):
        self.sorter.reset()
        self.clock.reset()
        self.samples_seen = 0
        self.spikes_out = 0
        self.last_n = 0
        self._ttl_high[...] = False
        self.acquiring = True

    def stop_acquisition(self):
        self.acquiring = False
        if self.writer is not None:
            self.writer.flush()

    def start_recording(self, recording_dir):
        self.stop_recording()
        target = self.recording_target(recording_dir)
        if not self.match_settings.write_file:
            return
        meta = {
            "module": type(self).__name__,
            "sample_number_origin": ("stream (upstream spikes' own sample numbers)"
                                     if self.upstream is not None else
                                     "stream (count from start_acquisition + TTL re-base)"),
            "sort_dir": str(getattr(self, "sort_dir", "")),
            "n_units": self.sorter.n_units,
            "unit_meaning": "-1 = detected, no template accepted it",
            "settings": {"filter": asdict(self.sorter.filter_settings),
                         "detect": asdict(self.sorter.detect_settings),
                         "match": asdict(self.match_settings)},
            "report_delay_samples": self.sorter.detector.decision_delay + self.sorter.need_after,
            "motion_corrected": self.sorter.drift is not None,
            "motion_tracked": self.sorter.tracker.on,
            "displacement_meaning": "µm the drift stage shifted the spike's channel by at its "
                                    "event time (a drift-table grid value); NaN: no correction",
        }
        self.open_spike_file(target, meta)

    def stop_recording(self):
        self.close_spike_file()

    # -- the audio thread ------------------------------------------------------------------------
    def process(self, data):
        try:
            self.clock.begin_block(data.shape[-1])
            self.sort_block(data)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("process", exc)

    def sort_block(self, data) -> int:
        """Sort one block (never raises past :meth:`process`); returns the spikes written to
        ``sorter.out_*[:n]``."""
        self.last_n = 0
        if data.ndim != 2 or data.shape[0] != self.num_channels:
            self.report("process", f"block shape {data.shape} for {self.num_channels} channels")
            return 0
        if data.dtype != np.float32 or not data.flags.c_contiguous:
            self.report("process", f"block dtype {data.dtype} / not C-contiguous")
            return 0
        s = self.sorter
        if self.upstream is not None:  # classified in handle_spike; the data passes through
            n = self.upstream.take(s.out_t, s.out_c, s.out_a, s.out_u)
            s.out_d[:n] = np.nan  # no drift stage for upstream spikes
        else:
            n = s.process_online(data)
        self.samples_seen += data.shape[1]
        self.last_n = n
        if n > 0:
            self.spikes_out += n
            if self.writer is not None:
                # own detections count from start_acquisition; upstream spikes are absolute
                self.writer.sample_offset = 0 if self.upstream is not None else self.clock.offset
                self.writer.append(s.out_t, s.out_c, s.out_a, s.out_u, n, s.out_d)
        if s.tracker.on and s.tracker.tstate[TS_REJECTED] > 0 \
                and not s.tracker.reported_rejections:
            note = s.tracker.new_rejection()  # once per acquisition
            if note:
                self.log(note)
        if self._ttl_any:
            self._drive_ttl(n)
        if self.writer is not None:
            self.writer.maybe_flush(self.samples_seen)
        return n

    def _drive_ttl(self, n: int) -> None:
        hit, line = self._ttl_hit, self._ttl_line
        hit[...] = False
        units = self.sorter.out_u
        n_u = hit.shape[0]
        for i in range(n):
            u = units[i]
            if 0 <= u < n_u:
                hit[u] = True
        for u in range(n_u):
            if line[u] < 0:
                continue
            if hit[u] and not self._ttl_high[u]:
                self.emit_ttl(int(line[u]), True)
                self._ttl_high[u] = True
            elif not hit[u] and self._ttl_high[u]:
                self.emit_ttl(int(line[u]), False)
                self._ttl_high[u] = False

    def handle_ttl_event(self, source_node, channel, sample_number, line, state):
        """TTL input only re-bases the sample count (:class:`~oe_plugin.online.clock.
        SampleClock`)."""
        try:
            self.clock.on_event(sample_number)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("handle_ttl_event", exc)

    def handle_spike(self, source_node, electrode_name, num_channels, num_samples,
                     sample_number, sorted_id, spike_data):
        """With ``[match] source = "upstream"``: classify an upstream Spike Detector's spike
        (written and pulsed at the next ``process()``); otherwise ignored."""
        up = self.upstream
        if up is None:
            return
        try:
            up.classify(electrode_name, sample_number, spike_data)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("handle_spike", exc)

    @property
    def stats(self) -> dict:
        s = dict(self.sorter.stats)
        s["errors"] = self.errors
        s["spikes_out"] = self.spikes_out
        s["sample_offset"] = self.clock.offset
        if self.upstream is not None:
            s.update(self.upstream.stats)
        if self.writer is not None:
            s["file_records_written"] = self.writer.n_written
        return s
