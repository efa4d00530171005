"""Open Ephys Python Processor module: decode the stimulus sweep index from TTL lines (sweepsort).

Load this file as the Python Processor's script. Settings come from ``sweep_decoder.toml`` next
to it, or from the file named by ``$SWEEPSORT_CONFIG`` (sections ``[protocol]`` and
``[decoder]``; keys and defaults in ``sweep_decoder.example.toml`` and docs/ttl-protocol.md).
Decoded frames go to ``<recording_dir>/sweepsort/online_sweeps_NNN.bin`` while recording
(``offline.read_online_sweeps``); a TTL line can mark sweep onsets for other plugins.
"""

import oe_pyprocessor  # noqa: F401  - the GUI's embedded module; must be imported at top level

from oe_plugin.online.sweep_decoder import SweepDecoderModule


class PyProcessor(SweepDecoderModule):
    """The class the Python Processor instantiates: ``PyProcessor(processor, channels, fs)``."""

    def __init__(self, processor, num_channels, sample_rate):
        super().__init__(processor, num_channels, sample_rate, __file__)
