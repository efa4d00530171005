"""What every sweepsort Python Processor module shares: settings lookup, the never-raise guard,
and the acquisition/recording bookkeeping.

The GUI's host (docs/host-threading.md) calls ``process()`` and the event handlers on
its audio thread without the GIL; an exception escaping them stalls the data flow for good.
:meth:`OnlineModule.report` is the one place errors go: it writes the first of each kind to
stderr (the GUI logs it) and counts the rest, and never raises itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oe_plugin.config import check_sections, find_config, from_table, load_toml
from oe_plugin.online.clock import SampleClock
from oe_plugin.outputs.location import (
    OutputFolderError,
    OutputSettings,
    RecordingTarget,
    resolve_recording_folder,
)
from oe_plugin.outputs.spike_file import SpikeFileWriter


class OnlineModule:
    """Base of the ``PyProcessor`` classes; subclasses set ``SECTIONS`` and implement the work.

    ``script_path`` is the module file the GUI loaded: its ``<stem>.toml`` neighbour holds the
    settings unless ``$SWEEPSORT_CONFIG`` names another file.
    """

    SECTIONS: tuple[str, ...] = ()
    NAME = "sweepsort"
    SPIKE_FLUSH_S = 0.25
    """Spike-file flush interval (seconds of data): with one block on top, a GUI crash loses
    less than 0.5 s of spikes."""

    def __init__(self, processor, num_channels, sample_rate, script_path):
        self.processor = processor
        self.num_channels = int(num_channels)
        self.sample_rate_hz = float(sample_rate)
        if self.num_channels < 1:
            raise ValueError(f"{self.NAME}: the selected stream has no channels")
        if not self.sample_rate_hz > 0:
            raise ValueError(f"{self.NAME}: invalid sample rate {sample_rate!r}")
        self.config_path = find_config(script_path)
        self.config_table = load_toml(self.config_path) if self.config_path else {}
        where = str(self.config_path) if self.config_path else "settings"
        check_sections(self.config_table, self.SECTIONS + ("output",), where)
        self.output_settings = from_table(OutputSettings, self.config_table.get("output"),
                                          "output")
        self.clock = SampleClock()
        self.acquiring = False
        self.recording_dir: Path | None = None
        self.target: RecordingTarget | None = None
        self.samples_seen = 0
        self.errors = 0
        self._reported: set[str] = set()

    def report(self, where: str, exc: BaseException | str) -> None:
        """Note an internal error once per (where, type); never raises."""
        try:
            self.errors += 1
            kind = f"{where}:{type(exc).__name__ if isinstance(exc, BaseException) else exc}"
            if kind in self._reported:
                return
            self._reported.add(kind)
            sys.stderr.write(
                f"[{self.NAME}] error in {where}: {exc!r}; data passes through unchanged, "
                f"further errors of this kind are only counted\n"
            )
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - nothing may escape to the host
            pass

    def log(self, message: str) -> None:
        """A notice to stderr (the GUI logs it); never raises."""
        try:
            sys.stderr.write(f"[{self.NAME}] {message}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass

    # -- where the files go (start_recording, never process()) ------------------------------------
    def recording_target(self, arg) -> RecordingTarget | None:
        """The recording folder for ``start_recording(arg)`` (:mod:`oe_plugin.outputs.location`:
        the path as given, the GUI's HTTP API, ``[output] directory`` or the fallback), with its
        ``sweepsort/`` folder created; the chosen path is logged once. ``arg`` may already be a
        :class:`RecordingTarget` (the pipeline resolves once for its stages). A folder that cannot
        be created is reported (once) and None returned: the module goes on without files."""
        if arg is None:  # the pipeline could not resolve a folder (reported there)
            self.target = self.recording_dir = None
            return None
        if isinstance(arg, RecordingTarget):
            self.target = arg
            self.recording_dir = arg.path
            return arg
        self.target = None
        try:
            target = resolve_recording_folder(arg, self.output_settings, self.config_path)
        except Exception as exc:  # noqa: BLE001 - a bad argument must not disable the module
            self.report("start_recording", OutputFolderError(
                f"cannot resolve the recording folder {arg!r}: {type(exc).__name__}: {exc}; "
                "no online files this recording"))
            return None
        try:
            target.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.report("start_recording", OutputFolderError(
                f"cannot write the online files to {target.output_dir} "
                f"({exc.strerror or exc}; the folder came from: {target.how}); acquisition "
                "goes on without them — fix the folder or set [output] directory, then record "
                "again"))
            return None
        self.log(target.describe())
        self.target = target
        self.recording_dir = target.path
        return target

    def file_meta(self, meta: dict) -> dict:
        """``meta`` plus the recording's identity and the sample-number origin."""
        out = dict(meta)
        if self.target is not None:
            out["recording"] = self.target.header()
        out["sample_clock"] = self.clock.describe()
        return out

    # -- the crash-safe spike file (spike detector, online sorter) -------------------------------
    def open_spike_file(self, target: RecordingTarget | None, meta: dict) -> None:
        """Start ``<recording folder>/sweepsort/online_spikes_NNN.bin`` as ``self.writer``
        (nothing without a target). A file that cannot be created is reported and the module
        keeps working without it (rather than disabling itself mid-experiment). Records carry
        absolute sample numbers: the writer adds :attr:`clock`'s offset."""
        if target is None:
            return
        try:
            self.writer = SpikeFileWriter.open(
                target.path, self.sample_rate_hz, self.num_channels, self.file_meta(meta),
                flush_every_s=self.SPIKE_FLUSH_S,
            )
            self.writer.sample_offset = self.clock.offset
        except Exception as exc:  # noqa: BLE001
            self.report("start_recording (spike file not written)", exc)

    def close_spike_file(self) -> None:
        """Close ``self.writer`` (flush + fsync) and report lost records."""
        writer, self.writer = getattr(self, "writer", None), None
        if writer is not None:
            writer.close()
            if writer.n_dropped or writer.n_errors:
                self.report(
                    "spike file", f"{writer.n_dropped} records dropped: {writer.last_error}"
                )

    def emit_ttl(self, line: int, state: bool) -> None:
        """Queue a TTL event (the host stamps it with the current block's first sample)."""
        try:
            self.processor.add_python_event(int(line), bool(state))
        except Exception as exc:  # noqa: BLE001
            self.report("add_python_event", exc)
