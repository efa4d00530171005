"""What every sweepsort Python Processor module shares: settings lookup, the never-raise guard,
and the acquisition/recording bookkeeping.

The GUI's host (../shared/DESIGN.md, Contract 1) calls ``process()`` and the event handlers on
its audio thread without the GIL; an exception escaping them stalls the data flow for good.
:meth:`OnlineModule.report` is the one place errors go: it writes the first of each kind to
stderr (the GUI logs it) and counts the rest, and never raises itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oe_plugin.config import check_sections, find_config, load_toml
from oe_plugin.outputs.spike_file import SpikeFileWriter


class OnlineModule:
    """Base of the ``PyProcessor`` classes; subclasses set ``SECTIONS`` and implement the work.

    ``script_path`` is the module file the GUI loaded: its ``<stem>.toml`` neighbour holds the
    settings unless ``$SWEEPSORT_CONFIG`` names another file.
    """

    SECTIONS: tuple[str, ...] = ()
    NAME = "sweepsort"

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
        check_sections(self.config_table, self.SECTIONS, where)
        self.acquiring = False
        self.recording_dir: Path | None = None
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

    # -- the crash-safe spike file (spike detector, online sorter) -------------------------------
    def open_spike_file(self, recording_dir, meta: dict) -> None:
        """Start ``<recording_dir>/sweepsort/online_spikes_NNN.bin`` as ``self.writer``. A file
        that cannot be created is reported and the module keeps working without it (rather than
        disabling itself mid-experiment)."""
        try:
            self.writer = SpikeFileWriter.open(
                recording_dir, self.sample_rate_hz, self.num_channels, meta
            )
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
