"""The Python Processor host: a faithful simulator, a native runner with the GUI's threading,
sources (synthetic, recordings), block policies and recording replay.

Main entry points: :func:`run_session` (pure Python), :func:`~.native.run_native` (real
threading, needs a C compiler), :func:`replay` (a recording through a module), :class:`Host`
(block by block).
"""

from .blocks import ExplicitBlocks, FixedBlocks, RandomBlocks, gui_block_size
from .errors import HostCrash, HostError, ModuleCallError, ModuleImportError, ModuleInitError
from .gui_api import GuiApiStandIn
from .loader import load_module
from .replay import replay
from .session import SessionReport, run_session
from .simulator import EVENT_DTYPE, Host, SpikeEvent, TtlEvent
from .sources import InjectedSpike, RecordingSource, SyntheticSource

__all__ = [
    "EVENT_DTYPE", "ExplicitBlocks", "FixedBlocks", "GuiApiStandIn", "Host", "HostCrash",
    "HostError",
    "InjectedSpike", "ModuleCallError", "ModuleImportError", "ModuleInitError", "RandomBlocks",
    "RecordingSource", "SessionReport", "SpikeEvent", "SyntheticSource", "TtlEvent",
    "gui_block_size", "load_module", "replay", "run_session",
]
