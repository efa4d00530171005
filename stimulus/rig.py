"""Per-rig configuration (TOML): screen geometry, refresh rate, gamma, timing, TTL protocol.

Looked up as ``--config PATH``, else ``$SWEEPSTIM_CONFIG``, else ``~/.config/sweepstim/rig.toml``
if it exists, else the documented defaults below. Sections::

    [screen]      ScreenSettings     (geometry, refresh, gamma, which monitor)
    [timing]      TimingSettings     (drop threshold, refresh check, photodiode patch)
    [protocol]    oe_plugin.protocol.spec.ProtocolSettings (the TTL encoding; refresh_hz is
                  taken from [screen])
    [manual_bar], [manual_grating]   saved by ``sweepstim manual`` (plain tables)

Every key is checked: unknown keys and sections are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from oe_plugin.config import check_sections, choice, from_table, load_toml, require
from oe_plugin.formats.atomic import atomic_write
from oe_plugin.protocol.spec import ProtocolSettings
from stimulus.geometry import Geometry

CONFIG_ENV_VAR = "SWEEPSTIM_CONFIG"
DEFAULT_CONFIG = Path("~/.config/sweepstim/rig.toml")
SECTIONS = ("screen", "timing", "protocol", "manual_bar", "manual_grating")


@dataclass(frozen=True)
class ScreenSettings:
    """The stimulus monitor (defaults: the seed lab's 200 Hz CRT)."""

    width_cm: float = 36.3
    height_cm: float = 27.2
    distance_cm: float = 57.0
    width_px: int = 800
    height_px: int = 600
    refresh_hz: float = 200.0
    """Configured refresh rate; measured at start and compared (see [timing])."""
    gamma: float = 1.0
    """Monitor gamma (``sweepstim gamma-fit``); 1.0 = no correction."""
    screen_index: int = 0
    """Which monitor (pyglet's display order); ``--screen`` overrides."""
    fullscreen: bool = True

    def check(self, section: str = "screen") -> None:
        for key in ("width_cm", "height_cm", "distance_cm"):
            v = getattr(self, key)
            require(math.isfinite(v) and v > 0, f"{section}.{key}", f"must be > 0 cm, got {v}")
        for key in ("width_px", "height_px"):
            v = getattr(self, key)
            require(16 <= v <= 16384, f"{section}.{key}", f"must be 16..16384 px, got {v}")
        require(20 <= self.refresh_hz <= 1000, f"{section}.refresh_hz",
                f"must be 20..1000 Hz, got {self.refresh_hz}")
        require(0.2 <= self.gamma <= 6, f"{section}.gamma", f"must be 0.2..6, got {self.gamma}")
        require(self.screen_index >= 0, f"{section}.screen_index", "must be >= 0")

    def geometry(self) -> Geometry:
        return Geometry(self.width_cm, self.height_cm, self.width_px, self.height_px,
                        self.distance_cm)


@dataclass(frozen=True)
class TimingSettings:
    """Frame timing checks and the photodiode patch."""

    drop_threshold: float = 1.2
    """A flip interval longer than this many periods counts as a dropped frame."""
    refresh_tolerance: float = 0.005
    """Refuse to start when the measured refresh differs from the configured by more than
    this fraction (``--allow-refresh-mismatch`` only warns)."""
    measure_s: float = 1.0
    """How long the refresh rate is measured before the experiment, s (``measure_sec`` in rig
    configs written before sweepsort named seconds ``_s`` is read as this)."""
    photodiode: bool = True
    """Draw a patch in a corner that alternates black/white every refresh."""
    photodiode_size_px: int = 40
    photodiode_corner: str = choice("bottom-left", "bottom-right", "top-left", "top-right",
                                    default="bottom-right")
    priority: bool = True
    """Try to raise the process priority (real-time scheduling where allowed)."""

    def check(self, section: str = "timing") -> None:
        require(1.05 <= self.drop_threshold <= 3, f"{section}.drop_threshold",
                f"must be 1.05..3 periods, got {self.drop_threshold}")
        require(0 < self.refresh_tolerance <= 0.2, f"{section}.refresh_tolerance",
                f"must be in (0, 0.2], got {self.refresh_tolerance}")
        require(0.1 <= self.measure_s <= 30, f"{section}.measure_s",
                f"must be 0.1..30 s, got {self.measure_s}")
        require(4 <= self.photodiode_size_px <= 1000, f"{section}.photodiode_size_px",
                f"must be 4..1000 px, got {self.photodiode_size_px}")


@dataclass(frozen=True)
class RigSettings:
    """Everything read from the rig config."""

    screen: ScreenSettings = field(default_factory=ScreenSettings)
    timing: TimingSettings = field(default_factory=TimingSettings)
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    manual_bar: dict = field(default_factory=dict)
    manual_grating: dict = field(default_factory=dict)
    path: str | None = None

    def with_screen(self, **changes) -> RigSettings:
        screen = dataclasses.replace(self.screen, **changes)
        screen.check()
        protocol = dataclasses.replace(self.protocol, refresh_hz=screen.refresh_hz)
        return dataclasses.replace(self, screen=screen, protocol=protocol)


OLD_TIMING_KEYS = {"measure_sec": "measure_s"}
"""Keys of [timing] renamed since; an old config still reads."""


def _renamed(table: dict | None, old_keys: dict, section: str) -> dict:
    """``table`` with old key names replaced by the new ones (both given: an error)."""
    out = dict(table or {})
    for old, new in old_keys.items():
        if old in out:
            if new in out:
                from oe_plugin.config import SettingsError

                raise SettingsError(f"{section}.{old}: the old name of {section}.{new}; give one")
            out[new] = out.pop(old)
    return out


def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    """The rig config in use: ``explicit``, ``$SWEEPSTIM_CONFIG``, or the user default."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        return Path(env)
    default = DEFAULT_CONFIG.expanduser()
    return default if default.exists() else None


def load_rig(path: str | os.PathLike | None = None) -> RigSettings:
    """Load and check the rig config (``None``: :func:`find_config`, else defaults)."""
    path = find_config(path)
    table = load_toml(path) if path is not None else {}
    check_sections(table, SECTIONS, where=str(path) if path else "rig config")
    screen = from_table(ScreenSettings, table.get("screen"), "screen")
    timing = from_table(TimingSettings, _renamed(table.get("timing"), OLD_TIMING_KEYS, "timing"),
                        "timing")
    proto_table = dict(table.get("protocol") or {})
    if "refresh_hz" in proto_table:
        from oe_plugin.config import SettingsError

        raise SettingsError("protocol.refresh_hz: set the refresh rate in [screen] refresh_hz")
    proto_table["refresh_hz"] = screen.refresh_hz
    protocol = from_table(ProtocolSettings, proto_table, "protocol")
    return RigSettings(screen, timing, protocol, dict(table.get("manual_bar") or {}),
                       dict(table.get("manual_grating") or {}),
                       str(path) if path is not None else None)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {v!r} to TOML")


def update_section(path: str | os.PathLike, section: str, values: dict) -> None:
    """Set ``values`` (scalars) in ``[section]`` of a TOML file, keeping everything else
    (comments included); creates the file or section when missing. Written atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")
    start = next((i for i, ln in enumerate(lines)
                  if (m := header.match(ln)) and m.group(1).strip() == section), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append(f"[{section}]")
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if header.match(lines[i])), len(lines))
    pending = dict(values)
    for i in range(start + 1, end):
        m = re.match(r"^(\s*)([A-Za-z0-9_]+)\s*=", lines[i])
        if m and m.group(2) in pending:
            lines[i] = f"{m.group(1)}{m.group(2)} = {_toml_value(pending.pop(m.group(2)))}"
    insert = [f"{k} = {_toml_value(v)}" for k, v in pending.items()]
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    lines[end:end] = insert
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "\n".join(lines) + "\n")
