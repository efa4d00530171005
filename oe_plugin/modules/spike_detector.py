"""Open Ephys Python Processor module: online spike detection (sweepsort).

Load this file as the Python Processor's script. Settings come from ``spike_detector.toml``
next to it, or from the file named by ``$SWEEPSORT_CONFIG``; every key and its default is in
docs/plugin.md. Detected spikes go to ``<recording_dir>/sweepsort/online_spikes_NNN.bin``
while recording (``offline.read_online_spikes``), and optionally drive a TTL line.
"""

import oe_pyprocessor  # noqa: F401  - the GUI's embedded module; must be imported at top level

from oe_plugin.online.spike_detector import SpikeDetectorModule


class PyProcessor(SpikeDetectorModule):
    """The class the Python Processor instantiates: ``PyProcessor(processor, channels, fs)``."""

    def __init__(self, processor, num_channels, sample_rate):
        super().__init__(processor, num_channels, sample_rate, __file__)
