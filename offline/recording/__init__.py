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

The package holds one module per format (``binary``, ``legacy``, ``tools`` for NWB, ``flat``),
the stream base class (``base``) and the discovery (``discovery``); import from
``offline.recording``.
"""

from offline.recording.base import (
    TTL_DTYPE,
    TTL_WORDS_DTYPE,
    ContinuousRecording,
    RecordingError,
)
from offline.recording.binary import BinaryStream
from offline.recording.discovery import open_recording
from offline.recording.flat import FlatBinary, open_flat_binary
from offline.recording.legacy import LegacyStream
from offline.recording.tools import ToolsStream

__all__ = [
    "TTL_DTYPE",
    "TTL_WORDS_DTYPE",
    "BinaryStream",
    "ContinuousRecording",
    "FlatBinary",
    "LegacyStream",
    "RecordingError",
    "ToolsStream",
    "open_flat_binary",
    "open_recording",
]
