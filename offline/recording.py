"""Read an Open Ephys recording as microvolt blocks, one stream at a time.

:func:`open_recording` finds the recording through open-ephys-python-tools (``Session`` /
``RecordNode`` / ``Recording``: the folder layout, the format, the experiment and recording
numbering) and returns a :class:`ContinuousRecording` for one stream. The samples themselves are
read lazily from memory maps, block by block, so a multi-GB file is never loaded whole:

- **Binary** (``continuous.dat``): an int16 memory map, as python-tools does; TTL events come
  from ``states.npy`` / ``sample_numbers.npy`` and, when present, ``full_words.npy`` (which
  python-tools does not read).
- **Open Ephys legacy** (``*.continuous``): python-tools' own loader reads each whole channel
  into float64 (and builds its timestamps in a Python loop), so this module memory-maps the
  1024-sample records itself; stream and channel metadata still come from python-tools
  (``find_continuous_files``).
- anything else python-tools reads (NWB): its ``samples`` array, sliced per block.

Conventions (the same everywhere in sweepsort):

- a *sample index* is 0-based into this stream's continuous data; a *sample number* is the
  GUI's counter since acquisition start: ``sample_number = first_sample_number + index``;
- TTL ``line`` is 0-based (as inside the GUI and the Python Processor; python-tools' ``line``
  column is 1-based);
- ``read_uv`` returns float32 microvolts, shape ``(n_channels, n_samples)``, C-contiguous.

Works with python-tools 0.1.x (Python 3.10: ``metadata`` dicts) and 1.x (Python >= 3.11).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

TTL_DTYPE = np.dtype([("sample_number", "<i8"), ("line", "<i2"), ("state", "?")])
"""TTL events: absolute sample number, 0-based line, new state."""

TTL_WORDS_DTYPE = np.dtype(TTL_DTYPE.descr + [("full_words", "<u8")])
"""TTL events of a Binary recording that stored ``full_words.npy`` (all lines after the event)."""

_LEGACY_HEADER_BYTES = 1024
_LEGACY_RECORD = np.dtype(
    [("sample_number", "<i8"), ("n_samples", "<u2"), ("recording", "<u2"),
     ("samples", ">i2", (1024,)), ("marker", "u1", (10,))]
)
_LEGACY_MARKER = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 255], dtype=np.uint8)
_LEGACY_EVENT = np.dtype(
    [("sample_number", "<i8"), ("position", "<i2"), ("type", "u1"), ("processor", "u1"),
     ("state", "u1"), ("channel", "u1"), ("recording", "<u2")]
)
_LEGACY_TTL_TYPE = 3


class RecordingError(Exception):
    """A recording cannot be found, selected or read; the message says what exists instead."""


# ---------------------------------------------------------------------------------------------
# one stream
# ---------------------------------------------------------------------------------------------
class ContinuousRecording:
    """One continuous stream of a recording, read in blocks.

    Attributes
    ----------
    path : Path                 the folder (or file) the samples come from
    format : str                ``"binary"``, ``"open-ephys"``, ``"nwb"`` or ``"flat-binary"``
    stream_name : str
    sample_rate_hz : float
    n_channels, n_samples : int
    first_sample_number : int   sample number of index 0 (GUI counter since acquisition start)
    channel_names : tuple[str, ...]
    bit_volts : np.ndarray      float64 (n_channels,): µV per raw integer unit
    """

    format = "?"

    def __init__(self, *, path, stream_name, sample_rate_hz, n_samples, first_sample_number,
                 channel_names, bit_volts):
        self.path = Path(path)
        self.stream_name = str(stream_name)
        self.sample_rate_hz = float(sample_rate_hz)
        self.channel_names = tuple(str(c) for c in channel_names)
        self.n_channels = len(self.channel_names)
        self.n_samples = int(n_samples)
        self.first_sample_number = int(first_sample_number)
        self.bit_volts = np.asarray(bit_volts, dtype=np.float64).reshape(-1)
        if self.bit_volts.size == 1 and self.n_channels > 1:
            self.bit_volts = np.full(self.n_channels, self.bit_volts[0])
        if self.bit_volts.size != self.n_channels:
            raise RecordingError(f"{self.path}: {self.bit_volts.size} bit_volts values for "
                                 f"{self.n_channels} channels")
        if not self.sample_rate_hz > 0:
            raise RecordingError(f"{self.path}: sample rate {sample_rate_hz!r} is not positive")

    # -- samples --------------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    def channel_indices(self, channels=None) -> np.ndarray:
        """Channel selection (None, indices or names) -> int64 indices; errors list what exists."""
        if channels is None:
            return np.arange(self.n_channels)
        if isinstance(channels, (str, int, np.integer)):
            channels = [channels]
        out = []
        for ch in channels:
            if isinstance(ch, str):
                if ch not in self.channel_names:
                    raise RecordingError(f"no channel named {ch!r}; channels: "
                                         f"{', '.join(self.channel_names)}")
                out.append(self.channel_names.index(ch))
            else:
                i = int(ch)
                if not 0 <= i < self.n_channels:
                    raise RecordingError(f"channel index {i} out of range 0..{self.n_channels - 1}")
                out.append(i)
        return np.asarray(out, dtype=np.int64)

    def read_uv(self, start_index: int, stop_index: int, channels=None) -> np.ndarray:
        """Samples ``[start_index, stop_index)`` in µV.

        Returns float32 ``(n_selected_channels, stop_index - start_index)``, C-contiguous, a new
        array (the caller may write into it). ``channels``: None (all), indices or names.
        """
        start, stop = int(start_index), int(stop_index)
        if not 0 <= start <= stop <= self.n_samples:
            raise RecordingError(f"sample range [{start}, {stop}) outside [0, {self.n_samples})")
        chans = self.channel_indices(channels)
        out = np.empty((chans.size, stop - start), dtype=np.float32)
        if stop > start and chans.size:
            self._read_into(start, stop, chans, out)
        return out

    def read_uv_rows(self, start_index: int, stop_index: int) -> np.ndarray:
        """Samples ``[start_index, stop_index)`` of all channels in µV, **sample-major**: float32
        ``(n, n_channels)``, C-contiguous. Open Ephys Binary stores data this way, so this skips
        the transpose of :meth:`read_uv` (the detection kernel reads either layout)."""
        start, stop = int(start_index), int(stop_index)
        if not 0 <= start <= stop <= self.n_samples:
            raise RecordingError(f"sample range [{start}, {stop}) outside [0, {self.n_samples})")
        out = np.empty((stop - start, self.n_channels), dtype=np.float32)
        if stop > start:
            self._read_rows_into(start, stop, out)
        return out

    def _read_rows_into(self, start: int, stop: int, out: np.ndarray) -> None:
        out[...] = self.read_uv(start, stop).T

    def iter_chunks_uv(self, chunk_samples: int,
                       channels=None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_index, block_uv)`` over the whole stream, ``chunk_samples`` at a time."""
        if chunk_samples <= 0:
            raise ValueError("chunk_samples must be positive")
        for start in range(0, self.n_samples, chunk_samples):
            yield start, self.read_uv(start, min(start + chunk_samples, self.n_samples), channels)

    def _read_into(self, start: int, stop: int, chans: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _scale_into(self, raw_tc: np.ndarray, chans: np.ndarray, out: np.ndarray) -> None:
        """raw (time, channel) integers -> out (channel, time) float32 µV, scaled in float64."""
        np.multiply(raw_tc.T, self.bit_volts[chans][:, None], out=out, casting="unsafe")

    # -- events ---------------------------------------------------------------------------------
    def ttl_events(self) -> np.ndarray:
        """TTL events of this stream: :data:`TTL_DTYPE` (or :data:`TTL_WORDS_DTYPE` when the
        recording stored full words), sorted by sample number, file order kept for ties."""
        return np.zeros(0, TTL_DTYPE)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.format} {self.path} stream={self.stream_name!r} "
                f"{self.n_channels} ch × {self.n_samples} samples @ {self.sample_rate_hz:g} Hz, "
                f"first sample {self.first_sample_number}>")


