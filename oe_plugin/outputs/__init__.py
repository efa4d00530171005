"""Files the online modules write under the recording directory while recording."""

from oe_plugin.outputs.spike_file import SPIKE_DTYPE, SpikeFileWriter

__all__ = ["SPIKE_DTYPE", "SpikeFileWriter"]
