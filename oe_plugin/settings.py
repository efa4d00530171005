"""Settings of the detection chain (TOML sections ``[filter]``, ``[detect]``, ``[ttl]``).

Defaults and the measurements behind them are in docs/detection.md. Every field name carries
its unit; ``check(section)`` raises :class:`~oe_plugin.config.SettingsError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from oe_plugin.config import choice, require

BAND_LOW_HZ = 300.0
BAND_HIGH_HZ = 6000.0
BAND_ORDER = 2
"""The default band-pass, online and offline: 300-6000 Hz, a 2nd-order Butterworth prototype
(the Open Ephys GUI's Bandpass Filter defaults; :func:`oe_plugin.kernels.bandpass.design_bandpass`
turns it into sections)."""


@dataclass(frozen=True)
class FilterSettings:
    """Causal Butterworth band-pass (the Open Ephys GUI's Bandpass Filter with order 2)."""

    low_hz: float = BAND_LOW_HZ
    high_hz: float = BAND_HIGH_HZ
    order: int = BAND_ORDER
    enabled: bool = True
    write_downstream: bool = False
    """False: data passes downstream unchanged; True: replaced by the filtered signal."""

    def check(self, section: str = "filter", sample_rate_hz: float | None = None) -> None:
        require(self.low_hz > 0, f"{section}.low_hz", f"must be > 0 Hz, got {self.low_hz}")
        require(
            self.high_hz > self.low_hz,
            f"{section}.high_hz",
            f"must be above low_hz ({self.low_hz} Hz), got {self.high_hz}",
        )
        if sample_rate_hz is not None:
            require(
                self.high_hz < sample_rate_hz / 2,
                f"{section}.high_hz",
                f"must be below half the sample rate ({sample_rate_hz / 2:g} Hz), "
                f"got {self.high_hz}",
            )
        require(1 <= self.order <= 8, f"{section}.order", f"must be 1..8, got {self.order}")


@dataclass(frozen=True)
class DetectSettings:
    """Threshold detection with spatio-temporal lockout (the seed's two detectors)."""

    method: str = choice("bipolar", "multiphasic", default="bipolar")
    threshold_mad: float = 4.5
    """Threshold as a multiple of the noise (median(|x|)/0.6745)."""
    threshold_uv: float = 0.0
    """Fixed threshold in µV (magnitude); > 0 overrides the noise rule on every channel."""
    threshold_floor_uv: float = 0.0
    """Lowest threshold the noise rule may give (µV); the seed used 40."""
    polarity: str = choice("negative", "positive", "both", default="negative")
    lockout_us: float = 300.0
    lockout_radius_um: float = 175.0
    probe: str = "single"
    """'single' (no spatial coupling), a shipped layout name, or a probeinterface JSON path."""
    phase_window_us: float = 500.0
    """multiphasic: the opposite phase must come within ± this window of the peak."""
    phase2_fraction: float = 0.25
    """multiphasic: the opposite phase must reach this fraction of the first phase's size."""
    noise_init_ms: float = 250.0
    noise_window_ms: float = 250.0
    noise_history: int = 8
    noise_decimate: int = 8

    def check(self, section: str = "detect") -> None:
        require(
            self.threshold_mad > 0,
            f"{section}.threshold_mad",
            f"must be > 0, got {self.threshold_mad}",
        )
        require(
            self.threshold_uv >= 0,
            f"{section}.threshold_uv",
            f"must be >= 0 µV (a magnitude; the sign comes from polarity), got {self.threshold_uv}",
        )
        require(
            self.threshold_floor_uv >= 0,
            f"{section}.threshold_floor_uv",
            f"must be >= 0 µV, got {self.threshold_floor_uv}",
        )
        require(
            0 < self.lockout_us <= 10_000,
            f"{section}.lockout_us",
            f"must be in (0, 10000] µs, got {self.lockout_us}",
        )
        require(
            self.lockout_radius_um >= 0,
            f"{section}.lockout_radius_um",
            f"must be >= 0 µm, got {self.lockout_radius_um}",
        )
        require(
            0 < self.phase_window_us <= 5_000,
            f"{section}.phase_window_us",
            f"must be in (0, 5000] µs, got {self.phase_window_us}",
        )
        require(
            0 < self.phase2_fraction <= 1,
            f"{section}.phase2_fraction",
            f"must be in (0, 1], got {self.phase2_fraction}",
        )
        require(
            1 <= self.noise_init_ms <= 60_000,
            f"{section}.noise_init_ms",
            f"must be in [1, 60000] ms, got {self.noise_init_ms}",
        )
        require(
            1 <= self.noise_window_ms <= 60_000,
            f"{section}.noise_window_ms",
            f"must be in [1, 60000] ms, got {self.noise_window_ms}",
        )
        require(
            1 <= self.noise_history <= 1000,
            f"{section}.noise_history",
            f"must be in [1, 1000], got {self.noise_history}",
        )
        require(
            1 <= self.noise_decimate <= 64,
            f"{section}.noise_decimate",
            f"must be in [1, 64], got {self.noise_decimate}",
        )


@dataclass(frozen=True)
class TtlSettings:
    """TTL output on detection through the Python Processor's event channel."""

    line: int = -1
    """0-based TTL line to drive; -1 disables."""
    pulse: bool = True
    """True: line high in the block of a detection, low at the next block without one.
    False: the line toggles at every block that holds detections."""

    def check(self, section: str = "ttl") -> None:
        require(
            -1 <= self.line <= 255,
            f"{section}.line",
            f"must be -1 (off) or 0..255, got {self.line}",
        )
