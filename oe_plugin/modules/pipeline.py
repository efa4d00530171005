"""Open Ephys Python Processor module: the whole online pipeline in one (sweepsort).

The GUI allows one Python Processor per signal chain: this module detects spikes, classifies
them against an earlier offline sort, decodes the stimulus sweep index from the TTL lines and
keeps per-unit statistics (time bins, sweep conditions) in
``<recording_dir>/sweepsort/online_stats.bin`` for ``sweepsort monitor``. Settings:
``pipeline.toml``
next to this file or ``$SWEEPSORT_CONFIG`` (every key: ``pipeline.example.toml``).
"""

import oe_pyprocessor  # noqa: F401  - the GUI's embedded module; must be imported at top level

from oe_plugin.online.pipeline import PipelineModule


class PyProcessor(PipelineModule):
    """The class the Python Processor instantiates: ``PyProcessor(processor, channels, fs)``."""

    def __init__(self, processor, num_channels, sample_rate):
        super().__init__(processor, num_channels, sample_rate, __file__)
