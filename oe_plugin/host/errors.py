"""What can go wrong when the Python Processor host runs a module, one class per GUI outcome.

=====================  ==========================================================  ===========
exception              what the real GUI does                                       native exit
=====================  ==========================================================  ===========
ModuleImportError      import fails or no ``PyProcessor``: "No Module Loaded"       3
ModuleInitError        ``PyProcessor(...)`` raised: modal dialog, module disabled   4
ModuleCallError        start/stop acquisition/recording raised: dialog, disabled    12
HostCrash              an exception escaped ``process()``, ``handle_ttl_event()``    11
                       or ``handle_spike()``: the audio thread stalls silently
=====================  ==========================================================  ===========
"""

from __future__ import annotations


class HostError(RuntimeError):
    """Base class: the module did something the GUI's Python Processor does not survive."""


class ModuleImportError(HostError):
    """The script could not be imported by its file stem, or defines no ``PyProcessor``."""


class ModuleInitError(HostError):
    """``PyProcessor(processor, num_channels, sample_rate)`` raised (``__cause__`` holds it)."""


class ModuleCallError(HostError):
    """``start/stop_acquisition`` or ``start/stop_recording`` raised (``__cause__`` holds it).

    Attributes: ``call`` (the method name).
    """

    def __init__(self, message: str, call: str):
        super().__init__(message)
        self.call = call


class HostCrash(HostError):
    """An exception escaped a callback that runs on the audio thread.

    In the GUI this stalls acquisition for good (data stops, the GUI still says ACQUIRE).
    Attributes: ``call`` (``"process"``, ``"handle_ttl_event"`` or ``"handle_spike"``),
    ``block_index`` and ``sample_number`` (first sample of the block); ``__cause__`` is the
    module's exception.
    """

    def __init__(self, message: str, call: str, block_index: int = -1, sample_number: int = -1):
        super().__init__(message)
        self.call = call
        self.block_index = block_index
        self.sample_number = sample_number
