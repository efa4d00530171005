"""Read spike files of the Open Ephys legacy ("Open Ephys") format: ``*.spikes``.

Written by the GUI's ``OpenEphysFormat::writeSpike`` (Record Node, GUI 0.5/0.6): a 1024-byte
text header (``header.key = value;`` lines, e.g. ``electrode``, ``num_channels``,
``sampleRate``, ``samplesPerSpike``), then one record per spike, little-endian, packed::

    offset  type                    field
    0       uint8                   event/channel type
    1       int64                   sample number (``timestamp``)
    9       int64                   software timestamp (legacy, 0)
    17      uint16                  source processor id
    19      uint16                  n channels (n)
    21      uint16                  n samples per channel (m)
    23      uint16                  sorted id
    25      uint16                  electrode index
    27      uint16                  channel (legacy, 0)
    29      3 x uint8               colour
    32      2 x float32             PC projections
    40      uint16                  sample rate, Hz (truncated to 16 bits)
    42      n*m uint16              waveform, channel-major: value / bitVolts + 32768
    42+2nm  n float32               gain = int(1 / bitVolts) * 1000
            n int16                 thresholds, µV
            uint16                  recording number

so a record is ``42 + 2nm + 4n + 2n + 2`` bytes (216 for a stereotrode with 40 samples).

Timing (measured on the bundled GUI 0.6.7 recording, Record Node 105, every electrode):
waveform sample ``j`` equals the continuous sample numbered ``sample_number - 9 + j`` (as
open-ephys-python-tools numbers the continuous data) to within one bit (0.05 µV), i.e. the
stored sample number is that of waveform sample 9, where the negative peak usually is.
(open-ephys-python-tools 0.1.13 computes that size right but then slices the waveforms with
``-POST_BYTES // 2`` of a numpy uint16, which wraps around under numpy 2 and fails with
"cannot reshape array of size 15138 into shape (174,2,40)".)

Microvolts use the electrode's ``bitVolts`` from ``structure.openephys`` next to the file when
it is there (exact), else ``1000 / gain`` (exact only when ``1 / bitVolts`` is an integer).
The data channels of the electrode come from the Spike Detector's ``local_channels`` in
``settings.xml`` next to the file, when present.
"""

from __future__ import annotations

import os
import re
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

HEADER_BYTES = 1024
_HEADER_LINE = re.compile(r"header\.(\w+)\s*=\s*(.*?);\s*$")


class LegacySpikesError(ValueError):
    """A ``.spikes`` file is not in the layout this reader knows."""


def record_dtype(n_channels: int, n_samples: int) -> np.dtype:
    """The packed record dtype for electrodes of ``n_channels`` x ``n_samples``."""
    return np.dtype([
        ("event_type", "u1"),
        ("sample_number", "<i8"),
        ("software_timestamp", "<i8"),
        ("source_id", "<u2"),
        ("n_channels", "<u2"),
        ("n_samples", "<u2"),
        ("sorted_id", "<u2"),
        ("electrode_index", "<u2"),
        ("channel", "<u2"),
        ("color", "u1", (3,)),
        ("pc_projection", "<f4", (2,)),
        ("sample_rate_hz", "<u2"),
        ("waveform", "<u2", (n_channels, n_samples)),
        ("gain", "<f4", (n_channels,)),
        ("threshold_uv", "<i2", (n_channels,)),
        ("recording_number", "<u2"),
    ])


def read_header(path: str | os.PathLike) -> dict[str, str]:
    """The text header of a legacy Open Ephys file as ``{key: value}`` (quotes stripped)."""
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES or b"Open Ephys" not in raw:
        raise LegacySpikesError(f"{path}: not an Open Ephys legacy-format file "
                                f"(no 1024-byte 'Open Ephys Data Format' header)")
    header = {}
    for line in raw.decode("latin-1").splitlines():
        m = _HEADER_LINE.match(line.strip())
        if m:
            header[m.group(1)] = m.group(2).strip().strip("'")
    return header


