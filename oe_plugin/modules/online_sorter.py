"""Open Ephys Python Processor module: online template matching (sweepsort).

Load this file as the Python Processor's script. Settings come from ``online_sorter.toml`` next
to it, or from the file named by ``$SWEEPSORT_CONFIG`` (``online_sorter.example.toml`` lists
every key). ``[match] sort_dir`` names a folder written by ``sweepsort sort`` on an earlier
recording (sort it with ``[preprocess] filter = "causal"``). Classified spikes go to
``<recording_dir>/sweepsort/online_spikes_NNN.bin`` while recording
(``offline.read_online_spikes``, field ``unit``); chosen units can drive TTL lines.
"""

import oe_pyprocessor  # noqa: F401  - the GUI's embedded module; must be imported at top level

from oe_plugin.online.sorter_module import OnlineSorterModule


class PyProcessor(OnlineSorterModule):
    """The class the Python Processor instantiates: ``PyProcessor(processor, channels, fs)``."""

    def __init__(self, processor, num_channels, sample_rate):
        super().__init__(processor, num_channels, sample_rate, __file__)
