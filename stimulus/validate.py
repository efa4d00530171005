"""Check an experiment before any window opens; every problem names its script line.

``sweepstim validate SCRIPT`` prints the problems found here, one per line, as
``script.py:LINE: dynamic.sf_cdp: unknown parameter (did you mean 'sf_cpd'?)``. Checked:

- the stimulus kind, parameter names (with a "did you mean"), static vs dynamic placement;
- types and ranges of every value (each value of a Variable too);
- the experiment's own fields (runs, blanks, pre/post times, seed);
- variables in one dimension: equal lengths and shuffle flags;
- the stimulus's own limits: spatial frequency above the screen's Nyquist limit, sizes bigger
  than the screen, movie frames past the end, m-sequence taps that are not maximal, ...;
- the sweep table against the TTL encoding's largest sweep index.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from stimulus.params import Param
from stimulus.script import Experiment, LoadedScript, ScriptError, Variable
from stimulus.stimuli import KINDS
from stimulus.stimuli.base import RenderContext
from stimulus.sweeptable import SweepTable, build_table
from stimulus.ttl.encoding import ProtocolSettings, capacity_problem


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the key (``dynamic.sf_cpd``), the message, the script line (0: none)."""

    key: str
    message: str
    line: int = 0

    def format(self, path: str) -> str:
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.key}: {self.message}"


@dataclass
class Validated:
    """What validation produced: problems, and when there are none the resolved parameters
    (defaults filled in) and the sweep table."""

    problems: list[Problem] = field(default_factory=list)
    static: dict = field(default_factory=dict)
    dynamic: dict = field(default_factory=dict)
    table: SweepTable | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_number(value, lo: float, what: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"expected a number of {what}, got {value!r}"
    if value < lo:
        return f"must be >= {lo:g} {what}, got {value!r}"
    return None


def validate(loaded: LoadedScript, ctx: RenderContext, protocol: ProtocolSettings,
             seed: int = 0) -> Validated:
    """Check ``loaded.experiment`` for display ``ctx`` and TTL encoding ``protocol``."""
    exp: Experiment = loaded.experiment
    out = Validated()

    def add(key: str, message: str, name: str | None = None) -> None:
        line = loaded.line_of(name or key.split(".")[-1])
        out.problems.append(Problem(key, message, line))

    cls = KINDS.get(exp.stimulus) if isinstance(exp.stimulus, str) else None
    if cls is None:
        add("stimulus", f"unknown stimulus {exp.stimulus!r}{_suggest(str(exp.stimulus), KINDS)};"
                        f" known: {', '.join(KINDS)}")
        return out
    for key in ("preexp_s", "postexp_s"):
        msg = _check_number(getattr(exp, key), 0.0, "seconds")
        if msg:
            add(key, msg)
    if not isinstance(exp.static, dict) or not isinstance(exp.dynamic, dict):
        add("experiment", "static and dynamic must be dicts of name -> value")
        return out
    dyn_params = cls.dynamic_params()

    for name, value in exp.static.items():
        key = f"static.{name}"
        if name in dyn_params:
            add(key, "is a dynamic parameter: give it in dynamic=", name)
        elif name not in cls.STATIC:
            add(key, f"unknown static parameter for {cls.KIND}"
                     f"{_suggest(name, [*cls.STATIC, *dyn_params])}; known: "
                     f"{', '.join(cls.STATIC) or 'none'}", name)
        else:
            msg = cls.STATIC[name].problem(value)
            if msg:
                add(key, msg, name)
    for name, p in cls.STATIC.items():
        if p.default is None and name not in exp.static and p.kind is not tuple:
            add(f"static.{name}", f"required: {p.doc}", name)

    values: dict[str, list] = {}
    for name, value in exp.dynamic.items():
        key = f"dynamic.{name}"
        if name in cls.STATIC:
            add(key, "is a static parameter (the same for the whole experiment): give it in "
                     "static=", name)
            continue
        if name not in dyn_params:
            add(key, f"unknown parameter for {cls.KIND}{_suggest(name, dyn_params)}; known: "
                     f"{', '.join(dyn_params)}", name)
            continue
        p: Param = dyn_params[name]
        vals = list(value.values) if isinstance(value, Variable) else [value]
        for v in vals:
            msg = p.problem(v)
            if msg:
                add(key, msg + (" (in Variable)" if isinstance(value, Variable) else ""), name)
                break
        else:
            values[name] = vals
    for name, p in dyn_params.items():
        values.setdefault(name, [p.default])
    sweeps = values.get("sweep_s", [])
    if cls.KIND != "blank" and sweeps and min(sweeps) <= 0:
        add("dynamic.sweep_s", "every sweep needs a duration > 0 s", "sweep_s")

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        add("seed", f"must be a non-negative integer, got {seed!r}")
    if out.problems:
        return out

    static = {k: exp.static.get(k, p.default) for k, p in cls.STATIC.items()}
    for name, msg in cls.check(static, values, ctx):
        where = "static" if name in cls.STATIC else "dynamic"
        add(f"{where}.{name}", msg, name)

    dynamic = {**cls.defaults(), **exp.dynamic}
    try:
        table = build_table(dynamic, exp.runs, exp.blanks, seed)
    except ScriptError as exc:
        name = exc.message.split(":")[0].split(".")[-1]
        add(exc.message.split(":")[0], exc.message.split(": ", 1)[-1], name)
        return out
    msg = capacity_problem(table.n_conditions, protocol)
    if msg:
        add("sweep table", msg + ": use fewer conditions or more index lines", "experiment")
    if out.problems:
        return out
    out.static, out.dynamic, out.table = static, dynamic, table
    return out


def check_or_raise(loaded: LoadedScript, ctx: RenderContext, protocol: ProtocolSettings,
                   seed: int = 0) -> Validated:
    """:func:`validate`, raising ScriptError with every problem when there are any."""
    v = validate(loaded, ctx, protocol, seed)
    if v.problems:
        text = "\n".join(p.format(loaded.path) for p in v.problems)
        raise ScriptError(f"{len(v.problems)} problem(s):\n{text}", v.problems[0].line)
    return v