def _stable_by_sample(events: np.ndarray) -> np.ndarray:
    return events[np.argsort(events["sample_number"], kind="stable")]


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


class LegacyStream(ContinuousRecording):
    """A stream of the legacy Open Ephys format (one ``.continuous`` file per channel, records of
    1024 big-endian int16 samples), memory-mapped record by record."""

    format = "open-ephys"

    def __init__(self, directory: Path, info: dict, files: Sequence[str], recording_index: int,
                 events_file: Path | None, allow_truncated=False):
        self._recording_index = int(recording_index)
        self._events_file = events_file
        self._maps = []
        valid = None
        for name in files:
            path = Path(directory) / name
            if not path.is_file():
                raise RecordingError(f"{path}: missing (listed in the structure file)")
            size = path.stat().st_size - _LEGACY_HEADER_BYTES
            extra = size % _LEGACY_RECORD.itemsize if size > 0 else 0
            if size < 0 or (extra and not allow_truncated):
                raise RecordingError(
                    f"{path}: truncated — {max(size, 0)} data bytes is not a whole number of "
                    f"{_LEGACY_RECORD.itemsize}-byte records ({extra} bytes left over); pass "
                    "--allow-truncated to read the complete records")
            n_rec = size // _LEGACY_RECORD.itemsize
            mm = np.memmap(path, mode="r", dtype=_LEGACY_RECORD, offset=_LEGACY_HEADER_BYTES,
                           shape=(n_rec,)) if n_rec else np.zeros(0, _LEGACY_RECORD)
            if valid is None:
                valid = np.flatnonzero(mm["recording"] == self._recording_index)
                counts = mm["n_samples"][valid].astype(np.int64)
                first_record = mm[valid[0]] if valid.size else None
                if valid.size and not (
                    np.array_equal(first_record["marker"], _LEGACY_MARKER)
                    and np.array_equal(mm[valid[-1]]["marker"], _LEGACY_MARKER)
                ):
                    raise RecordingError(f"{path}: record markers missing — corrupt file?")
                if np.any(counts > 1024):
                    raise RecordingError(f"{path}: a record claims more than 1024 samples")
            elif mm.shape[0] <= (valid[-1] if valid.size else -1):
                raise RecordingError(f"{path}: {mm.shape[0]} records, fewer than the first "
                                     f"channel's (truncated?)")
            self._maps.append(mm)
        if valid is None:
            raise RecordingError(f"{directory}: stream {info.get('stream_name')!r} has no channels")
        self._valid = valid
        self._counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._full = bool(np.all(counts == 1024))
        super().__init__(
            path=directory, stream_name=info.get("stream_name", "?"),
            sample_rate_hz=info["sample_rate"], n_samples=int(self._starts[-1]),
            first_sample_number=int(first_record["sample_number"]) if valid.size else 0,
            channel_names=info["channel_names"], bit_volts=info["bit_volts"])

    def _read_into(self, start, stop, chans, out):
        r0 = int(np.searchsorted(self._starts, start, side="right")) - 1
        r1 = int(np.searchsorted(self._starts, stop, side="left"))
        rows = self._valid[r0:r1]
        lo, hi = start - int(self._starts[r0]), stop - int(self._starts[r0])
        for k, ch in enumerate(chans):
            block = self._maps[ch]["samples"][rows]  # (records, 1024) big-endian copy
            if self._full:
                flat = block.reshape(-1)
            else:
                counts = self._counts[r0:r1]
                flat = np.concatenate([b[:n] for b, n in zip(block, counts, strict=True)])
            np.multiply(flat[lo:hi], self.bit_volts[ch], out=out[k], casting="unsafe")

    def ttl_events(self) -> np.ndarray:
        if self._events_file is None or not self._events_file.is_file():
            return np.zeros(0, TTL_DTYPE)
        size = self._events_file.stat().st_size - _LEGACY_HEADER_BYTES
        n = max(size, 0) // _LEGACY_EVENT.itemsize
        raw = np.fromfile(self._events_file, dtype=_LEGACY_EVENT, count=n,
                          offset=_LEGACY_HEADER_BYTES)
        raw = raw[(raw["recording"] == self._recording_index) & (raw["type"] == _LEGACY_TTL_TYPE)]
        ev = np.zeros(raw.size, TTL_DTYPE)
        ev["sample_number"] = raw["sample_number"]
        ev["line"] = raw["channel"]
        ev["state"] = raw["state"] > 0
        return _stable_by_sample(ev)


