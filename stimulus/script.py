"""Experiment scripts: what a user writes, and how sweepstim loads it.

A script is a short Python file that assigns one :class:`Experiment` to the name
``experiment``; it is the only user code sweepstim runs. Example (drifting gratings, the seed
lab's headline experiment)::

    from stimulus.script import Blanks, Experiment, Runs, Variable

    experiment = Experiment(
        stimulus="grating",
        static=dict(mask="circle", wave="sine"),
        dynamic=dict(
            ori_deg=Variable(range(0, 360, 30), dim=0, shuffle=True),
            sf_cpd=Variable([0.05, 0.1, 0.2, 0.4, 0.8, 1.6], dim=1, shuffle=True),
            tf_hz=Variable([0.5, 1, 2, 5], dim=2, shuffle=True),
            diameter_deg=20.0, contrast=1.0, sweep_s=4.0,
        ),
        runs=Runs(4, reshuffle=True),
        blanks=Blanks(every=10, duration_s=4.0),
    )

*Static* parameters hold for the whole experiment (a mask shape, a movie file, a grid size);
*dynamic* parameters may change from sweep to sweep: a plain value is the same in every sweep,
a :class:`Variable` lists the values it takes (see :mod:`stimulus.sweeptable` for how variables
combine). Everything random is drawn from the experiment's seed, never inside the script.
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Iterable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any


class ScriptError(ValueError):
    """A script could not be loaded or is malformed; ``line`` is its 1-based line (0: unknown)."""

    def __init__(self, message: str, line: int = 0, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.path = path

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}: " if self.path and self.line else (
            f"{self.path}: " if self.path else "")
        return where + self.message


@dataclass(frozen=True)
class Variable:
    """A dynamic parameter that takes several values.

    Parameters
    ----------
    values : iterable of scalars (numbers, strings, bools), non-empty, no None
    dim : int
        Dimension number. Variables with the same ``dim`` co-vary (zipped: same length, same
        ``shuffle``); different dimensions combine combinatorially, the lowest ``dim`` varying
        slowest. Any integers work: they are renumbered 0..D-1 in sorted order.
    shuffle : bool
        Randomise this dimension's order (from the experiment seed).
    """

    values: tuple
    dim: int = 0
    shuffle: bool = False

    def __init__(self, values: Iterable, dim: int = 0, shuffle: bool = False):
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ScriptError(f"Variable values must be a list of values, got {values!r}")
        vals = tuple(_plain(v) for v in values)
        if not vals:
            raise ScriptError("Variable has no values")
        if any(v is None for v in vals):
            raise ScriptError("Variable values must not contain None")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise ScriptError(f"Variable dim must be an integer, got {dim!r}")
        if not isinstance(shuffle, bool):
            raise ScriptError(f"Variable shuffle must be true or false, got {shuffle!r}")
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "dim", dim)
        object.__setattr__(self, "shuffle", shuffle)

    def to_dict(self) -> dict:
        return {"values": list(self.values), "dim": self.dim, "shuffle": self.shuffle}


@dataclass(frozen=True)
class Runs:
    """Repeat the whole table ``n`` times; ``reshuffle`` draws a new order for every run
    (otherwise the first run's order is repeated)."""

    n: int = 1
    reshuffle: bool = False

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ScriptError(f"Runs(n) must be a positive integer, got {self.n!r}")


@dataclass(frozen=True)
class Blanks:
    """Blank sweeps (uniform background, sweep index 65535 on the TTL lines).

    ``every=T``: every T-th sweep is a blank (T-1 stimulus sweeps, then a blank; T >= 2).
    ``shuffle=True``: the same number of blanks at random positions instead.
    ``duration_s``: duration of one blank sweep, s (``sec=``, its old name, still works).
    """

    every: int = 10
    duration_s: float = 1.0
    shuffle: bool = False
    sec: InitVar[float | None] = None

    def __post_init__(self, sec):
        if sec is not None:
            object.__setattr__(self, "duration_s", sec)
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 2:
            raise ScriptError(f"Blanks(every) must be an integer >= 2, got {self.every!r}")
        d = self.duration_s
        if not _is_number(d) or not d > 0 or not math.isfinite(d):
            raise ScriptError(f"Blanks(duration_s) must be a positive number of seconds, got {d!r}")


@dataclass
class Experiment:
    """One experiment: the stimulus kind, its parameters, and how sweeps are sequenced.

    Parameters
    ----------
    stimulus : str
        One of ``stimulus.stimuli.KINDS`` (grating, bar, sparse_noise, msequence, movie, blank).
    static : dict
        Experiment-wide parameters (name -> value).
    dynamic : dict
        Per-sweep parameters (name -> value or :class:`Variable`); ``sweep_s`` and
        ``postsweep_s`` are dynamic parameters too.
    runs, blanks : Runs, Blanks or None
    preexp_s, postexp_s : float
        Background shown before the first and after the last sweep, s. Scripts written before
        the ``_sec`` -> ``_s`` rename still run: ``preexp_sec``/``postexp_sec`` here and the
        parameters ``sweep_sec``/``postsweep_sec`` are read under their new names
        (:data:`OLD_NAMES`).
    seed : int or None
        Fixed seed; the command line's ``--seed`` overrides it; if neither, one is drawn from
        the OS and recorded in the session file.
    """

    stimulus: str
    static: dict = field(default_factory=dict)
    dynamic: dict = field(default_factory=dict)
    runs: Runs = field(default_factory=Runs)
    blanks: Blanks | None = None
    preexp_s: float = 1.0
    postexp_s: float = 1.0
    seed: int | None = None
    preexp_sec: InitVar[float | None] = None
    postexp_sec: InitVar[float | None] = None

    def __post_init__(self, preexp_sec, postexp_sec):
        if preexp_sec is not None:
            self.preexp_s = preexp_sec
        if postexp_sec is not None:
            self.postexp_s = postexp_sec
        self.static = renamed_params(self.static)
        self.dynamic = renamed_params(self.dynamic)


OLD_NAMES = {"sweep_sec": "sweep_s", "postsweep_sec": "postsweep_s"}
"""Sweep parameters renamed since (old name -> new); an old script or session file reads under
the new names."""


def renamed_params(params) -> dict:
    """``params`` (name -> value) with old names (:data:`OLD_NAMES`) replaced, order kept; a
    name given twice (old and new) is a :class:`ScriptError`."""
    if not isinstance(params, dict):
        return params
    out = {}
    for k, v in params.items():
        new = OLD_NAMES.get(k, k)
        if new in out or (new != k and new in params):
            raise ScriptError(f"{k!r} is the old name of {new!r}: give one")
        out[new] = v
    return out


@dataclass(frozen=True)
class LoadedScript:
    """A loaded script: the experiment it defines, its text and where its names are."""

    path: str
    text: str
    experiment: Experiment

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def line_of(self, name: str) -> int:
        """1-based line where ``name`` is given (a keyword ``name=`` or a dict key "name"),
        else the line of ``experiment = ...``, else 0."""
        return find_line(self.text, name)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (so tables serialise to JSON exactly)."""
    item = getattr(v, "item", None)
    if item is not None and not isinstance(v, (str, bytes)):
        try:
            return item()
        except (TypeError, ValueError):
            return v
    return v


def find_line(text: str, name: str) -> int:
    """The first line of ``text`` where ``name`` appears as a keyword argument or dict key."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return 0
    fallback = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == name:
            return node.value.lineno
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value == name:
                    return key.lineno
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "experiment" for t in node.targets):
            fallback = node.lineno
    return fallback


