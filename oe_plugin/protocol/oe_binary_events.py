"""Write TTL events into an Open Ephys Binary recording exactly as the GUI's Record Node does.

The GUI (``BinaryRecording.cpp``, GUI >= 0.6) writes one row per line
edge into ``events/<processor folder>/TTL/``:

- ``states.npy``        int16   ``(line + 1) * (+1 rising | -1 falling)`` — line 0-based inside
  the GUI, stored 1-based with the sign as the new state;
- ``sample_numbers.npy`` int64  sample number on the parent stream;
- ``timestamps.npy``    float64 seconds (the Record Node's synchronised time; for a stream that
  is its own main stream, ``sample_number / sample_rate``);
- ``full_words.npy``    uint64  the state of all lines after the event ("Record TTL full words",
  on by default);

and lists the channel in ``structure.oebin`` under ``"events"``. :func:`write_ttl_events` does
that for an existing recording folder; :func:`write_binary_recording` writes a continuous stream
(in memory or streamed in pieces) and, optionally, its events: the project's one Binary writer
(tests, the simulator's recordings, the sorting benchmark's cases, replaying a simulated session
through the host simulator).
``offline.recording.open_recording(...).ttl_events()`` reads these files back (0-based lines,
``full_words`` included); open-ephys-python-tools reads everything but ``full_words``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from oe_plugin.formats.atomic import atomic_write
from oe_plugin.protocol.ttl_sim import TTL_EVENT_DTYPE

GUI_VERSION = "0.6.7"


def processor_folder(source_processor: str, source_processor_id: int, stream_name: str) -> str:
    """The GUI's folder name for a stream: spaces and '@' in the processor name become '_',
    then ``-<id>.<stream name>`` (e.g. ``Acquisition_Board-100.Rhythm Data``)."""
    name = source_processor.replace(" ", "_").replace("@", "_")
    return f"{name}-{int(source_processor_id)}.{stream_name}"


def full_words(events: np.ndarray, initial_word: int = 0) -> np.ndarray:
    """The word of all lines after each event (uint64, lines >= 64 are not representable and
    are left out, as a uint64 word cannot hold them)."""
    out = np.empty(events.size, np.uint64)
    word = int(initial_word)
    for i, (line, state) in enumerate(zip(events["line"].tolist(), events["state"].tolist(),
                                          strict=True)):
        if line < 64:
            if state:
                word |= 1 << line
            else:
                word &= ~(1 << line)
        out[i] = word
    return out


def write_ttl_events(recording_dir, events: np.ndarray, *, sample_rate_hz: float,
                     folder: str, source_processor: str = "Acquisition Board",
                     stream_name: str | None = None, channel_name: str = "TTL Input",
                     ttl_folder: str = "TTL", initial_word: int = 0,
                     with_full_words: bool = True,
                     words: np.ndarray | None = None) -> Path:
    """Write ``events`` (TTL_EVENT_DTYPE, in the order the GUI received them) as one TTL event
    channel of ``recording_dir`` and register it in its ``structure.oebin`` (created if missing).

    Parameters
    ----------
    recording_dir : a Binary ``recording<N>`` folder.
    events : structured array with ``sample_number`` (int64), ``line`` (0-based), ``state``.
    sample_rate_hz : the parent stream's rate (timestamps = sample_number / rate).
    folder : processor folder, e.g. ``processor_folder("Acquisition Board", 100, "Rhythm Data")``.
    ttl_folder : ``TTL`` for the first TTL channel of the stream, ``TTL_1`` for the second...
    words : (n,) the ``full_words.npy`` to store as given (a reader's test case); None: the
        word after each event, from ``initial_word`` (:func:`full_words`).

    Returns
    -------
    Path of the ``events/<folder>/<ttl_folder>`` directory.
    """
    rec = Path(recording_dir)
    ev = np.asarray(events)
    lines = ev["line"].astype(np.int64)
    if lines.size and (lines.min() < 0 or lines.max() > 255):
        raise ValueError("TTL lines must be 0..255")
    d = rec / "events" / folder / ttl_folder
    d.mkdir(parents=True, exist_ok=True)
    sign = np.where(ev["state"].astype(bool), 1, -1)
    np.save(d / "states.npy", ((lines + 1) * sign).astype(np.int16))
    sample_numbers = ev["sample_number"].astype(np.int64)
    np.save(d / "sample_numbers.npy", sample_numbers)
    np.save(d / "timestamps.npy", sample_numbers / float(sample_rate_hz))
    if with_full_words:
        np.save(d / "full_words.npy", full_words(ev, initial_word) if words is None
                else np.asarray(words).astype(np.uint64))
    oebin_path = rec / "structure.oebin"
    oebin = _read_oebin(oebin_path)
    entry = {"folder_name": f"{folder}/{ttl_folder}/", "channel_name": channel_name,
             "description": "Digital inputs (sweepsort TTL writer)",
             "identifier": "sweepsort.ttl", "sample_rate": float(sample_rate_hz),
             "type": "int16", "source_processor": source_processor,
             "stream_name": stream_name if stream_name is not None
             else folder.split(".", 1)[-1], "initial_state": int(initial_word)}
    oebin["events"] = [e for e in oebin.get("events", []) if e.get("folder_name")
                       != entry["folder_name"]] + [entry]
    atomic_write(oebin_path, json.dumps(oebin, indent=2))
    return d


CHUNK_SAMPLES = 300_000
"""Samples per piece when an array is written (bounds the int16 copy's memory)."""


def write_binary_recording(recording_dir, *, sample_rate_hz: float, n_samples: int | None = None,
                           first_sample_number: int = 0, n_channels: int = 4,
                           data_uv=None, events: np.ndarray | None = None,
                           source_processor: str = "Acquisition Board",
                           source_processor_id: int = 100, stream_name: str = "Rhythm Data",
                           bit_volts: float = 0.195, recorded_processor_id: int = 101) -> str:
    """Write one continuous stream of an Open Ephys Binary ``recording<N>`` folder, as the GUI's
    Record Node lays it out, and optionally its TTL events; further calls with another
    ``stream_name`` add streams to the same folder. The one Binary writer of the project (tests,
    the simulator, the benchmarks). Returns the stream's processor folder name. Readable by
    open-ephys-python-tools, neo/spikeinterface and :func:`offline.recording.open_recording`.

    Parameters
    ----------
    data_uv : None (``n_samples`` zeros on ``n_channels``); a float array (C, N) µV; or an
        iterable of float (C, n) µV pieces in time order (streamed to disk: a long recording
        never sits in memory; ``n_channels`` must be given). Samples are rounded in the data's
        own dtype to int16 counts of ``bit_volts`` µV and clipped to the int16 range.
    n_samples : with pieces, the total they hold (checked); else taken from the array.
    """
    rec = Path(recording_dir)
    folder = processor_folder(source_processor, source_processor_id, stream_name)
    d = rec / "continuous" / folder
    d.mkdir(parents=True, exist_ok=True)
    if data_uv is None:
        if n_samples is None:
            raise ValueError("write_binary_recording: give n_samples or data_uv")
        pieces = iter(())
        zeros = (int(n_samples), int(n_channels))
    elif isinstance(data_uv, np.ndarray):
        n_channels, n_samples = data_uv.shape
        pieces = (data_uv[:, a:a + CHUNK_SAMPLES] for a in range(0, n_samples, CHUNK_SAMPLES))
        zeros = None
    else:
        pieces, zeros = iter(data_uv), None
    written = 0
    with open(d / "continuous.dat", "wb") as f:
        if zeros is not None:
            np.zeros(zeros, "<i2").tofile(f)
            written = zeros[0]
        for x in pieces:
            if x.shape[0] != n_channels:
                raise ValueError(f"write_binary_recording: a piece has {x.shape[0]} channels, "
                                 f"the stream {n_channels}")
            np.clip(np.round(x.T / bit_volts), -32768, 32767).astype("<i2").tofile(f)
            written += x.shape[1]
    if n_samples is not None and written != int(n_samples):
        raise ValueError(f"write_binary_recording: wrote {written} samples, n_samples says "
                         f"{n_samples}")
    sn = int(first_sample_number) + np.arange(written, dtype=np.int64)
    np.save(d / "sample_numbers.npy", sn)
    np.save(d / "timestamps.npy", sn / float(sample_rate_hz))
    cont = {"folder_name": folder + "/", "sample_rate": float(sample_rate_hz),
            "source_processor_name": source_processor,
            "source_processor_id": int(source_processor_id), "stream_name": stream_name,
            "recorded_processor": "Record Node",
            "recorded_processor_id": int(recorded_processor_id),
            "num_channels": int(n_channels),
            "channels": [{"channel_name": f"CH{i + 1}", "description": "", "identifier": "",
                          "history": "", "bit_volts": float(bit_volts), "units": "uV"}
                         for i in range(int(n_channels))]}
    oebin_path = rec / "structure.oebin"
    oebin = _read_oebin(oebin_path)
    oebin["continuous"] = [c for c in oebin.get("continuous", [])
                           if c.get("folder_name") != cont["folder_name"]] + [cont]
    atomic_write(oebin_path, json.dumps(oebin, indent=2))
    if events is not None:
        write_ttl_events(rec, events, sample_rate_hz=sample_rate_hz, folder=folder,
                         source_processor=source_processor, stream_name=stream_name)
    return folder


def _read_oebin(path: Path) -> dict:
    """``structure.oebin`` as written so far, or a new one."""
    if path.exists():
        return json.loads(path.read_text())
    return {"GUI version": GUI_VERSION, "events": [], "spikes": [], "continuous": []}


__all__ = ["TTL_EVENT_DTYPE", "full_words", "processor_folder", "write_binary_recording",
           "write_ttl_events"]