class ToolsStream(ContinuousRecording):
    """Any other format python-tools reads (NWB): its ``samples`` (time, channel), sliced."""

    def __init__(self, directory: Path, recording, continuous, fmt: str):
        self.format = fmt
        self._recording = recording
        self._continuous = continuous
        samples = continuous.samples
        sample_numbers = getattr(continuous, "sample_numbers", None)
        first = int(sample_numbers[0]) if sample_numbers is not None and len(sample_numbers) else 0
        super().__init__(
            path=directory, stream_name=_meta(continuous, "stream_name"),
            sample_rate_hz=_meta(continuous, "sample_rate"), n_samples=samples.shape[0],
            first_sample_number=first, channel_names=_meta(continuous, "channel_names"),
            bit_volts=_meta(continuous, "bit_volts"))

    def _read_into(self, start, stop, chans, out):
        raw = np.asarray(self._continuous.samples[start:stop])[:, chans]
        self._scale_into(raw, chans, out)

    def ttl_events(self) -> np.ndarray:
        df = self._recording.events
        if df is None or len(df) == 0:
            return np.zeros(0, TTL_DTYPE)
        if "stream_name" in df:
            df = df[df["stream_name"].astype(str) == self.stream_name]
        ev = np.zeros(len(df), TTL_DTYPE)
        ev["sample_number"] = df["sample_number"].to_numpy()
        ev["line"] = df["line"].to_numpy().astype(np.int64) - 1
        ev["state"] = df["state"].to_numpy() > 0
        return _stable_by_sample(ev)