def read_legacy_spikes(path: str | os.PathLike, recording_number: int | None = None) -> dict:
    """Read one ``*.spikes`` file.

    Parameters
    ----------
    path : path
        The ``.spikes`` file.
    recording_number : int, optional
        Keep only spikes of this recording (0-based, as stored); default: all.

    Returns
    -------
    dict with
        ``sample_numbers`` : np.ndarray (n_spikes,) int64 — sample number of each spike
        (the waveform's first sample, in the stream's sample count);
        ``electrode`` : str — the electrode name (e.g. "Stereotrode 1");
        ``waveforms_uv`` : np.ndarray (n_spikes, n_channels, n_samples) float32, µV;
        ``sorted_id`` : np.ndarray (n_spikes,) int64 — 0 = unsorted;
        ``channels`` : np.ndarray (n_channels,) int64 of 0-based data channels, or None when
        ``settings.xml`` does not say;
        ``thresholds_uv`` : np.ndarray (n_spikes, n_channels) float32;
        ``recording_number`` : np.ndarray (n_spikes,) int64;
        ``sample_rate_hz`` : float; ``bit_volts`` : np.ndarray (n_channels,) float64;
        ``header`` : dict of the text header.

    Raises
    ------
    LegacySpikesError
        Not a legacy spike file, or records of varying layout.
    """
    path = Path(path)
    header = read_header(path)
    electrode = header.get("electrode", path.stem)
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(HEADER_BYTES)
        first = f.read(23)
    if len(first) < 23:  # no spike at all
        n_channels = int(header.get("num_channels", 1))
        n_samples = int(header.get("samplesPerSpike", 40))
    else:
        n_channels = int.from_bytes(first[19:21], "little")
        n_samples = int.from_bytes(first[21:23], "little")
    if n_channels < 1:
        raise LegacySpikesError(f"{path}: record says 0 channels")
    dtype = record_dtype(n_channels, n_samples)
    n_spikes, tail = divmod(size - HEADER_BYTES, dtype.itemsize)
    if tail:
        warnings.warn(f"{path}: dropped a partial trailing record ({tail} bytes)", stacklevel=2)
    records = np.fromfile(path, dtype=dtype, count=n_spikes, offset=HEADER_BYTES)
    if np.any(records["n_channels"] != n_channels) or np.any(records["n_samples"] != n_samples):
        raise LegacySpikesError(f"{path}: records of varying size (channels or samples per "
                                f"spike change within the file); this reader needs one layout")
    if recording_number is not None:
        records = records[records["recording_number"] == recording_number]

    bit_volts = _bit_volts_from_structure(path, electrode, n_channels)
    if bit_volts is None:
        gains = records["gain"][0] if records.size else np.full(n_channels, np.nan)
        bit_volts = 1000.0 / gains.astype(np.float64)
    waveforms_uv = records["waveform"].astype(np.float32)
    waveforms_uv -= 32768.0
    waveforms_uv *= bit_volts.astype(np.float32)[None, :, None]
    sample_rate = header.get("sampleRate")
    return {
        "sample_numbers": records["sample_number"].astype(np.int64),
        "electrode": electrode,
        "waveforms_uv": waveforms_uv,
        "sorted_id": records["sorted_id"].astype(np.int64),
        "channels": _channels_from_settings(path, electrode),
        "thresholds_uv": records["threshold_uv"].astype(np.float32),
        "recording_number": records["recording_number"].astype(np.int64),
        "sample_rate_hz": float(sample_rate) if sample_rate else float("nan"),
        "bit_volts": np.asarray(bit_volts, dtype=np.float64),
        "header": header,
    }


def _bit_volts_from_structure(path: Path, electrode: str, n_channels: int):
    """``bitVolts`` of this electrode from ``structure*.openephys`` next to it, or None."""
    for xml_path in sorted(path.parent.glob("structure*.openephys")):
        try:
            root = ElementTree.parse(xml_path).getroot()
        except (ElementTree.ParseError, OSError):
            continue
        for el in root.iter("SPIKECHANNEL"):
            if el.get("filename") == path.name or el.get("name") == electrode:
                try:
                    return np.full(n_channels, float(el.get("bitVolts")))
                except (TypeError, ValueError):
                    return None
    return None


def _channels_from_settings(path: Path, electrode: str):
    """0-based data channels of ``electrode`` from the Spike Detector in ``settings*.xml``."""
    for xml_path in sorted(path.parent.glob("settings*.xml")):
        try:
            root = ElementTree.parse(xml_path).getroot()
        except (ElementTree.ParseError, OSError):
            continue
        for el in root.iter("SPIKE_CHANNEL"):
            local = el.get("local_channels")
            if el.get("name") == electrode and local:
                try:
                    return np.array([int(c) - 1 for c in local.split(",")], dtype=np.int64)
                except ValueError:
                    return None
    return None
