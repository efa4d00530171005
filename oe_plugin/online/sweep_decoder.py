"""Online sweep decoding inside the Open Ephys Python Processor.

The logic behind ``oe_plugin/modules/sweep_decoder.py``. ``handle_ttl_event`` feeds every edge
of the protocol's lines to the decoder (:func:`oe_plugin.protocol.make_decoder`, plain Python:
safe on the GUI's GIL-less audio thread); ``process()`` passes the data through untouched, moves
the decoded frames into the crash-safe file (``<recording_dir>/sweepsort/online_sweeps_NNN.bin``,
read by ``offline.read_online_sweeps``) and drives the optional sweep-onset TTL.

Settings (TOML next to the module, ``sweep_decoder.toml``, or ``$SWEEPSORT_CONFIG``):

- ``[protocol]`` — :class:`oe_plugin.protocol.ProtocolSettings` (must match the stimulus's);
- ``[decoder]`` — :class:`DecoderModuleSettings`.

A frame is decoded once an event past its settle window arrives, i.e. about one refresh after
its edge; the onset TTL is queued in the next ``process()`` call and stamped by the host with
that block's first sample number, so it lags the true onset by up to one refresh plus one block.
It is a slow marker for other plugins; the exact onset is in the file.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

from oe_plugin.config import from_table, require
from oe_plugin.online.base import OnlineModule
from oe_plugin.outputs.sweep_file import SweepFileWriter
from oe_plugin.protocol import ProtocolSettings, make_decoder
from oe_plugin.protocol.spec import (
    ERROR_MASK,
    MAX_LINES,
    MAX_SWEEP_INDEX,
    SWEEP_CHANGE,
    flag_names,
)


@dataclass(frozen=True)
class DecoderModuleSettings:
    """TOML section ``[decoder]``."""

    source_node: int = -1
    """Only decode TTL events from this processor id (-1: from any source)."""
    onset_ttl_line: int = -1
    """Output line (0-based) pulsed at sweep onsets (-1: off). High for one block."""
    write_file: bool = True
    """Write the decoded frames under the recording directory while recording."""
    flush_every_s: float = 0.5
    """File flush interval, seconds of data (a GUI crash loses at most about this much)."""
    capacity_frames: int = 8192
    """Decoder output and file buffers, frames (200 Hz: 41 s)."""

    def check(self, section: str = "decoder") -> None:
        require(-1 <= self.onset_ttl_line < MAX_LINES, f"{section}.onset_ttl_line",
                f"must be -1 (off) or a line 0..255, got {self.onset_ttl_line}")
        require(0.0 < self.flush_every_s <= 10.0, f"{section}.flush_every_s",
                f"must be in (0, 10] s, got {self.flush_every_s}")
        require(64 <= self.capacity_frames <= 1 << 22, f"{section}.capacity_frames",
                f"must be 64..4194304, got {self.capacity_frames}")


class SweepDecoderModule(OnlineModule):
    """``PyProcessor`` for sweep decoding. Settings: ``[protocol]``, ``[decoder]``."""

    SECTIONS = ("protocol", "decoder")
    NAME = "sweepsort sweep_decoder"

    def __init__(self, processor, num_channels, sample_rate, script_path):
        super().__init__(processor, num_channels, sample_rate, script_path)
        t = self.config_table
        self.protocol = from_table(ProtocolSettings, t.get("protocol"), "protocol")
        self.settings = from_table(DecoderModuleSettings, t.get("decoder"), "decoder")
        line = self.settings.onset_ttl_line
        require(line < 0 or line not in [ln for _k, ln in self.protocol.lines()],
                "decoder.onset_ttl_line", f"line {line} is one of the protocol's input lines")
        self.decoder = make_decoder(self.protocol, self.sample_rate_hz,
                                    self.settings.capacity_frames)
        self.writer: SweepFileWriter | None = None
        self._source = self.settings.source_node
        self._onset_line = line
        self._onset_high = False
        self._exercise()

    def _exercise(self) -> None:
        """Run every code path once on a scratch decoder (import-time work, caches) so that the
        first real event costs what every later one costs."""
        from oe_plugin.protocol import encode_session, session_codes

        codes = session_codes(self.protocol, [0, 0, 1, 2, 2])
        sess = encode_session(self.protocol, codes)
        scratch = make_decoder(self.protocol, self.sample_rate_hz, 64)
        k = self.sample_rate_hz / 1e6
        for t, line, level in sess.transitions.tolist():
            scratch.on_edge(int(t * k) + 1, line, level)
        scratch.flush()

    # -- acquisition / recording (GUI message or HTTP thread) ---------------------------------
    def start_acquisition(self):
        self.samples_seen = 0
        self._onset_high = False
        self.acquiring = True
        try:
            self.decoder.reset()
        except Exception as exc:  # noqa: BLE001 - a broken decoder must not stop acquisition
            self.report("start_acquisition", exc)

    def stop_acquisition(self):
        self.acquiring = False
        try:
            self.decoder.flush()
            self._drain()
        except Exception as exc:  # noqa: BLE001 - keep what the file already has
            self.report("stop_acquisition", exc)
        if self.writer is not None:
            self.writer.flush()
        self._summary("acquisition stopped")

    def start_recording(self, recording_dir):
        self.stop_recording()
        self.recording_dir = recording_dir
        if not self.settings.write_file:
            return
        meta = {"module": "sweep_decoder", "decoder": asdict(self.settings)}
        try:
            self.writer = SweepFileWriter.open(
                recording_dir, self.sample_rate_hz, self.protocol.to_dict(), meta,
                capacity_records=self.settings.capacity_frames,
                flush_every_s=self.settings.flush_every_s)
        except Exception as exc:  # noqa: BLE001 - keep decoding without the file
            self.report("start_recording (sweep file not written)", exc)

    def stop_recording(self):
        writer, self.writer = self.writer, None
        if writer is None:
            return
        stats = None
        try:
            # the recording's last frame: finish it now, as an offline decode would
            self.decoder.flush()
            if self.decoder.n_ready:
                writer.append(self.decoder.frames, self.decoder.n_ready)
                self.decoder.clear()
            stats = self.decoder.stats()
        except Exception as exc:  # noqa: BLE001 - close the file whatever happens
            self.report("stop_recording", exc)
        writer.close(stats)
        if writer.n_dropped or writer.n_errors:
            self.report("sweep file", f"{writer.n_dropped} records dropped: {writer.last_error}")

    # -- the audio thread ---------------------------------------------------------------------
    def handle_ttl_event(self, source_node, channel, sample_number, line, state):
        try:
            if self._source < 0 or source_node == self._source:
                self.decoder.on_edge(sample_number, line, state)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("handle_ttl_event", exc)

    def process(self, data):
        try:
            self.samples_seen += int(data.shape[-1])
            onset = self._drain()
            if self._onset_line >= 0:
                if self._onset_high:
                    self.emit_ttl(self._onset_line, False)
                    self._onset_high = False
                elif onset:
                    self.emit_ttl(self._onset_line, True)
                    self._onset_high = True
            if self.writer is not None:
                self.writer.maybe_flush(self.samples_seen)
        except Exception as exc:  # noqa: BLE001
            self.report("process", exc)

    def handle_spike(self, source_node, electrode_name, num_channels, num_samples,
                     sample_number, sorted_id, spike_data):
        """Spikes are not used by this module."""

    def _drain(self) -> bool:
        """Move ready frames to the file; True if one of them is a sweep onset."""
        dec = self.decoder
        n = dec.n_ready
        if n == 0:
            return False
        if self.writer is not None:
            self.writer.append(dec.frames, n)
        onset = self._onsets(n)
        dec.clear()
        return onset

    def _onsets(self, n: int) -> bool:
        flags = self.decoder.frames["flags"]
        sweeps = self.decoder.frames["sweep_index"]
        for i in range(n):
            if flags[i] & SWEEP_CHANGE and 0 <= sweeps[i] <= MAX_SWEEP_INDEX:
                return True
        return False

    # -- status ---------------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        s = self.decoder.stats()
        s["module_errors"] = self.errors
        if self.writer is not None:
            s["file_records_written"] = self.writer.n_written
        return s

    def _summary(self, when: str) -> None:
        try:
            d = self.decoder
            errors = {k: v for k, v in d.stats()["flags"].items()
                      if k in flag_names(ERROR_MASK)}
            sys.stderr.write(f"[{self.NAME}] {when}: {d.n_frames} frames, "
                             f"{d.n_sweep_changes} sweep changes, {d.n_experiments} experiments, "
                             f"{d.n_error_frames} frames with errors {errors or ''}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