class FlatBinary(ContinuousRecording):
    """Raw interleaved samples ``(n_samples, n_channels)`` in one file (Phy/Kilosort ``.dat``)."""

    format = "flat-binary"

    def __init__(self, path, dtype, n_channels, sample_rate_hz, gain_uv, offset=0,
                 offset_uv=0.0, first_sample_number=0, channel_names=None, allow_truncated=False):
        path = Path(path)
        if not path.is_file():
            raise RecordingError(f"{path}: no such file")
        dtype = np.dtype(dtype)
        n_channels = int(n_channels)
        if n_channels <= 0:
            raise RecordingError(f"{path}: n_channels must be positive, got {n_channels}")
        size = path.stat().st_size - int(offset)
        frame = dtype.itemsize * n_channels
        if size < 0:
            raise RecordingError(f"{path}: shorter than the {offset}-byte offset")
        if size % frame and not allow_truncated:
            raise RecordingError(f"{path}: truncated — {size} bytes after the offset is not a "
                                 f"whole number of {n_channels}-channel {dtype} frames; pass "
                                 "--allow-truncated to read the complete frames")
        n = size // frame
        self._samples = (np.memmap(path, mode="r", dtype=dtype, offset=int(offset),
                                   shape=(n, n_channels))
                         if n else np.zeros((0, n_channels), dtype))
        self._offset_uv = float(offset_uv)
        super().__init__(
            path=path, stream_name=path.stem, sample_rate_hz=sample_rate_hz, n_samples=n,
            first_sample_number=first_sample_number,
            channel_names=channel_names or [f"CH{i + 1}" for i in range(n_channels)],
            bit_volts=gain_uv)

    def _read_into(self, start, stop, chans, out):
        self._scale_into(self._samples[start:stop][:, chans], chans, out)
        if self._offset_uv:
            out += np.float32(self._offset_uv)


