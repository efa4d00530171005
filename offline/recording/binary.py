"""Open Ephys Binary: ``continuous/<stream>/continuous.dat`` as an int16 memory map, TTL events
from ``events/<stream>/TTL*/`` (``states.npy``, ``sample_numbers.npy``, ``full_words.npy``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from offline.recording.base import (
    TTL_DTYPE,
    TTL_WORDS_DTYPE,
    ContinuousRecording,
    RecordingError,
    _stable_by_sample,
)


class BinaryStream(ContinuousRecording):
    """A stream of an Open Ephys Binary recording (``continuous/<folder>/continuous.dat``)."""

    format = "binary"

    def __init__(self, recording_dir: Path, info: dict, oebin: dict, allow_truncated=False):
        folder = str(info["folder_name"]).rstrip("/")
        self._folder = folder
        self._recording_dir = Path(recording_dir)
        self._oebin = oebin
        stream_dir = self._recording_dir / "continuous" / folder
        dat = stream_dir / "continuous.dat"
        channels = info.get("channels") or []
        n_ch = int(info.get("num_channels", len(channels)))
        if not dat.is_file():
            raise RecordingError(f"{dat}: missing (stream {info.get('stream_name')!r})")
        frame = 2 * n_ch
        size = dat.stat().st_size
        if size % frame:
            if not allow_truncated:
                raise RecordingError(
                    f"{dat}: truncated — {size} bytes is not a whole number of {n_ch}-channel "
                    f"int16 frames ({size % frame} bytes left over); pass --allow-truncated "
                    "(allow_truncated=True in Python) to read the complete frames")
        n = size // frame
        self._samples = (np.memmap(dat, mode="r", dtype="<i2", shape=(n, n_ch)) if n
                         else np.zeros((0, n_ch), "<i2"))
        first = 0
        sn_path = stream_dir / "sample_numbers.npy"
        if not sn_path.exists():
            sn_path = stream_dir / "timestamps.npy"  # GUI < 0.6 stored sample numbers there
        if sn_path.exists():
            try:
                sample_numbers = np.load(sn_path, mmap_mode="r")
            except ValueError as err:  # header not updated: the GUI did not stop cleanly
                raise RecordingError(f"{sn_path}: unreadable ({err})") from err
            if len(sample_numbers) != n and not allow_truncated:
                raise RecordingError(
                    f"{sn_path}: {len(sample_numbers)} sample numbers for {n} samples in "
                    f"{dat.name} (truncated recording? --allow-truncated reads the samples "
                    "both have)")
            n = min(n, len(sample_numbers))
            self._samples = self._samples[:n]
            if n:
                first = int(sample_numbers[0])
        super().__init__(
            path=stream_dir, stream_name=info.get("stream_name", folder),
            sample_rate_hz=info["sample_rate"], n_samples=n, first_sample_number=first,
            channel_names=[c.get("channel_name", f"CH{i + 1}") for i, c in enumerate(channels)]
            or [f"CH{i + 1}" for i in range(n_ch)],
            bit_volts=[float(c.get("bit_volts", 1.0)) for c in channels] or np.ones(n_ch))

    def _read_into(self, start, stop, chans, out):
        raw = self._samples[start:stop]
        if chans.size != self.n_channels or np.any(chans != np.arange(self.n_channels)):
            raw = raw[:, chans]
        self._scale_into(raw, chans, out)

    def _read_rows_into(self, start, stop, out):
        np.multiply(self._samples[start:stop], self.bit_volts[None, :], out=out, casting="unsafe")

    def _ttl_dirs(self) -> list[Path]:
        events_root = self._recording_dir / "events"
        dirs = []
        for ev in self._oebin.get("events", []) or []:
            folder = str(ev.get("folder_name", "")).rstrip("/")
            parent, _, leaf = folder.rpartition("/")
            if parent == self._folder and leaf.startswith("TTL"):
                dirs.append(events_root / folder)
        if not dirs:
            dirs = sorted((events_root / self._folder).glob("TTL*"))
        return [d for d in dirs if d.is_dir()]

    def ttl_events(self) -> np.ndarray:
        parts, words = [], []
        for d in self._ttl_dirs():
            states_path = d / "states.npy"
            if not states_path.exists():
                states_path = d / "channel_states.npy"  # GUI < 0.6
                sn_path = d / "timestamps.npy"
            else:
                sn_path = d / "sample_numbers.npy"
            states = np.load(states_path).astype(np.int64)
            sample_numbers = np.load(sn_path).astype(np.int64)
            if states.shape != sample_numbers.shape:
                raise RecordingError(f"{d}: {states.size} states but {sample_numbers.size} "
                                     "sample numbers (truncated event files?)")
            ev = np.zeros(states.size, TTL_DTYPE)
            ev["sample_number"] = sample_numbers
            ev["line"] = np.abs(states) - 1
            ev["state"] = states > 0
            parts.append(ev)
            fw = d / "full_words.npy"
            words.append(np.load(fw).astype(np.uint64) if fw.exists() else None)
        if not parts:
            return np.zeros(0, TTL_DTYPE)
        events = np.concatenate(parts)
        if all(w is not None and w.size == p.size for w, p in zip(words, parts, strict=True)):
            with_words = np.zeros(events.size, TTL_WORDS_DTYPE)
            for name in TTL_DTYPE.names:
                with_words[name] = events[name]
            with_words["full_words"] = np.concatenate(words)
            events = with_words
        return _stable_by_sample(events)


def _check_oebin_files(folder: Path) -> None:
    """Every ``structure.oebin`` python-tools would read below ``folder`` is a JSON object: a
    bad one is named here (python-tools' own error does not say which file)."""
    files = [folder / "structure.oebin", *folder.glob("recording*/structure.oebin"),
             *folder.glob("experiment*/recording*/structure.oebin")]
    for f in files:
        if not f.is_file():
            continue
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RecordingError(f"{f}: not a valid structure.oebin ({exc})") from None
        if not isinstance(doc, dict):
            raise RecordingError(f"{f}: not a valid structure.oebin (a JSON object expected)")
