"""TTL output on a National Instruments digital port (optional extra: ``pip install
sweepsort[nidaq]``).

Every refresh is written as a short hardware-timed waveform: the protocol changes are laid on
a sample clock of ``rate_hz`` (default 100 kHz: 10 µs resolution) from the flip until the last
change, and generated as a finite task on ``DEVICE/portN`` (the port's line l = GUI line l).
This needs a device whose digital port supports hardware timing (X-series, e.g. PCIe-6321,
USB-6341); a static-only device is refused at open. Written against the ``nidaqmx`` API but
**not tested on hardware here**: the tests drive it with a stand-in module.
"""

from __future__ import annotations

import numpy as np

from stimulus.ttl.base import TTLBackend, TTLError
from stimulus.ttl.encoding import Changes


def waveform(changes: Changes, rate_hz: float, start_word: int) -> np.ndarray:
    """The port's samples for one refresh: uint32 (n,), sample k at k / rate_hz after the
    flip; the last sample holds the final word."""
    if not changes:
        return np.array([start_word], np.uint32)
    idx = [int(round(off * rate_hz / 1e6)) for off, _w in changes]
    out = np.empty(idx[-1] + 1, np.uint32)
    word = start_word
    prev = 0
    for k, (_off, w) in zip(idx, changes, strict=True):
        out[prev:k] = word
        word = w
        prev = k
    out[prev:] = word
    return out


class NidaqBackend(TTLBackend):
    name = "nidaq"

    def __init__(self, settings, port: str, rate_hz: float = 100_000.0):
        super().__init__(settings)
        self.port = port
        self.rate_hz = rate_hz
        self.task = None
        self.word = 0

    def open(self) -> None:
        try:
            import nidaqmx
            from nidaqmx.constants import AcquisitionType, LineGrouping
        except ImportError:
            raise TTLError("the nidaq backend needs the nidaqmx package: pip install "
                           "'sweepsort[nidaq]'") from None
        try:
            task = nidaqmx.Task()
            task.do_channels.add_do_chan(self.port,
                                         line_grouping=LineGrouping.CHAN_FOR_ALL_LINES)
            task.timing.cfg_samp_clk_timing(self.rate_hz, sample_mode=AcquisitionType.FINITE,
                                            samps_per_chan=2)
            task.write(np.array([0, 0], np.uint32), auto_start=True)
            task.wait_until_done(timeout=1.0)
            task.stop()
        except Exception as exc:  # noqa: BLE001 - any driver error means: do not start
            raise TTLError(f"NI-DAQ port {self.port} cannot do hardware-timed output at "
                           f"{self.rate_hz:g} Hz: {exc}") from None
        self._finite = AcquisitionType.FINITE
        self.task = task

    def send(self, changes: Changes, flip_time_s: float) -> None:
        super().send(changes, flip_time_s)
        if not changes:
            return
        data = waveform(changes, self.rate_hz, self.word)
        if data.size < 2:
            data = np.repeat(data, 2)
        self.word = int(data[-1])
        try:
            self.task.stop()
            self.task.timing.cfg_samp_clk_timing(self.rate_hz, sample_mode=self._finite,
                                                 samps_per_chan=int(data.size))
            self.task.write(data, auto_start=True)
        except Exception as exc:  # noqa: BLE001
            raise TTLError(f"NI-DAQ write failed: {exc}") from None

    def close(self) -> None:
        if self.task is None:
            return
        try:
            self.task.stop()
            self.task.timing.cfg_samp_clk_timing(self.rate_hz, sample_mode=self._finite,
                                                 samps_per_chan=2)
            self.task.write(np.array([0, 0], np.uint32), auto_start=True)
            self.task.wait_until_done(timeout=1.0)
        finally:
            self.task.close()
            self.task = None

    def describe(self) -> dict:
        return {"backend": self.name, "port": self.port, "rate_hz": self.rate_hz}