def open_flat_binary(path, dtype, n_channels, sample_rate_hz, gain_uv, offset=0, *,
                     offset_uv=0.0, first_sample_number=0, channel_names=None,
                     allow_truncated=False) -> FlatBinary:
    """A raw flat binary file: ``µV = raw * gain_uv + offset_uv``.

    ``dtype``: sample type (e.g. ``"int16"``); ``gain_uv``: µV per unit, scalar or per channel;
    ``offset``: bytes to skip at the start of the file (a header), as Phy's ``params.py``.
    """
    return FlatBinary(path, dtype, n_channels, sample_rate_hz, gain_uv, offset, offset_uv,
                      first_sample_number, channel_names, allow_truncated)


# ---------------------------------------------------------------------------------------------
# finding the recording
# ---------------------------------------------------------------------------------------------
def _meta(obj, key):
    """python-tools metadata: a dict in 0.1.x, a dataclass in 1.x."""
    meta = obj.metadata
    return meta[key] if isinstance(meta, dict) else getattr(meta, key)


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _node_number(path: Path) -> int | None:
    m = re.search(r"(\d+)\s*$", path.name)
    return int(m.group(1)) if m else None


def _pick_node(session: Path, node) -> Path:
    nodes = sorted((p for p in session.glob("Record Node *") if p.is_dir()), key=_natural_key)
    listing = ", ".join(f"{i}: {p.name!r}" for i, p in enumerate(nodes))
    if node is None:
        return nodes[0]
    if isinstance(node, str) and not node.strip().isdigit():
        for p in nodes:
            if p.name == node or p.name == f"Record Node {node}":
                return p
        raise RecordingError(f"{session}: no record node {node!r}; nodes: {listing}")
    number = int(node)
    for p in nodes:
        if _node_number(p) == number:
            return p
    if 0 <= number < len(nodes):
        return nodes[number]
    raise RecordingError(f"{session}: no record node {node!r} (neither a node number nor an "
                         f"index); nodes: {listing}")


def _looks_like_data(folder: Path) -> bool:
    return (any(folder.glob("experiment*/recording*")) or any(folder.glob("*.continuous"))
            or any(folder.glob("recording*/structure.oebin"))
            or any(folder.glob("structure*.openephys")) or any(folder.glob("*.nwb"))
            or any(folder.glob("*.events")))


def _tools_recordings(folder: Path) -> list:
    """python-tools' recordings of one folder (a record node, or a session without nodes)."""
    try:
        from open_ephys.analysis.formats import BinaryRecording
        from open_ephys.analysis.recordnode import RecordNode
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise RecordingError("open-ephys-python-tools is not installed") from err
    _check_oebin_files(folder)
    if (folder / "structure.oebin").is_file():
        exp = re.search(r"(\d+)$", folder.parent.name)
        rec = re.search(r"(\d+)$", folder.name)
        return [BinaryRecording(str(folder), int(exp.group(1)) - 1 if exp else 0,
                                int(rec.group(1)) - 1 if rec else 0)]
    if any(folder.glob("recording*/structure.oebin")):  # an experiment folder
        dirs = sorted((p for p in folder.glob("recording*") if (p / "structure.oebin").is_file()),
                      key=_natural_key)
        return [r for d in dirs for r in _tools_recordings(d)]
    try:
        return list(RecordNode(str(folder)).recordings)
    except (OSError, ValueError, KeyError, IndexError, ElementTree.ParseError) as err:
        raise RecordingError(f"{folder}: python-tools could not read it ({err})") from err


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


def _describe(rec) -> str:
    d = Path(rec.directory)
    if (d / "structure.oebin").is_file():
        return f"{d.parent.name}/{d.name}"
    return f"experiment {rec.experiment_index + 1}, recording {rec.recording_index + 1}"


def _pick(items: list, key, what: str, where: Path, names: list[str] | None = None):
    listing = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names or [str(i) for i in items]))
    if key is None:
        return 0
    if isinstance(key, str) and not key.strip().lstrip("-").isdigit():
        if names and key in names:
            return names.index(key)
        raise RecordingError(f"{where}: no {what} named {key!r}; available: {listing}")
    i = int(key)
    if not 0 <= i < len(items):
        raise RecordingError(f"{where}: {what} index {i} out of range; available: {listing}")
    return i