def load_script(path: str | Path) -> LoadedScript:
    """Run a script file and return the :class:`Experiment` it assigns to ``experiment``.

    Raises
    ------
    ScriptError
        File missing, syntax error, an exception while running (with the script line), or no
        ``experiment`` of the right type.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read script: {exc}", path=str(path)) from None
    try:
        code = compile(text, str(path), "exec")
    except SyntaxError as exc:
        raise ScriptError(f"syntax error: {exc.msg}", exc.lineno or 0, str(path)) from None
    namespace: dict[str, Any] = {"__name__": "__sweepstim_script__", "__file__": str(path)}
    try:
        exec(code, namespace)  # the script is user code by design: the one thing we run
    except ScriptError as exc:
        raise ScriptError(exc.message, exc.line or _traceback_line(exc, path), str(path)) from None
    except Exception as exc:  # noqa: BLE001 - report any script failure with its line
        raise ScriptError(f"{type(exc).__name__}: {exc}", _traceback_line(exc, path),
                          str(path)) from None
    exp = namespace.get("experiment")
    if not isinstance(exp, Experiment):
        raise ScriptError("the script must assign an Experiment(...) to the name 'experiment'",
                          0, str(path))
    return LoadedScript(str(path), text, exp)


def _traceback_line(exc: BaseException, path: Path) -> int:
    tb = exc.__traceback__
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
