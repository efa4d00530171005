"""Parameter declarations: each stimulus says which parameters it takes, their type and range.

Names carry their unit (``sf_cpd`` cycles/deg, ``tf_hz``, ``speed_dps`` deg/s, ``size_deg``,
``*_s`` seconds, ``*_lum`` linear luminance 0..1 where 0 is black and 1 white after gamma
correction). :mod:`stimulus.validate` checks a script against these declarations before any
window opens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One parameter.

    kind : float, int, str, bool, or tuple (a list of integers).
    default : value used when the script does not give one (``None``: required).
    doc : one line with the unit.
    lo, hi : inclusive numeric bounds (``None``: unbounded).
    choices : allowed strings.
    static_only : may only appear in ``static`` (it cannot change between sweeps).
    """

    kind: type
    default: Any
    doc: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    static_only: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"expected a number, got {value!r}"
            if not math.isfinite(value):
                return f"expected a finite number, got {value!r}"
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer, got {value!r}"
        elif self.kind is bool:
            if not isinstance(value, bool):
                return f"expected true or false, got {value!r}"
        elif self.kind is tuple:
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                return f"expected a list of integers, got {value!r}"
            return None
        elif self.kind is str:
            if not isinstance(value, str):
                return f"expected a string, got {value!r}"
            if self.choices and value not in self.choices:
                return f"{value!r} is not one of {', '.join(map(repr, self.choices))}"
        if self.kind in (int, float):
            if self.lo is not None and value < self.lo:
                return f"must be >= {self.lo:g}, got {value!r}"
            if self.hi is not None and value > self.hi:
                return f"must be <= {self.hi:g}, got {value!r}"
        return None


COMMON = {
    "sweep_s": Param(float, 1.0, "stimulus duration of each sweep, s", 0.0, 3600.0),
    "postsweep_s": Param(float, 0.0, "background after each sweep, s", 0.0, 3600.0),
    "bg_lum": Param(float, 0.5, "background luminance, 0..1", 0.0, 1.0),
    "x_deg": Param(float, 0.0, "stimulus centre right of the screen centre, deg", -89.0, 89.0),
    "y_deg": Param(float, 0.0, "stimulus centre above the screen centre, deg", -89.0, 89.0),
}
"""Parameters every stimulus takes (dynamic)."""


def frames(sec: float, refresh_hz: float) -> int:
    """Seconds -> whole refreshes: ``round(sec * refresh_hz)``, at least 1 when ``sec > 0``."""
    if sec <= 0:
        return 0
    return max(1, int(round(sec * refresh_hz)))
