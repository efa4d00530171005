"""Online sweep decoding inside the Open Ephys Python Processor.

The logic behind ``oe_plugin/modules/sweep_decoder.py``. ``handle_ttl_event`` feeds every edge
of the protocol's lines to the decoder (:func:`oe_plugin.protocol.make_decoder`, plain Python:
safe on the GUI's GIL-less audio thread); ``process()`` passes the data through untouched, moves
the decoded frames into the crash-safe file (``<recording folder>/sweepsort/online_sweeps_NNN.bin``,
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
    flush_every_s: float = 0.25
    """File flush interval, seconds of data (a GUI crash loses at most this plus one block)."""
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
        self._closing: SweepFileWriter | None = None  # handed to the audio thread to close
        self._closed: list = []  # (writer, stats) whose JSON sidecar is still to be written
        self._pending_onset = False
        self._source = self.settings.source_node
        self._onset_line = line
        self._onset_high = False
        self.on_frames = None
        """Optional callback ``on_frames(frames, n)``, called on the audio thread with the
        decoder's frame records (``frames[:n]``: ``sample_number``, ``sweep_index``, ``flags``,
        ...) each time decoded frames are handed on (in time order, before the decoder reuses
        the buffer). It must not raise, block or allocate much (the pipeline module counts
        frames per sweep index with it)."""
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
    # In the GUI these run on another thread than process()/handle_ttl_event, possibly while
    # they run (no GIL keeps them apart): they never touch the decoder while acquiring. Closing
    # a recording's file is handed to the audio thread (its next call), or done here once
    # acquisition has stopped.

    def start_acquisition(self):
        self.samples_seen = 0
        self._onset_high = False
        try:
            self.decoder.reset()
        except Exception as exc:  # noqa: BLE001 - a broken decoder must not stop acquisition
            self.report("start_acquisition", exc)
        self.acquiring = True

    def stop_acquisition(self):
        self.acquiring = False  # the audio thread has stopped calling us
        try:
            self._close_recording(fsync=True)
            self.decoder.flush()
            self._drain()
        except Exception as exc:  # noqa: BLE001 - keep what the file already has
            self.report("stop_acquisition", exc)
        self._write_sidecars()
        self._summary("acquisition stopped")

    def start_recording(self, recording_dir):
        self.stop_recording()
        self._write_sidecars()
        target = self.recording_target(recording_dir)
        if target is None or not self.settings.write_file:
            return
        meta = self.file_meta({"module": "sweep_decoder", "decoder": asdict(self.settings),
                               "sample_number_origin": "stream (the TTL events' own)"})
        try:
            writer = SweepFileWriter.open(
                target.path, self.sample_rate_hz, self.protocol.to_dict(), meta,
                capacity_records=self.settings.capacity_frames,
                flush_every_s=self.settings.flush_every_s)
        except Exception as exc:  # noqa: BLE001 - keep decoding without the file
            self.report("start_recording (sweep file not written)", exc)
            return
        self.writer = writer  # the audio thread starts appending at its next process()

    def stop_recording(self):
        writer, self.writer = self.writer, None
        if writer is None:
            return
        self._closing = writer
        if not self.acquiring:
            self._close_recording(fsync=True)
            self._write_sidecars()

    # -- the audio thread ---------------------------------------------------------------------
    def handle_ttl_event(self, source_node, channel, sample_number, line, state):
        try:
            if self._closing is not None:
                self._close_recording(fsync=False)
            if self._source < 0 or source_node == self._source:
                self.decoder.on_edge(sample_number, line, state)
        except Exception as exc:  # noqa: BLE001 - nothing may reach the host
            self.report("handle_ttl_event", exc)

    def process(self, data):
        try:
            if self._closing is not None:
                self._close_recording(fsync=False)
            self.samples_seen += int(data.shape[-1])
            onset = self._drain()
            if self._onset_line >= 0:
                if self._onset_high:
                    self.emit_ttl(self._onset_line, False)
                    self._onset_high = False
                elif onset:
                    self.emit_ttl(self._onset_line, True)
                    self._onset_high = True
            writer = self.writer
            if writer is not None:
                writer.maybe_flush(self.samples_seen)
        except Exception as exc:  # noqa: BLE001
            self.report("process", exc)

    def _close_recording(self, fsync: bool) -> None:
        """Finish the recording's last frame (as an offline decode of the recording does at its
        end), write it and close the file. On the audio thread (``fsync=False``) the JSON
        sidecar is left for :meth:`_write_sidecars` on the message thread."""
        writer, self._closing = self._closing, None
        if writer is None:
            return
        try:
            dec = self.decoder
            dec.flush()
            if dec.n_ready:
                writer.append(dec.frames, dec.n_ready)
                self._pending_onset = self._frames_out(dec.n_ready) or self._pending_onset
                dec.clear()
            stats = dec.stats()
        except Exception as exc:  # noqa: BLE001 - close the file whatever happens
            self.report("closing the sweep file", exc)
            stats = None
        writer.close(None, fsync=fsync)
        self._closed.append((writer, stats))

    def _write_sidecars(self) -> None:
        closed, self._closed = self._closed, []
        for writer, stats in closed:
            if stats is not None:
                writer.write_sidecar(stats)
            if writer.n_dropped or writer.n_errors:
                self.report("sweep file",
                            f"{writer.n_dropped} records dropped: {writer.last_error}")

    def handle_spike(self, source_node, electrode_name, num_channels, num_samples,
                     sample_number, sorted_id, spike_data):
        """Spikes are not used by this module."""

    def _drain(self) -> bool:
        """Move ready frames to the file; True if one of them (or of the frames the last file
        close took) is a sweep onset."""
        dec = self.decoder
        n = dec.n_ready
        onset, self._pending_onset = self._pending_onset, False
        if n == 0:
            return onset
        writer = self.writer
        if writer is not None:
            writer.append(dec.frames, n)
        onset = self._frames_out(n) or onset
        dec.clear()
        return onset

    def _frames_out(self, n: int) -> bool:
        """Hand the first ``n`` ready frames to :attr:`on_frames`; True if one is an onset."""
        if self.on_frames is not None:
            self.on_frames(self.decoder.frames, n)
        return self._onsets(n)

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
