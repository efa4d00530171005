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
that for an existing recording folder; :func:`write_binary_recording` also writes a minimal
continuous stream (tests, demos, replaying a simulated session through the host simulator).
``offline.recording.open_recording(...).ttl_events()`` reads these files back (0-based lines,
``full_words`` included); open-ephys-python-tools reads everything but ``full_words``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

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
                     with_full_words: bool = True) -> Path:
    """Write ``events`` (TTL_EVENT_DTYPE, in the order the GUI received them) as one TTL event
    channel of ``recording_dir`` and register it in its ``structure.oebin`` (created if missing).

    Parameters
    ----------
    recording_dir : a Binary ``recording<N>`` folder.
    events : structured array with ``sample_number`` (int64), ``line`` (0-based), ``state``.
    sample_rate_hz : the parent stream's rate (timestamps = sample_number / rate).
    folder : processor folder, e.g. ``processor_folder("Acquisition Board", 100, "Rhythm Data")``.
    ttl_folder : ``TTL`` for the first TTL channel of the stream, ``TTL_1`` for the second...

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
        np.save(d / "full_words.npy", full_words(ev, initial_word))
    oebin_path = rec / "structure.oebin"
    oebin = (json.loads(oebin_path.read_text()) if oebin_path.exists()
             else {"GUI version": GUI_VERSION, "continuous": [], "events": [], "spikes": []})
    entry = {"folder_name": f"{folder}/{ttl_folder}/", "channel_name": channel_name,
             "description": "Digital inputs (sweepsort TTL writer)",
             "identifier": "sweepsort.ttl", "sample_rate": float(sample_rate_hz),
             "type": "int16", "source_processor": source_processor,
             "stream_name": stream_name if stream_name is not None
             else folder.split(".", 1)[-1], "initial_state": int(initial_word)}
    oebin["events"] = [e for e in oebin.get("events", []) if e.get("folder_name")
                       != entry["folder_name"]] + [entry]
    _atomic_write_text(oebin_path, json.dumps(oebin, indent=2))
    return d


def write_binary_recording(recording_dir, *, sample_rate_hz: float, n_samples: int,
                           first_sample_number: int = 0, n_channels: int = 4,
                           data_uv: np.ndarray | None = None, events: np.ndarray | None = None,
                           source_processor: str = "Acquisition Board",
                           source_processor_id: int = 100, stream_name: str = "Rhythm Data",
                           bit_volts: float = 0.195) -> str:
    """Write a minimal Open Ephys Binary ``recording<N>`` folder: one continuous stream
    (``data_uv`` float (n_channels, n_samples) µV, zeros if None) and, optionally, its TTL
    events. Returns the stream's processor folder name. Readable by open-ephys-python-tools,
    neo/spikeinterface and :func:`offline.recording.open_recording`."""
    rec = Path(recording_dir)
    folder = processor_folder(source_processor, source_processor_id, stream_name)
    d = rec / "continuous" / folder
    d.mkdir(parents=True, exist_ok=True)
    if data_uv is None:
        raw = np.zeros((int(n_samples), int(n_channels)), "<i2")
    else:
        data_uv = np.asarray(data_uv)
        n_channels, n_samples = data_uv.shape
        raw = np.clip(np.round(data_uv.T / bit_volts), -32768, 32767).astype("<i2")
    raw.tofile(d / "continuous.dat")
    sn = int(first_sample_number) + np.arange(int(n_samples), dtype=np.int64)
    np.save(d / "sample_numbers.npy", sn)
    np.save(d / "timestamps.npy", sn / float(sample_rate_hz))
    cont = {"folder_name": folder + "/", "sample_rate": float(sample_rate_hz),
            "source_processor_name": source_processor,
            "source_processor_id": int(source_processor_id), "stream_name": stream_name,
            "recorded_processor": "Record Node", "recorded_processor_id": 101,
            "num_channels": int(n_channels),
            "channels": [{"channel_name": f"CH{i + 1}", "description": "", "identifier": "",
                          "history": "", "bit_volts": float(bit_volts), "units": "uV"}
                         for i in range(int(n_channels))]}
    oebin_path = rec / "structure.oebin"
    oebin = (json.loads(oebin_path.read_text()) if oebin_path.exists()
             else {"GUI version": GUI_VERSION, "continuous": [], "events": [], "spikes": []})
    oebin["continuous"] = [c for c in oebin.get("continuous", [])
                           if c.get("folder_name") != cont["folder_name"]] + [cont]
    _atomic_write_text(oebin_path, json.dumps(oebin, indent=2))
    if events is not None:
        write_ttl_events(rec, events, sample_rate_hz=sample_rate_hz, folder=folder,
                         source_processor=source_processor, stream_name=stream_name)
    return folder


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["TTL_EVENT_DTYPE", "full_words", "processor_folder", "write_binary_recording",
           "write_ttl_events"]
