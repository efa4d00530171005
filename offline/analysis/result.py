"""The analysis-result pattern (neuropy's parameters -> ``calc()`` -> ``plot()``, made functional).

An analysis is a plain function ``compute_x(inputs..., **settings) -> XResult``. The result keeps
its inputs (references to arrays already in memory: nothing is reloaded) and its settings, so::

    acg = compute_autocorrelograms(trains, bin_ms=1.0, window_ms=50.0)
    acg2 = acg.recompute(bin_ms=0.5)        # same spikes, new settings
    acg.plot()                              # matplotlib Axes (headless-safe)
"""

from __future__ import annotations

from typing import Any, ClassVar


class AnalysisResult:
    """Base of every result: ``settings`` (dict), ``inputs`` (dict), ``recompute``, ``plot``.

    Subclasses set ``compute`` (the function that made them, as a staticmethod) and implement
    :meth:`plot`. Computed quantities are plain attributes documented on each subclass.
    """

    compute: ClassVar[Any] = None

    def __init__(self, inputs: dict, settings: dict, **values):
        self.inputs = inputs
        self.settings = dict(settings)
        for k, v in values.items():
            setattr(self, k, v)

    def recompute(self, **changes) -> AnalysisResult:
        """The same analysis on the same inputs with some settings changed."""
        unknown = set(changes) - set(self.settings)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown setting(s) {sorted(unknown)}; "
                            f"settings are {sorted(self.settings)}")
        return type(self).compute(**self.inputs, **{**self.settings, **changes})

    def plot(self, ax=None):  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _settings_text(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings.items()
                         if not hasattr(v, "__len__") or isinstance(v, str) or len(v) < 6)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._settings_text()}>"