def _legacy_streams(rec) -> list[tuple[dict, list[str], Path | None]]:
    files, stream_of_file, stream_ids, infos = rec.find_continuous_files()
    root = ElementTree.parse(rec.experiment_info).getroot()
    events = {}
    for r_index, child in enumerate(root):
        if r_index == rec.recording_index:
            for s_index, stream in enumerate(child):
                for item in stream:
                    if item.tag == "EVENTS":
                        events[s_index] = Path(rec.directory) / item.get("filename")
    out = []
    for s in stream_ids:
        own = [f for f, k in zip(files, stream_of_file, strict=True) if k == s]
        out.append((infos[s], own, events.get(s)))
    return out


def open_recording(path, node=None, recording=None, stream=None, *,
                   allow_truncated: bool = False) -> ContinuousRecording:
    """Open one stream of an Open Ephys recording.

    Parameters
    ----------
    path : a session folder holding ``Record Node …`` folders, a record node folder, an
        ``experiment<N>`` folder, or a Binary ``recording<N>`` folder (or its structure.oebin).
    node : index (0-based, sorted by name) or the number in "Record Node 105" (105), or the
        folder name; default the first node.
    recording : 0-based index over the node's recordings (experiments flattened, as
        python-tools numbers them); default 0.
    stream : index or stream name (or Binary folder name); default 0.
    allow_truncated : read the complete part of a file that ends mid-frame instead of failing.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise RecordingError(f"{p}: no such folder")
    if p.is_file():
        if p.name != "structure.oebin":
            raise RecordingError(f"{p}: expected a recording folder (for a raw binary file use "
                                 "open_flat_binary)")
        p = p.parent
    if any(p.glob("Record Node *")):
        p = _pick_node(p, node)
    elif node is not None:
        raise RecordingError(f"{p}: node={node!r} given but this folder holds no 'Record Node' "
                             "folders")
    if not _looks_like_data(p) and not (p / "structure.oebin").is_file():
        raise RecordingError(f"{p}: no Open Ephys recording found (expected 'Record Node …' "
                             "folders, experiment*/recording* folders, structure.oebin or "
                             "*.continuous files)")
    recordings = _tools_recordings(p)
    if not recordings:
        raise RecordingError(f"{p}: no recordings")
    rec = recordings[_pick(recordings, recording, "recording", p,
                           [_describe(r) for r in recordings])]
    fmt = str(getattr(rec, "format", "") or "")
    if (Path(rec.directory) / "structure.oebin").is_file() and hasattr(rec, "info"):
        infos = list(rec.info.get("continuous", []))
        if not infos:
            raise RecordingError(f"{rec.directory}: structure.oebin lists no continuous streams")
        names = [str(i.get("stream_name", i.get("folder_name"))) for i in infos]
        folders = [str(i.get("folder_name", "")).rstrip("/") for i in infos]
        if isinstance(stream, str) and stream.rstrip("/") in folders and stream not in names:
            k = folders.index(stream.rstrip("/"))
        else:
            k = _pick(infos, stream, "stream", Path(rec.directory), names)
        return BinaryStream(Path(rec.directory), infos[k], rec.info, allow_truncated)
    if hasattr(rec, "find_continuous_files"):
        streams = _legacy_streams(rec)
        if not streams:
            raise RecordingError(f"{rec.directory}: no continuous streams in this recording")
        names = [str(s[0].get("stream_name")) for s in streams]
        info, files, events = streams[_pick(streams, stream, "stream", Path(rec.directory), names)]
        return LegacyStream(Path(rec.directory), info, files, rec.recording_index, events,
                            allow_truncated)
    continuous = list(rec.continuous.values() if isinstance(rec.continuous, dict)
                      else rec.continuous or [])
    if not continuous:
        raise RecordingError(f"{rec.directory}: no continuous streams in this recording")
    names = [str(_meta(c, "stream_name")) for c in continuous]
    c = continuous[_pick(continuous, stream, "stream", Path(rec.directory), names)]
    return ToolsStream(Path(rec.directory), rec, c, fmt or "?")

