"""TTL output through a microcontroller on a USB serial port (pyserial).

The host sends each refresh's protocol changes right after the flip; the microcontroller
(sketch: ``stimulus/firmware/sweepstim_ttl/sweepstim_ttl.ino``) sets its output pins at the
given offsets from the moment the message arrived, so the whole refresh is delayed by the USB
latency (constant to well under a millisecond on a full-speed CDC device; calibrate with the
photodiode) but the protocol's internal timing (strobe width, serial bit times) is exact to the
microcontroller's clock.

Byte protocol (version 1; little-endian; ``chk`` = sum of the bytes after 0xA5, mod 256)::

    host -> MCU   A5 'H'                              hello; MCU answers "SWEEPSTIM-TTL 1\\n"
    host -> MCU   A5 'F' n {off_us:u16 word:u16}*n chk   one refresh: at off_us after receipt,
                                                      set the port to word (bit l = GUI line l)
    host -> MCU   A5 'Z' chk                          all lines low; MCU answers 'z'
    MCU -> host   'E' c                               an error: c = 'C' checksum, 'O' overrun
                                                      (a refresh arrived before the previous one
                                                      finished), 'S' lost sync byte

Lines 0..15 only (the word is 16 bits; the sketch maps each to a pin). Errors are read every
refresh and counted in the session file; an unanswered hello stops the run before it starts.
"""

from __future__ import annotations

import struct
import time

from stimulus.ttl.base import TTLBackend, TTLError
from stimulus.ttl.encoding import Changes

SYNC = 0xA5
HELLO_REPLY = b"SWEEPSTIM-TTL 1"
ERROR_CODES = {ord("C"): "checksum error", ord("O"): "overrun (refresh sent before the "
               "previous one finished)", ord("S"): "lost sync byte"}


def frame_message(changes: Changes) -> bytes:
    """Encode one refresh (``((offset_us, word), ...)``) as the 'F' message."""
    if len(changes) > 255:
        raise TTLError(f"{len(changes)} changes in one refresh (max 255)")
    body = bytearray(b"F")
    body.append(len(changes))
    for offset_us, word in changes:
        off = int(round(offset_us))
        if not 0 <= off <= 0xFFFF or not 0 <= word <= 0xFFFF:
            raise TTLError(f"change ({offset_us} µs, {word:#x}) does not fit the serial message")
        body += struct.pack("<HH", off, word)
    body.append(sum(body) & 0xFF)
    return bytes([SYNC]) + bytes(body)


def reset_message() -> bytes:
    return bytes([SYNC, ord("Z"), ord("Z")])


class SerialBackend(TTLBackend):
    name = "serial"

    def __init__(self, settings, port: str, baud: int = 115200, hello_timeout_s: float = 3.0):
        super().__init__(settings)
        self.port = port
        self.baud = baud
        self.hello_timeout_s = hello_timeout_s
        self.ser = None
        self.firmware = ""

    def open(self) -> None:
        import serial

        if self.settings.line_mask() >> 16:
            raise TTLError("the serial backend drives lines 0..15 only: move the protocol "
                           "lines ([protocol] in the rig config)")
        try:
            self.ser = serial.Serial(self.port, self.baud, timeout=0.05, write_timeout=0.5)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TTLError(f"cannot open serial port {self.port}: {exc}") from None
        # boards that reset when the port opens need a moment: repeat the hello until answered
        deadline = time.monotonic() + self.hello_timeout_s
        buf = b""
        while time.monotonic() < deadline:
            self.ser.write(bytes([SYNC, ord("H")]))
            end = time.monotonic() + 0.25
            while time.monotonic() < end:
                buf += self.ser.read(64)
                if HELLO_REPLY in buf:
                    line = buf[buf.index(HELLO_REPLY):].split(b"\n")[0]
                    self.firmware = line.decode(errors="replace").strip()
                    self.ser.reset_input_buffer()
                    self.send_reset()
                    return
        self.ser.close()
        self.ser = None
        raise TTLError(f"no sweepstim TTL firmware answered on {self.port} within "
                       f"{self.hello_timeout_s:g} s (flash stimulus/firmware/sweepstim_ttl)")

    def send(self, changes: Changes, flip_time_s: float) -> None:
        super().send(changes, flip_time_s)
        if not changes:
            return
        try:
            self.ser.write(frame_message(changes))
        except Exception as exc:  # noqa: BLE001 - a write failure ends the run loudly
            raise TTLError(f"serial write to {self.port} failed: {exc}") from None

    def send_reset(self) -> None:
        self.ser.write(reset_message())

    def poll_errors(self) -> list[str]:
        if self.ser is None or not self.ser.in_waiting:
            return []
        data = self.ser.read(self.ser.in_waiting)
        out = []
        for i, b in enumerate(data):
            if b == ord("E") and i + 1 < len(data):
                out.append(ERROR_CODES.get(data[i + 1], f"error {data[i + 1]:#x}"))
        self.errors += out
        return out

    def close(self) -> None:
        if self.ser is None:
            return
        try:
            self.send_reset()
            self.ser.flush()
            time.sleep(0.01)
            self.poll_errors()
        finally:
            self.ser.close()
            self.ser = None

    def describe(self) -> dict:
        return {"backend": self.name, "port": self.port, "baud": self.baud,
                "firmware": self.firmware}
