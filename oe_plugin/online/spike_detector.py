"""Online spike detection inside the Open Ephys Python Processor.

The logic behind ``oe_plugin/modules/spike_detector.py``: band-pass, noise estimate, threshold
detection with spatio-temporal lockout (:class:`~oe_plugin.kernels.detector.SpikeDetector`,
called through its GIL-free C entry), an optional TTL pulse per detection, and — while
recording — a crash-safe spike file under the recording directory
(``<recording folder>/sweepsort/online_spikes_NNN.bin``, read by ``offline.read_online_spikes``;
where the folder is: :mod:`oe_plugin.outputs.location`).

Sample numbers are counted from ``start_acquisition()`` (the GUI restarts them at 0 for every
acquisition; ``process()`` is not told them) and re-based on the absolute sample numbers of the
TTL events for sources that do not restart (:class:`~oe_plugin.online.clock.SampleClock`).
A spike is reported ``decision_delay`` samples
(~0.5 ms) after its peak, so its file record and TTL come from a later block than its peak.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from oe_plugin.config import from_table
from oe_plugin.kernels.detector import SpikeDetector
from oe_plugin.online.base import OnlineModule
from oe_plugin.outputs.spike_file import SpikeFileWriter
from oe_plugin.probe import load_probe, neighbour_lists
from oe_plugin.settings import DetectSettings, FilterSettings, TtlSettings

TYPICAL_MAX_BLOCK = 8192
"""Output buffers are sized for blocks up to this many samples (larger ones grow them once)."""


class SpikeDetectorModule(OnlineModule):
    """``PyProcessor`` for online detection. Settings: ``[filter]``, ``[detect]``, ``[ttl]``."""

    SECTIONS = ("filter", "detect", "ttl")
    NAME = "sweepsort spike_detector"

    def __init__(self, processor, num_channels, sample_rate, script_path):
        super().__init__(processor, num_channels, sample_rate, script_path)
        t = self.config_table
        self.filter_settings = from_table(FilterSettings, t.get("filter"), "filter")
        self.filter_settings.check("filter", self.sample_rate_hz)
        self.detect_settings = from_table(DetectSettings, t.get("detect"), "detect")
        self.ttl_settings = from_table(TtlSettings, t.get("ttl"), "ttl")
        self.probe = load_probe(self.detect_settings.probe, self.num_channels)
        neighbours = neighbour_lists(self.probe, self.detect_settings.lockout_radius_um)
        self.detector = SpikeDetector(
            self.num_channels,
            self.sample_rate_hz,
            self.filter_settings,
            self.detect_settings,
            neighbours,
            max_block=TYPICAL_MAX_BLOCK,
        )
        self.detector.warm_up()  # compile / load from numba's cache now, never in process()
        self.writer: SpikeFileWriter | None = None
        self.ttl_high = False
        self.spikes_detected = 0

    # -- acquisition / recording (GUI message or HTTP thread) ----------------------------------
    def start_acquisition(self):
        self.detector.reset()
        self.clock.reset()
        self.samples_seen = 0
        self.spikes_detected = 0
        self.ttl_high = False
        self.acquiring = True

    def stop_acquisition(self):
        self.acquiring = False
        if self.writer is not None:
            self.writer.flush()

    def start_recording(self, recording_dir):
        self.stop_recording()
        target = self.recording_target(recording_dir)
        meta = {
            "module": "spike_detector",
            "sample_number_origin": "stream (count from start_acquisition + TTL re-base)",
            "settings": {
                "filter": asdict(self.filter_settings),
                "detect": asdict(self.detect_settings),
                "ttl": asdict(self.ttl_settings),
            },
            "probe": self.probe.name,
            "decision_delay_samples": self.detector.decision_delay,
        }
        self.open_spike_file(target, meta)

    def stop_recording(self):
        self.close_spike_file()

    # -- the audio thread ----------------------------------------------------------------------
    def process(self, data):
        try:
            if data.ndim != 2 or data.shape[0] != self.num_channels:
                self.report("process", f"block shape {data.shape} for {self.num_channels} channels")
                return
            if data.dtype != np.float32 or not data.flags.c_contiguous:
                self.report("process", f"block dtype {data.dtype} / not C-contiguous")
                return
            self.clock.begin_block(data.shape[1])
            n = self.detector.process_online(data)
            self.samples_seen += data.shape[1]
            if n > 0:
                self.spikes_detected += n
                if self.writer is not None:
                    self.writer.sample_offset = self.clock.offset
                    d = self.detector
                    self.writer.append(d.out_t, d.out_c, d.out_a, None, n)  # unit -1
            self._drive_ttl(n)
            if self.writer is not None:
                self.writer.maybe_flush(self.samples_seen)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("process", exc)

    def _drive_ttl(self, n_spikes: int) -> None:
        line = self.ttl_settings.line
        if line < 0:
            return
        if self.ttl_settings.pulse:
            if n_spikes > 0 and not self.ttl_high:
                self.emit_ttl(line, True)
                self.ttl_high = True
            elif n_spikes == 0 and self.ttl_high:
                self.emit_ttl(line, False)
                self.ttl_high = False
        elif n_spikes > 0:
            self.ttl_high = not self.ttl_high
            self.emit_ttl(line, self.ttl_high)

    def handle_ttl_event(self, source_node, channel, sample_number, line, state):
        """TTL input only re-bases the sample count (:class:`SampleClock`)."""
        try:
            self.clock.on_event(sample_number)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("handle_ttl_event", exc)

    def handle_spike(
        self,
        source_node,
        electrode_name,
        num_channels,
        num_samples,
        sample_number,
        sorted_id,
        spike_data,
    ):
        """Upstream Spike Detector spikes are not used by this module."""

    # -- status ---------------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        s = dict(self.detector.stats)
        s["errors"] = self.errors
        s["sample_offset"] = self.clock.offset
        if self.writer is not None:
            s["file_records_written"] = self.writer.n_written
        return s
